import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import type { Db } from '../../src/db/db.js';
import { readSnapshot } from '../../src/db/snapshot.js';
import { openTarget } from '../../src/db/target.js';
import { startEmbeddedPostgres, type EmbeddedServer } from '../../dev/embedded/embedded-postgres.js';
import { plan, type Decision } from '../../src/plan/planner.js';
import { compilePolicies } from '../../src/policy/compile.js';
import { createMetrics, initTargetSeries } from '../../src/metrics/metrics.js';
import { execute } from '../../src/run/executor.js';
import { recordRun } from '../../src/run/run-metrics.js';
import { ensureReaperRole, ensureRole, reap, resultOf, Sessions, unique, urlFor, type TestSession } from '../helpers/pg.js';

// maxXminAge on a real server of its own (prepared transactions need max_prepared_transactions
// > 0, a logical slot wal_level=logical, and the transaction ids this file burns stay here).
// Another session consumes transaction ids; the reaper must act on the sessions that hold the
// horizon by themselves, never on those whose snapshots are old only because of an older
// transaction that still runs.

const N = 1000;
let server: EmbeddedServer;
const s = new Sessions(() => server.url);
let reaper: string;
let app: string;

beforeAll(async () => {
  server = await startEmbeddedPostgres({ maxConnections: 40, extraFlags: ['-c', 'max_prepared_transactions=10', '-c', 'wal_level=logical'] });
  await s.start();
  reaper = await ensureReaperRole(s.admin);
  app = await ensureRole(s.admin, 'app_t');
  await s.admin.query('CREATE TABLE horizon_t (id int)');
  await s.admin.query('GRANT ALL ON horizon_t TO app_t');
});
afterEach(async () => {
  await s.closeAll();
  for (const { gid } of (await s.admin.query<{ gid: string }>('SELECT gid FROM pg_prepared_xacts')).rows) await s.admin.query(`ROLLBACK PREPARED '${gid}'`);
});
afterAll(async () => {
  await s.end();
  await server?.stop();
});

/** Burns n transaction ids, one short transaction each, in one round trip. */
async function consume(n: number): Promise<void> {
  await s.admin.query('BEGIN; SELECT pg_current_xact_id(); COMMIT;'.repeat(n));
}

const config = (tag: string, extra: Record<string, unknown> = {}): Config =>
  validateConfig({
    terminateTimeout: '5s',
    targets: [{ name: 'main', connectionString: urlFor({ user: reaper, server: server.url }) }],
    policies: [{ name: 'horizon', maxXminAge: N, match: { applications: [`${tag}-*`] }, ...extra }],
  });

/** A REPEATABLE READ transaction that has taken its snapshot and reads nothing more: a backend_xmin, no xid. */
async function reader(tag: string, name: string): Promise<TestSession> {
  const x = await s.session({ user: app, application: `${tag}-${name}` });
  await x.client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
  await x.client.query('SELECT count(*) FROM horizon_t');
  return x;
}

/** A transaction that wrote a row and sits idle: a backend_xid, no snapshot. */
async function writer(tag: string, name: string): Promise<TestSession> {
  const x = await s.session({ user: app, application: `${tag}-${name}` });
  await x.client.query('BEGIN');
  await x.client.query('INSERT INTO horizon_t VALUES (1)');
  return x;
}

const horizonOf = async (pid: number) =>
  (await s.admin.query<{ xid: number | null; xmin: number | null }>('SELECT age(backend_xid) AS xid, age(backend_xmin) AS xmin FROM pg_stat_activity WHERE pid = $1', [pid])).rows[0]!;

describe('maxXminAge', () => {
  it('terminates a REPEATABLE READ snapshot once its age passes N, not before, and not a younger one', async () => {
    const tag = unique('t-xmin-rr');
    const old = await reader(tag, 'old');
    await consume(600);
    const early = await reap(config(tag));
    expect(early.results).toEqual([]);
    const young = await reader(tag, 'young');
    await consume(600);
    expect((await horizonOf(old.pid)).xmin).toBeGreaterThan(N);
    expect((await horizonOf(young.pid)).xmin).toBeLessThan(N);

    const report = await reap(config(tag));

    expect(report.results.map((r) => [r.decision.session.pid, r.decision.reason, r.outcome])).toEqual([[old.pid, 'xmin_age', 'terminated']]);
    expect(resultOf(report, old.pid)!.decision.age).toBeGreaterThan(N);
    expect(await s.alive([old.pid, young.pid])).toEqual(new Set([young.pid]));
  });

  it('terminates a session that wrote a row and sits idle in its transaction (an xid, no snapshot) past N', async () => {
    const tag = unique('t-xmin-xid');
    const old = await writer(tag, 'old');
    await consume(600);
    const young = await writer(tag, 'young');
    await consume(600);
    expect(await horizonOf(old.pid)).toMatchObject({ xmin: null });

    const report = await reap(config(tag));

    expect(report.results.map((r) => [r.decision.session.pid, r.decision.reason, r.outcome])).toEqual([[old.pid, 'xmin_age', 'terminated']]);
    expect(await s.alive([old.pid, young.pid])).toEqual(new Set([young.pid]));
  });

  it('while an old prepared transaction lives, the sessions whose snapshots are old only because of it are left alone; once it is gone, they hold the horizon', async () => {
    const tag = unique('t-xmin-2pc');
    const prep = await writer(tag, 'prepared');
    await prep.client.query(`PREPARE TRANSACTION '${tag}'`);
    const victims = [await reader(tag, 'v1'), await reader(tag, 'v2')];
    await consume(1200);
    for (const v of victims) expect((await horizonOf(v.pid)).xmin).toBeGreaterThan(N);

    const held = await reap(config(tag));
    expect(held.error).toBeUndefined();
    expect(held.ok).toBe(true);
    expect(held.results).toEqual([]);
    expect(await s.alive(victims.map((v) => v.pid))).toEqual(new Set(victims.map((v) => v.pid)));

    await s.admin.query(`ROLLBACK PREPARED '${tag}'`);
    const freed = await reap(config(tag));
    expect(freed.results.map((r) => [r.decision.session.pid, r.outcome]).sort()).toEqual(victims.map((v) => [v.pid, 'terminated']).sort());
  });

  it('acts on the session whose transaction holds the horizon, not on the snapshots it holds back', async () => {
    const tag = unique('t-xmin-holder');
    const holder = await writer(tag, 'holder');
    const victims = [await reader(tag, 'v1'), await reader(tag, 'v2')];
    await consume(1200);

    const report = await reap(config(tag));

    expect(report.results.map((r) => [r.decision.session.pid, r.decision.reason, r.outcome])).toEqual([[holder.pid, 'xmin_age', 'terminated']]);
    expect(await s.alive(victims.map((v) => v.pid))).toEqual(new Set(victims.map((v) => v.pid)));
  });
});

describe('pg_reaper_xmin_age: every holder of the horizon, reported', () => {
  it('a prepared transaction and a logical replication slot appear by holder, with the oldest session; they are never touched', async () => {
    const tag = unique('t-xmin-holders');
    const slot = `slot_${tag.replace(/-/g, '_')}`;
    // a logical slot waits for running transactions when it is created: before the prepared one
    await s.admin.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
    try {
      const prep = await writer(tag, 'prepared');
      await prep.client.query(`PREPARE TRANSACTION '${tag}'`);
      // a snapshot old only because the prepared transaction runs: its victim, not a holder
      const victim = await reader(tag, 'victim');
      await consume(300);
      const holder = await writer(tag, 'holder');
      await consume(200);
      // every client session in scope, a threshold far past all of them
      const report = await reap(validateConfig({ targets: [{ name: 'main', connectionString: urlFor({ user: reaper, server: server.url }) }], policies: [{ name: 'all', maxXminAge: '1M' }] }));
      expect(report.ok).toBe(true);
      expect(report.results).toEqual([]);
      const metrics = createMetrics('test', { defaultMetrics: false });
      initTargetSeries(metrics, 'main', []);
      recordRun(metrics, report);
      const ages = Object.fromEntries((await metrics.xminAge.get()).values.map((v) => [v.labels.holder, v.value]));
      expect(ages.prepared_transaction).toBeGreaterThanOrEqual(500);
      expect(ages.replication_slot).toBeGreaterThanOrEqual(500);
      expect(ages.session).toBeGreaterThanOrEqual(200);
      // the session holder is the writer (its own xid), not the victim whose snapshot shows the
      // prepared transaction's age
      expect((await horizonOf(victim.pid)).xmin).toBeGreaterThanOrEqual(ages.prepared_transaction!);
      expect(ages.session).toBeLessThan(ages.prepared_transaction!);
      expect(ages.standby).toBe(0);
      // what the reaper cannot signal stays as it was
      expect((await s.admin.query('SELECT 1 FROM pg_prepared_xacts WHERE gid = $1', [tag])).rowCount).toBe(1);
      expect((await s.admin.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot])).rowCount).toBe(1);
      expect(await s.isAlive(holder.pid)).toBe(true);
      expect(await s.isAlive(victim.pid)).toBe(true);
    } finally {
      for (const { gid } of (await s.admin.query<{ gid: string }>('SELECT gid FROM pg_prepared_xacts')).rows) await s.admin.query(`ROLLBACK PREPARED '${gid}'`);
      await s.admin.query('SELECT pg_drop_replication_slot($1)', [slot]);
    }
  });
});

describe('the guard for xmin_age', () => {
  const planNow = async (db: Db, c: Config) => plan(await readSnapshot(db, { withQuery: false }), compilePolicies(c, 'main'), { target: 'main', applicationName: c.applicationName });
  const executeNow = async (db: Db, c: Config, decisions: Decision[]) => {
    const results = await execute(decisions, { db, applicationName: c.applicationName, terminateTimeoutMs: 5000, sleep: (ms) => sleep(ms), now: () => performance.now() });
    return new Map(results.map((r) => [r.decision.session.pid, r.outcome]));
  };

  it('a session that ended its transaction and began another between plan and execute is skipped_changed; one busy in the same transaction is terminated', async () => {
    const tag = unique('t-xmin-guard');
    const snap = await reader(tag, 'snap');
    // the reader's xmin is the next transaction id: let it go to a short transaction, else the
    // first writer's xid would be as old as the reader's snapshot and the reader would wait its turn
    await consume(1);
    const xid = await writer(tag, 'xid');
    const busy = await writer(tag, 'busy');
    await consume(1200);
    const c = config(tag);
    const db = openTarget(c.targets[0]!, { applicationName: c.applicationName });
    try {
      const decisions = await planNow(db, c);
      expect(decisions.map((d) => d.session.pid).sort()).toEqual([snap.pid, xid.pid, busy.pid].sort());
      // a new snapshot, a new transaction id, and the same transaction running statements
      await snap.client.query('COMMIT; BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1 FROM horizon_t');
      await xid.client.query('COMMIT; BEGIN; INSERT INTO horizon_t VALUES (2)');
      await busy.client.query('INSERT INTO horizon_t VALUES (3); SELECT 1');
      const outcomes = await executeNow(db, c, decisions);
      expect(Object.fromEntries([snap, xid, busy].map((x) => [x.pid, outcomes.get(x.pid)]))).toEqual({ [snap.pid]: 'skipped_changed', [xid.pid]: 'skipped_changed', [busy.pid]: 'terminated' });
      expect(await s.alive([snap.pid, xid.pid, busy.pid])).toEqual(new Set([snap.pid, xid.pid]));
    } finally {
      await db.close();
    }
  });
});

