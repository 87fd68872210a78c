import { describe, expect, it } from 'vitest';
import { BoundedQueue } from '../../src/audit/queue.js';
import type { AuditRow } from '../../src/audit/row.js';
import { parseTableName } from '../../src/audit/table.js';
import { AuditWriter, BACKOFF, type AuditMetrics, type AuditSink } from '../../src/audit/writer.js';
import { createLogger } from '../../src/log/logger.js';
import { captureLog } from '../helpers/log-capture.js';

// The audit writer's logic with a fake clock and a sink in memory (its SQL is exercised against a
// real server in test/integration/audit.test.ts): batches, retries with backoff while the server
// is away, the bound of the queue, one log line per problem, the flush at stop and the handover.

describe('BoundedQueue', () => {
  it('keeps order, refuses what does not fit and leaves the head in place until shifted', () => {
    const q = new BoundedQueue<number>(5);
    expect(q.push([1, 2, 3])).toBe(0);
    expect(q.push([4, 5, 6, 7])).toBe(2);
    expect(q.length).toBe(5);
    expect(q.peek(2)).toEqual([1, 2]);
    expect(q.peek(2)).toEqual([1, 2]);
    q.shift(2);
    expect(q.peek(10)).toEqual([3, 4, 5]);
    expect(q.push([8, 9, 10])).toBe(1);
    expect(q.drain()).toEqual([3, 4, 5, 8, 9]);
    expect(q.length).toBe(0);
    expect(q.push([])).toBe(0);
  });

  it('stays correct across many shifts (compaction)', () => {
    const q = new BoundedQueue<number>(20_000);
    let next = 0;
    let expected = 0;
    for (let round = 0; round < 50; round++) {
      q.push(Array.from({ length: 700 }, () => next++));
      const batch = q.peek(500);
      expect(batch[0]).toBe(expected);
      q.shift(batch.length);
      expected += batch.length;
    }
    expect(q.length).toBe(next - expected);
    expect(q.peek(1)[0]).toBe(expected);
  });
});

/** Time that moves only when the test says so; sleepers wake in order of their deadline. */
class FakeClock {
  ms = 0;
  private sleepers: { at: number; resolve: () => void }[] = [];
  now = () => this.ms;
  sleep = (ms: number, signal: AbortSignal): Promise<void> =>
    new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      const entry = { at: this.ms + ms, resolve };
      this.sleepers.push(entry);
      signal.addEventListener('abort', () => {
        this.sleepers = this.sleepers.filter((s) => s !== entry);
        resolve();
      });
    });
  get pending(): number[] {
    return this.sleepers.map((s) => s.at - this.ms);
  }
  async advance(ms: number): Promise<void> {
    const until = this.ms + ms;
    for (;;) {
      await settle();
      const due = this.sleepers.filter((s) => s.at <= until).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.ms = due.at;
      this.sleepers = this.sleepers.filter((s) => s !== due);
      due.resolve();
    }
    this.ms = until;
    await settle();
  }
}

/** Lets every pending promise callback run. */
const settle = async () => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

/** An audit table in memory, with an id constraint like the real one, that can be taken away or broken. */
class MemorySink implements AuditSink {
  table = new Map<string, AuditRow>();
  inserts: number[] = [];
  probes = 0;
  closed = false;
  failWith: unknown = undefined;
  /** Rows whose pid is here are refused like a value the server cannot store. */
  badPids = new Set<number>();
  /** Commit, then lose the answer (the connection drops after the server committed). */
  loseAnswer = false;
  /** Hold inserts until released. */
  gate: Promise<void> | undefined;

  async insert(rows: readonly AuditRow[]): Promise<void> {
    this.inserts.push(rows.length);
    await this.gate;
    if (this.failWith !== undefined) throw this.failWith;
    if (rows.some((r) => this.badPids.has(r.pid))) throw Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), { code: '22021' });
    for (const r of rows) if (!this.table.has(r.id)) this.table.set(r.id, r);
    if (this.loseAnswer) {
      this.loseAnswer = false;
      throw new Error('Connection terminated unexpectedly');
    }
  }
  async probe(): Promise<void> {
    this.probes++;
    if (this.failWith !== undefined) throw this.failWith;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

class Counts implements AuditMetrics {
  written = 0;
  dropped = 0;
  failed = 0;
  queue = 0;
  isUp: boolean | undefined;
  rows(result: 'written' | 'dropped' | 'failed', n: number) {
    this[result] += n;
  }
  queued(n: number) {
    this.queue = n;
  }
  up(up: boolean) {
    this.isUp = up;
  }
}

let nextPid = 1;
const row = (over: Partial<AuditRow> = {}): AuditRow => {
  const pid = nextPid++;
  return {
    id: `id-${pid}`,
    at_us: 1_800_000_000_000_000,
    replica: 'r1',
    target: 'main',
    policy: 'idle',
    reason: 'idle',
    action: 'terminate',
    outcome: 'terminated',
    dry_run: false,
    pid,
    backend_start_us: 1_799_999_000_000_000,
    usename: 'app',
    datname: 'shop',
    application_name: 'web',
    client_addr: '10.0.0.1',
    state: 'idle',
    seconds: 700,
    threshold_seconds: 600,
    transactions: null,
    threshold_transactions: null,
    query_id: null,
    query: 'SELECT secret',
    escalated: false,
    blocked_sessions: null,
    details: null,
    error: null,
    ...over,
  };
};
const rows = (n: number) => Array.from({ length: n }, () => row());

const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
const noTable = () => Object.assign(new Error('relation "reaper_audit.actions" does not exist'), { code: '42P01' });
const noPrivilege = () => Object.assign(new Error('permission denied for table actions'), { code: '42501' });

function setup(queueSize = 100, batchSize?: number) {
  const clock = new FakeClock();
  const sink = new MemorySink();
  const metrics = new Counts();
  const log = captureLog();
  const writer = new AuditWriter(
    { queueSize, ...(batchSize ? { batchSize } : {}) },
    { sink, logger: createLogger('debug', log.stream), metrics, problems: { table: (parseTableName('reaper_audit.actions') as { ok: true; table: never }).table, role: 'reaper' }, now: clock.now, sleep: clock.sleep, random: () => 0.999 },
  );
  return { clock, sink, metrics, log, writer };
}

describe('AuditWriter', () => {
  it('checks the table at start, then writes what is queued in batches, each row once', async () => {
    const { clock, sink, metrics, writer } = setup(1000, 4);
    await clock.advance(0);
    expect(sink.probes).toBe(1);
    expect(metrics.isUp).toBe(true);
    const batch = rows(10);
    writer.enqueue(batch);
    await clock.advance(0);
    expect(sink.inserts).toEqual([4, 4, 2]);
    expect([...sink.table.keys()]).toEqual(batch.map((r) => r.id));
    expect(metrics).toMatchObject({ written: 10, dropped: 0, failed: 0, queue: 0 });
    // idle: no more probes, no timers
    await clock.advance(60_000);
    expect(sink.probes).toBe(1);
    expect(clock.pending).toEqual([]);
  });

  it('keeps rows while the server is away, retrying with growing backoff, and writes them when it returns', async () => {
    const { clock, sink, metrics, writer, log } = setup();
    sink.failWith = refused();
    writer.enqueue(rows(3));
    await clock.advance(0);
    expect(metrics.isUp).toBe(false);
    // the delays: 250 ms doubling to at most 5 s (times a jitter of up to 0.5 off; 0.999 here)
    const delays: number[] = [];
    for (let i = 0; i < 7; i++) {
      delays.push(Math.round(clock.pending[0]!));
      await clock.advance(clock.pending[0]!);
    }
    expect(delays).toEqual([250, 500, 1000, 2000, 4000, 5000, 5000].map((d) => Math.round(d * (0.5 + 0.999 / 2))));
    writer.enqueue(rows(2));
    // a new row does not cut the backoff short
    expect(clock.pending).toHaveLength(1);
    expect(sink.table.size).toBe(0);
    sink.failWith = undefined;
    await clock.advance(5000);
    expect(sink.table.size).toBe(5);
    expect(metrics).toMatchObject({ written: 5, dropped: 0, queue: 0, isUp: true });
    // one line when it went away, one when it came back: not one per try
    const lines = log.lines.filter((l) => l.level !== 'debug').map((l) => l.msg);
    expect(lines).toEqual(['audit server unreachable: rows wait in the queue and are retried', 'audit table is written again']);
    const back = log.lines.find((l) => l.msg === 'audit table is written again')!;
    expect(back).toMatchObject({ rowsWaiting: 0 });
    expect(back.downSeconds).toBeGreaterThan(20);
    // each try is a debug line
    expect(log.lines.filter((l) => l.msg === 'audit write failed; retrying').map((l) => l.tries)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('drops and counts what does not fit in the queue, and says so once', async () => {
    const { clock, sink, metrics, writer, log } = setup(5);
    sink.failWith = refused();
    await clock.advance(0);
    writer.enqueue(rows(3));
    writer.enqueue(rows(4));
    writer.enqueue(rows(2));
    expect(metrics).toMatchObject({ dropped: 4, queue: 5 });
    expect(log.lines.filter((l) => String(l.msg).startsWith('audit queue is full'))).toHaveLength(1);
    sink.failWith = undefined;
    await clock.advance(10_000);
    expect(sink.table.size).toBe(5);
    expect([...sink.table.values()].map((r) => r.pid)).toEqual([...sink.table.values()].map((r) => r.pid).sort((a, b) => a - b));
    expect(metrics).toMatchObject({ written: 5, dropped: 4, queue: 0 });
    expect(log.lines.find((l) => l.msg === 'audit queue has room again')).toMatchObject({ dropped: 4 });
  });

  it('a statement that cannot succeed is logged once, with the fix, retried slowly, and written once fixed', async () => {
    const { clock, sink, metrics, writer, log } = setup();
    sink.failWith = noTable();
    writer.enqueue(rows(2));
    await clock.advance(0);
    expect(clock.pending[0]).toBeGreaterThanOrEqual(BACKOFF.fix.firstMs / 2);
    await clock.advance(120_000);
    expect(sink.inserts.length).toBeGreaterThan(3);
    sink.failWith = noPrivilege();
    await clock.advance(120_000);
    const errors = log.lines.filter((l) => l.level === 'error');
    expect(errors.map((l) => l.fix)).toEqual([
      'the table reaper_audit.actions does not exist: create it with "pg-reaper audit-init -c CONFIG", or have its owner run the DDL of "pg-reaper audit-init -c CONFIG --print"',
      'the role may not insert into reaper_audit.actions: run GRANT USAGE ON SCHEMA reaper_audit TO reaper; GRANT INSERT ON reaper_audit.actions TO reaper;',
    ]);
    expect(errors[0]!.error).toContain('SQLSTATE 42P01');
    // retried at most every 30 s
    expect(clock.pending[0]).toBeLessThanOrEqual(BACKOFF.fix.maxMs);
    sink.failWith = undefined;
    await clock.advance(BACKOFF.fix.maxMs);
    expect(metrics).toMatchObject({ written: 2, isUp: true });
  });

  it('a batch the server committed but whose answer was lost is sent again and not stored twice', async () => {
    const { clock, sink, metrics, writer } = setup();
    await clock.advance(0);
    sink.loseAnswer = true;
    writer.enqueue(rows(3));
    await clock.advance(10_000);
    expect(sink.inserts).toEqual([3, 3]);
    expect(sink.table.size).toBe(3);
    expect(metrics.written).toBe(3);
  });

  it('gives up only the rows the server refuses for their values, counting them failed', async () => {
    const { clock, sink, metrics, writer, log } = setup();
    await clock.advance(0);
    const batch = rows(4);
    sink.badPids.add(batch[1]!.pid);
    writer.enqueue(batch);
    await clock.advance(0);
    expect([...sink.table.values()].map((r) => r.pid)).toEqual([batch[0]!.pid, batch[2]!.pid, batch[3]!.pid]);
    expect(metrics).toMatchObject({ written: 3, failed: 1, queue: 0 });
    const line = log.lines.find((l) => String(l.msg).startsWith('audit row refused'))!;
    expect(line.row).toMatchObject({ id: batch[1]!.id, pid: batch[1]!.pid, outcome: 'terminated' });
    // never the query text in a log line
    expect(JSON.stringify(line)).not.toContain('SELECT secret');
  });

  it('stop() flushes what is queued, trying at once even mid-backoff, within its deadline', async () => {
    const { clock, sink, metrics, writer } = setup();
    sink.failWith = refused();
    writer.enqueue(rows(3));
    await clock.advance(0);
    await clock.advance(clock.pending[0]!);
    await clock.advance(clock.pending[0]!);
    expect(clock.pending[0]).toBeGreaterThan(900);
    sink.failWith = undefined;
    const stopped = writer.stop(clock.ms + 10_000);
    await clock.advance(0);
    expect(await stopped).toBe(0);
    expect(sink.table.size).toBe(3);
    expect(sink.closed).toBe(true);
    expect(metrics).toMatchObject({ written: 3, dropped: 0 });
  });

  it('stop() gives up at its deadline and counts what is left as dropped', async () => {
    const { clock, sink, metrics, writer, log } = setup();
    sink.failWith = refused();
    writer.enqueue(rows(4));
    await clock.advance(0);
    const stopped = writer.stop(clock.ms + 3000);
    await clock.advance(3000);
    await clock.advance(1000);
    expect(await stopped).toBe(4);
    expect(metrics).toMatchObject({ written: 0, dropped: 4, queue: 0 });
    expect(log.lines.find((l) => l.level === 'error' && String(l.msg).includes('lost'))).toMatchObject({ lost: 4 });
    // rows after stop are dropped, not kept
    writer.enqueue(rows(1));
    expect(metrics.dropped).toBe(5);
  });

  it('handover() waits for the batch in flight, then hands every row not known to be written to the next writer', async () => {
    const { clock, sink, metrics, writer } = setup(100, 2);
    await clock.advance(0);
    let release!: () => void;
    sink.gate = new Promise<void>((r) => (release = r));
    const batch = rows(5);
    writer.enqueue(batch);
    await clock.advance(0);
    expect(sink.inserts).toEqual([2]);
    const handed = writer.handover(clock.ms + 5000);
    release();
    sink.gate = undefined;
    await clock.advance(0);
    // the batch in flight was written; the rest were not sent
    expect((await handed).map((r) => r.id)).toEqual(batch.slice(2).map((r) => r.id));
    expect(metrics.written).toBe(2);
    expect(sink.closed).toBe(true);

    // a second writer takes them: each row once in the table
    const next = setup();
    next.sink.table = sink.table;
    next.writer.enqueue(await handed);
    await next.clock.advance(0);
    expect([...sink.table.keys()]).toEqual(batch.map((r) => r.id));
  });

  it('handover() at its deadline also hands over a batch still in flight (its ids keep it from being stored twice)', async () => {
    const { clock, sink, writer } = setup(100);
    await clock.advance(0);
    sink.gate = new Promise<void>(() => undefined);
    const batch = rows(3);
    writer.enqueue(batch);
    await clock.advance(0);
    const handed = writer.handover(clock.ms + 2000);
    await clock.advance(2000);
    await clock.advance(1000);
    expect((await handed).map((r) => r.id)).toEqual(batch.map((r) => r.id));
  });
});
