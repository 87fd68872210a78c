import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { readSnapshot } from '../../src/db/snapshot.js';
import { openTarget } from '../../src/db/target.js';
import { plan } from '../../src/plan/planner.js';
import { compilePolicies } from '../../src/policy/compile.js';
import { execute } from '../../src/run/executor.js';
import { ensureReaperRole, ensureRole, reap, Sessions, testConfig, unique, type TestSession } from '../helpers/pg.js';

// maxLockWait on a real server: a long transaction holds a lock on a table, an ALTER TABLE waits
// for its AccessExclusiveLock, five SELECTs queue behind the ALTER. The migration is cancelled,
// the reads flow, the long transaction is not touched.

const s = new Sessions();
let reaper: string;
let app: string;
const table = `lockwait_t_${Math.random().toString(36).slice(2, 8)}`;

beforeAll(async () => {
  await s.start();
  reaper = await ensureReaperRole(s.admin);
  app = await ensureRole(s.admin, 'app_t');
  await s.admin.query(`CREATE TABLE ${table} (id int)`);
  await s.admin.query(`INSERT INTO ${table} SELECT generate_series(1, 10)`);
  await s.admin.query(`ALTER TABLE ${table} OWNER TO app_t`);
});
afterEach(() => s.closeAll());
afterAll(async () => {
  await s.admin.query(`DROP TABLE IF EXISTS ${table}`);
  await s.end();
});

const settle = <T>(p: Promise<T>) => p.then((v) => ({ ok: true as const, v }), (e: { code?: string }) => ({ ok: false as const, code: e.code }));

/** Waits until the session waits on a lock, and has for `ms`. */
async function waitingFor(pid: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms + 10_000;
  for (;;) {
    const row = (await s.admin.query<{ ms: number | null }>("SELECT extract(epoch FROM clock_timestamp() - state_change)::float8 * 1000 AS ms FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'", [pid])).rows[0];
    if (row?.ms != null && row.ms > ms) return;
    if (Date.now() > deadline) throw new Error(`session ${pid} did not wait on a lock for ${ms} ms`);
    await sleep(50);
  }
}

/** The holder in a transaction that read the table, the ALTER waiting behind it, five SELECTs behind the ALTER. */
async function migrationQueue(tag: string) {
  const holder = await s.session({ user: app, application: `${tag}-holder` });
  await holder.client.query('BEGIN');
  await holder.client.query(`SELECT count(*) FROM ${table}`);
  const migration = await s.session({ user: app, application: `${tag}-migration` });
  const alter = settle(migration.client.query(`ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS note text`));
  await waitingFor(migration.pid, 0);
  const readers: TestSession[] = [];
  const reads: ReturnType<typeof settle>[] = [];
  for (let i = 0; i < 5; i++) {
    const r = await s.session({ user: app, application: `${tag}-reader` });
    reads.push(settle(r.client.query(`SELECT count(*) FROM ${table}`)));
    await waitingFor(r.pid, 0);
    readers.push(r);
  }
  await waitingFor(migration.pid, 2000);
  return { holder, migration, alter, readers, reads };
}

const policy = (tag: string, minWaiters: number): Config =>
  testConfig({ policies: [{ name: 'migrations', maxLockWait: '2s', minWaiters, lockModes: ['AccessExclusiveLock'], action: 'cancel', match: { applications: [`${tag}-*`] } }] }, reaper);

describe('maxLockWait', () => {
  it('cancels the ALTER TABLE that five SELECTs queue behind; the SELECTs complete and the long transaction is untouched; minWaiters 10 does nothing', async () => {
    const tag = unique('t-lockwait');
    const q = await migrationQueue(tag);

    const quiet = await reap(policy(tag, 10));
    expect(quiet.ok).toBe(true);
    expect(quiet.results).toEqual([]);

    const report = await reap(policy(tag, 3));

    expect(report.results.map((r) => [r.decision.session.pid, r.decision.reason, r.decision.action, r.outcome])).toEqual([[q.migration.pid, 'lock_wait', 'cancel', 'cancelled']]);
    expect(report.results[0]!.decision.details).toEqual({ queuedBehind: 5 });
    expect(await q.alter).toEqual({ ok: false, code: '57014' });
    for (const read of q.reads) expect((await read).ok).toBe(true);
    // the holder is still there, in the same transaction; the migration's session lives on
    expect((await s.admin.query('SELECT state FROM pg_stat_activity WHERE pid = $1', [q.holder.pid])).rows).toEqual([{ state: 'idle in transaction' }]);
    expect(await s.alive([q.holder.pid, q.migration.pid, ...q.readers.map((r) => r.pid)])).toEqual(new Set([q.holder.pid, q.migration.pid, ...q.readers.map((r) => r.pid)]));
    expect(q.holder.errors).toEqual([]);
  });

  it('an ALTER that got its lock between plan and execute is skipped_changed and completes', async () => {
    const tag = unique('t-lockwait-guard');
    const q = await migrationQueue(tag);
    const config = policy(tag, 3);
    const db = openTarget(config.targets[0]!, { applicationName: config.applicationName });
    try {
      const decisions = plan(await readSnapshot(db, { withQuery: false }), compilePolicies(config, 'main'), { target: 'main', applicationName: config.applicationName });
      expect(decisions.map((d) => [d.session.pid, d.reason])).toEqual([[q.migration.pid, 'lock_wait']]);
      await q.holder.client.query('COMMIT'); // the ALTER gets its lock and runs
      expect((await q.alter).ok).toBe(true);
      const results = await execute(decisions, { db, applicationName: config.applicationName, terminateTimeoutMs: 5000, sleep: (ms) => sleep(ms), now: () => performance.now() });
      expect(results.map((r) => r.outcome)).toEqual(['skipped_changed']);
      for (const read of q.reads) expect((await read).ok).toBe(true);
    } finally {
      await db.close();
      await s.admin.query(`ALTER TABLE ${table} DROP COLUMN IF EXISTS note`);
    }
  });
});
