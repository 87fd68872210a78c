import { Cron } from 'croner';

// When runs happen. One croner job per distinct (pattern, time zone), however many targets share
// it; each target keeps its own in-flight guard (a trigger that finds the target's previous run
// still going is skipped and reported as an overlap); runs in flight across targets are bounded
// (a run waiting for a slot is not an overlap); a jitter spreads the targets of one trigger.
// A run that fails never reaches croner.

export interface ScheduledTarget {
  name: string;
  pattern: string;
  timezone?: string | undefined;
}

export interface SchedulerOptions {
  targets: readonly ScheduledTarget[];
  run: (target: string) => Promise<void>;
  onOverlap: (target: string) => void;
  /** Each target of a trigger starts at a random delay up to this (0: all at once). */
  jitterMs?: number;
  /** Runs in flight across targets at most (default unbounded). */
  maxConcurrent?: number;
  random?: () => number;
  /** Wall clock in ms (for the liveness check). */
  now?: () => number;
}

interface Job {
  cron: Cron;
  targets: string[];
  /** When the job is next due; a job whose due time passed long ago has stopped firing. */
  due: number | null;
}

// A trigger this late means the timer stopped firing (croner itself is late by milliseconds).
const LATE_MS = 30_000;

export class Scheduler {
  private readonly jobs: Job[] = [];
  private readonly inFlight = new Map<string, Promise<void>>();
  /** Delayed triggers (kickoff, jitter), with what stop() resolves them with. */
  private readonly timers = new Map<NodeJS.Timeout, () => void>();
  private readonly waiting: (() => void)[] = [];
  private running = 0;
  private stopped = false;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly intervals = new Map<string, number | undefined>();
  private readonly byName: Map<string, ScheduledTarget>;

  constructor(private readonly opts: SchedulerOptions) {
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? Date.now;
    this.byName = new Map(opts.targets.map((t) => [t.name, t]));
  }

  /** Number of croner jobs (one per distinct pattern and time zone). */
  get jobCount(): number {
    return this.jobs.length;
  }

  start(): void {
    const groups = new Map<string, ScheduledTarget[]>();
    for (const t of this.opts.targets) {
      const key = `${t.pattern}\u0000${t.timezone ?? ''}`;
      groups.set(key, [...(groups.get(key) ?? []), t]);
    }
    for (const group of groups.values()) {
      const { pattern, timezone } = group[0]!;
      const job: Job = { targets: group.map((t) => t.name), due: null, cron: undefined as unknown as Cron };
      job.cron = new Cron(pattern, { mode: '5-or-6-parts', catch: true, ...(timezone ? { timezone } : {}) }, () => {
        job.due = job.cron.nextRun()?.getTime() ?? null;
        this.fire(job.targets, this.opts.jitterMs ?? 0);
      });
      job.due = job.cron.nextRun()?.getTime() ?? null;
      this.jobs.push(job);
    }
  }

  /** Run every target once now, spread evenly over `spreadMs`; resolves when all have run. */
  kickoff(spreadMs: number): Promise<void> {
    const names = this.opts.targets.map((t) => t.name);
    return Promise.all(names.map((name, i) => this.later(names.length > 1 ? (i * spreadMs) / names.length : 0, name))).then(() => undefined);
  }

  private fire(targets: readonly string[], jitterMs: number): void {
    for (const name of targets) void this.later(jitterMs > 0 ? this.random() * jitterMs : 0, name);
  }

  private later(delayMs: number, target: string): Promise<void> {
    if (delayMs <= 0) return this.trigger(target);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.trigger(target).then(resolve);
      }, delayMs);
      this.timers.set(timer, resolve);
    });
  }

  /** Start a run of `target` now unless one is in flight; resolves when that run ends. */
  trigger(target: string): Promise<void> {
    if (this.stopped) return Promise.resolve();
    const running = this.inFlight.get(target);
    if (running) {
      this.opts.onOverlap(target);
      return running;
    }
    const run = this.slot()
      .then(() => (this.stopped ? undefined : this.opts.run(target)))
      .catch(() => undefined)
      .finally(() => {
        this.inFlight.delete(target);
        this.release();
      });
    this.inFlight.set(target, run);
    return run;
  }

  private slot(): Promise<void> {
    const max = this.opts.maxConcurrent ?? Infinity;
    if (this.running < max) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }

  /** True while every job still has a next run and none is long overdue: the loop is alive. */
  alive(): boolean {
    if (this.stopped) return false;
    const now = this.now();
    return this.jobs.every((j) => j.cron.isRunning() && j.due !== null && now <= j.due + LATE_MS);
  }

  /**
   * The longest time between two triggers of the target's schedule, in seconds (undefined for a
   * schedule that fires fewer than twice more): what PgReaperRunsStalled judges lateness by.
   * Computed on first use and kept per pattern.
   */
  intervalSeconds(target: string): number | undefined {
    const t = this.byName.get(target);
    if (!t) return undefined;
    const key = `${t.pattern}\u0000${t.timezone ?? ''}`;
    if (!this.intervals.has(key)) this.intervals.set(key, longestGapSeconds(t.pattern, t.timezone));
    return this.intervals.get(key);
  }

  nextRun(): Date | null {
    const next = this.jobs.map((j) => j.cron.nextRun()).filter((d): d is Date => d !== null);
    return next.length ? new Date(Math.min(...next.map((d) => d.getTime()))) : null;
  }

  /** Stop triggering; wait for runs in flight at most `timeoutMs`. True if they all ended. */
  async stop(timeoutMs: number): Promise<boolean> {
    this.stopped = true;
    for (const job of this.jobs) job.cron.stop();
    for (const [timer, resolve] of this.timers) {
      clearTimeout(timer);
      resolve();
    }
    this.timers.clear();
    // runs waiting for a slot are let through, and skip their run (stopped)
    for (const wake of this.waiting.splice(0)) {
      this.running++;
      wake();
    }
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

/**
 * The longest gap between consecutive triggers among the next `count` of a pattern, in seconds.
 * 24 triggers see a weekday schedule's weekend and a monthly one's longest month.
 */
export function longestGapSeconds(pattern: string, timezone?: string, count = 24, from?: Date): number | undefined {
  const cron = new Cron(pattern, { mode: '5-or-6-parts', paused: true, ...(timezone ? { timezone } : {}) });
  const runs = cron.nextRuns(count, from);
  cron.stop();
  let longest: number | undefined;
  for (let i = 1; i < runs.length; i++) longest = Math.max(longest ?? 0, (runs[i]!.getTime() - runs[i - 1]!.getTime()) / 1000);
  return longest;
}
