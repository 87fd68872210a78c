import type { Logger } from '../log/logger.js';
import { classify, type Problem, type ProblemContext, type ProblemKind } from './problem.js';
import { BoundedQueue } from './queue.js';
import type { AuditRow } from './row.js';

// Writes audit rows in the background. The run loop only enqueues (synchronously, never
// waiting, never failing); one loop here sends the head of the queue in batches, retries with
// backoff while the audit server is away, and drops (and counts) the rows that do not fit.
// A row leaves the queue only once the server has it, so a failed batch is sent again whole;
// its rows' ids make that harmless (ON CONFLICT DO NOTHING).

export interface AuditSink {
  insert(rows: readonly AuditRow[]): Promise<void>;
  /** Checks the table is there and writable, writing nothing. */
  probe(): Promise<void>;
  close(): Promise<void>;
}

export type AuditResult = 'written' | 'dropped' | 'failed';

export interface AuditMetrics {
  rows(result: AuditResult, n: number): void;
  queued(n: number): void;
  up(up: boolean): void;
}

export interface WriterDeps {
  sink: AuditSink;
  logger: Logger;
  metrics?: AuditMetrics | undefined;
  problems: ProblemContext;
  /** Monotonic ms. */
  now: () => number;
  /** Resolves after ms, or as soon as the signal aborts. */
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  /** In [0, 1), for the jitter of the backoff. */
  random: () => number;
}

export interface WriterOptions {
  queueSize: number;
  batchSize?: number;
}

export const BATCH_SIZE = 500;
/** Retry delays: soon while the server is away; slowly while it needs a fix (its log gets an error per try). */
export const BACKOFF: Record<Exclude<ProblemKind, 'row'>, { firstMs: number; maxMs: number }> = {
  away: { firstMs: 250, maxMs: 5000 },
  fix: { firstMs: 2000, maxMs: 30_000 },
};

/** Closing the connection gets at least this, even past the deadline (an idle connection closes at once). */
const CLOSE_MIN_MS = 200;

type Mode = 'running' | 'flushing' | 'handing' | 'detached';

const noMetrics: AuditMetrics = { rows: () => undefined, queued: () => undefined, up: () => undefined };

export class AuditWriter {
  private readonly queue: BoundedQueue<AuditRow>;
  private readonly batchSize: number;
  private readonly metrics: AuditMetrics;
  private mode: Mode = 'running';
  /** The table answered at least once: no more probes when idle. */
  private checked = false;
  private tries = 0;
  private problem: { key: string; sinceMs: number } | undefined;
  /** Rows dropped since the queue became full. */
  private dropping = 0;
  private idleWaiter: (() => void) | undefined;
  private pauseAbort: AbortController | undefined;
  private readonly done: Promise<void>;

  constructor(
    readonly options: WriterOptions,
    private readonly deps: WriterDeps,
  ) {
    this.queue = new BoundedQueue(options.queueSize);
    this.batchSize = options.batchSize ?? BATCH_SIZE;
    this.metrics = deps.metrics ?? noMetrics;
    this.metrics.up(false);
    this.metrics.queued(0);
    this.done = this.loop().catch((err: unknown) => deps.logger.error({ error: String(err) }, 'audit writer stopped unexpectedly'));
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Queues a run's rows. Never waits and never throws: what does not fit is dropped and counted. */
  enqueue(rows: readonly AuditRow[]): void {
    if (rows.length === 0) return;
    const dropped = this.mode === 'detached' ? rows.length : this.queue.push(rows);
    if (dropped > 0) {
      this.metrics.rows('dropped', dropped);
      if (this.dropping === 0) {
        this.deps.logger.warn({ table: this.deps.problems.table.sql, queueSize: this.queue.capacity }, 'audit queue is full: new rows are dropped and counted until the audit server takes the waiting ones (the action log still has every action)');
      }
      this.dropping += dropped;
    }
    this.metrics.queued(this.queue.length);
    this.wake();
  }

  /**
   * Graceful stop: keeps writing until the queue is empty or `deadline` (monotonic ms) passes;
   * what is left then is counted as dropped. Returns how many rows were not written.
   */
  async stop(deadline: number): Promise<number> {
    if (this.mode === 'detached') return 0;
    this.mode = 'flushing';
    // a retry that is waiting out its backoff tries once more now
    this.interrupt();
    await this.until(deadline);
    this.mode = 'detached';
    this.interrupt();
    const lost = this.queue.drain().length;
    this.metrics.queued(0);
    if (lost > 0) {
      this.metrics.rows('dropped', lost);
      this.deps.logger.error({ table: this.deps.problems.table.sql, lost }, 'audit rows not written before the stop deadline are lost (the action log has every action)');
    }
    await this.closeSink(deadline);
    return lost;
  }

  /**
   * For a reload that changes the audit settings: stops writing (waiting until `deadline` for a
   * batch in flight) and returns every row not known to be written, for the next writer. A batch
   * still in flight at the deadline is returned too: if it does reach the same table, its rows'
   * ids keep the next writer from adding them again.
   */
  async handover(deadline: number): Promise<AuditRow[]> {
    if (this.mode === 'detached') return [];
    this.mode = 'handing';
    this.interrupt();
    await this.until(deadline);
    this.mode = 'detached';
    this.interrupt();
    const rows = this.queue.drain();
    await this.closeSink(deadline);
    return rows;
  }

  private async loop(): Promise<void> {
    for (;;) {
      if (this.mode === 'handing' || this.mode === 'detached') return;
      if (this.queue.length === 0) {
        if (this.mode === 'flushing') return;
        if (this.checked) {
          await new Promise<void>((resolve) => (this.idleWaiter = resolve));
          continue;
        }
      }
      // with nothing queued yet, a probe: a missing table or privilege shows before the first kill
      await this.attempt(this.queue.peek(this.batchSize));
    }
  }

  private async attempt(batch: AuditRow[]): Promise<void> {
    try {
      if (batch.length > 0) await this.deps.sink.insert(batch);
      else await this.deps.sink.probe();
    } catch (err) {
      if (this.mode === 'detached') return;
      const problem = classify(err, this.deps.problems);
      if (problem.kind === 'row' && batch.length > 0) return this.oneByOne(batch);
      return this.failed(problem);
    }
    if (this.mode === 'detached') return;
    this.written(batch.length);
  }

  // A value of some row was refused: each row alone, so only the refused ones are given up.
  private async oneByOne(batch: AuditRow[]): Promise<void> {
    for (const row of batch) {
      try {
        await this.deps.sink.insert([row]);
      } catch (err) {
        if (this.mode === 'detached') return;
        const problem = classify(err, this.deps.problems);
        if (problem.kind !== 'row') return this.failed(problem);
        this.queue.shift(1);
        this.metrics.rows('failed', 1);
        this.metrics.queued(this.queue.length);
        const { query: _query, ...fields } = row;
        this.deps.logger.warn({ table: this.deps.problems.table.sql, error: problem.error, row: fields }, 'audit row refused by the server: given up (the action log has the action)');
        continue;
      }
      if (this.mode === 'detached') return;
      this.written(1);
    }
  }

  private written(n: number): void {
    if (n > 0) {
      this.queue.shift(n);
      this.metrics.rows('written', n);
    }
    this.metrics.queued(this.queue.length);
    this.metrics.up(true);
    this.checked = true;
    this.tries = 0;
    if (this.problem) {
      this.deps.logger.info({ table: this.deps.problems.table.sql, downSeconds: Math.round(this.deps.now() - this.problem.sinceMs) / 1000, rowsWaiting: this.queue.length }, 'audit table is written again');
      this.problem = undefined;
    }
    if (this.dropping > 0) {
      this.deps.logger.info({ table: this.deps.problems.table.sql, dropped: this.dropping }, 'audit queue has room again');
      this.dropping = 0;
    }
  }

  // Logged once per problem (not once per try), then retried after a backoff.
  private async failed(problem: Problem): Promise<void> {
    this.metrics.up(false);
    if (this.problem?.key !== problem.key) {
      const fields = { table: this.deps.problems.table.sql, error: problem.error, rowsWaiting: this.queue.length, queueSize: this.queue.capacity };
      if (problem.kind === 'away') this.deps.logger.warn(fields, 'audit server unreachable: rows wait in the queue and are retried');
      else this.deps.logger.error({ ...fields, fix: problem.fix }, `cannot write the audit table: ${problem.fix ?? problem.error}`);
      this.problem = { key: problem.key, sinceMs: this.problem?.sinceMs ?? this.deps.now() };
    }
    this.tries++;
    // a handover wants the rows now, not after another try
    if (this.mode === 'handing' || this.mode === 'detached') return;
    const { firstMs, maxMs } = BACKOFF[problem.kind === 'away' ? 'away' : 'fix'];
    const delay = Math.min(maxMs, firstMs * 2 ** (this.tries - 1)) * (0.5 + this.deps.random() / 2);
    this.deps.logger.debug({ table: this.deps.problems.table.sql, error: problem.error, tries: this.tries, retryInMs: Math.round(delay) }, 'audit write failed; retrying');
    const abort = new AbortController();
    this.pauseAbort = abort;
    await this.deps.sleep(delay, abort.signal);
    this.pauseAbort = undefined;
  }

  private wake(): void {
    const waiter = this.idleWaiter;
    this.idleWaiter = undefined;
    waiter?.();
  }

  /** Ends an idle wait or a backoff at once. */
  private interrupt(): void {
    this.wake();
    this.pauseAbort?.abort();
  }

  /** Waits for the loop to end, or until the deadline. */
  private async until(deadline: number): Promise<void> {
    const abort = new AbortController();
    await Promise.race([this.done, this.deps.sleep(Math.max(0, deadline - this.deps.now()), abort.signal)]);
    abort.abort();
  }

  private async closeSink(deadline: number): Promise<void> {
    // a statement still in flight at the deadline must not hold the caller
    const abort = new AbortController();
    await Promise.race([this.deps.sink.close().catch(() => undefined), this.deps.sleep(Math.max(CLOSE_MIN_MS, deadline - this.deps.now()), abort.signal)]);
    abort.abort();
  }
}
