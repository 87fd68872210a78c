import { Cron } from 'croner';

// One croner job per target. A trigger that finds the previous run of the same target still
// going is skipped and reported as an overlap; a run that fails never reaches croner.

export interface SchedulerOptions {
  pattern: string;
  timezone?: string | undefined;
  targets: readonly string[];
  run: (target: string) => Promise<void>;
  onOverlap: (target: string) => void;
}

export class Scheduler {
  private readonly jobs: Cron[] = [];
  private readonly inFlight = new Map<string, Promise<void>>();
  private stopped = false;

  constructor(private readonly opts: SchedulerOptions) {}

  start(): void {
    for (const target of this.opts.targets) {
      const job = new Cron(this.opts.pattern, { mode: '5-or-6-parts', catch: true, ...(this.opts.timezone ? { timezone: this.opts.timezone } : {}) }, () => this.trigger(target));
      this.jobs.push(job);
    }
  }

  /** Start a run of `target` now unless one is in flight; resolves when that run ends. */
  trigger(target: string): Promise<void> {
    if (this.stopped) return Promise.resolve();
    const running = this.inFlight.get(target);
    if (running) {
      this.opts.onOverlap(target);
      return running;
    }
    const run = this.opts
      .run(target)
      .catch(() => undefined)
      .finally(() => this.inFlight.delete(target));
    this.inFlight.set(target, run);
    return run;
  }

  /** True while every job still has a next run: the loop is alive. */
  alive(): boolean {
    return !this.stopped && this.jobs.every((j) => j.isRunning() && j.nextRun() !== null);
  }

  nextRun(): Date | null {
    return this.jobs[0]?.nextRun() ?? null;
  }

  /** Stop triggering; wait for runs in flight at most `timeoutMs`. True if they all ended. */
  async stop(timeoutMs: number): Promise<boolean> {
    this.stopped = true;
    for (const job of this.jobs) job.stop();
    const all = Promise.all(this.inFlight.values()).then(() => true);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    try {
      return await Promise.race([all, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
