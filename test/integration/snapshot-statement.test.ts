import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/db.js';
import { readSnapshot } from '../../src/db/snapshot.js';
import { openTarget } from '../../src/db/target.js';
import { snapshotFilter } from '../../src/plan/filter.js';
import { PROTECT_ALL } from '../../src/plan/protect.js';
import { compilePolicies } from '../../src/policy/compile.js';
import { ensureReaperRole, ensureRole, Sessions, testConfig, unique, urlFor } from '../helpers/pg.js';

// The snapshot statement holds only the parts the target's policies read, and is prepared once
// per connection unless the target says not to (a pooler that cannot keep prepared statements).

const s = new Sessions();
let reaper: string;
let app: string;
const table = `snapstmt_t_${Math.random().toString(36).slice(2, 8)}`;

beforeAll(async () => {
  await s.start();
  reaper = await ensureReaperRole(s.admin);
  app = await ensureRole(s.admin, 'app_t');
  await s.admin.query(`CREATE TABLE ${table} (id int)`);
  await s.admin.query(`ALTER TABLE ${table} OWNER TO app_t`);
});
afterEach(() => s.closeAll());
afterAll(async () => {
  await s.admin.query(`DROP TABLE IF EXISTS ${table}`);
  await s.end();
});

/** A Db that records the text of every statement it runs. */
const recording = (db: Db, texts: string[]): Db => ({
  query: (sql, params, opts) => {
    texts.push(sql);
    return db.query(sql, params, opts);
  },
});

/** A session holding a lock on the table, and one waiting for it. */
async function lockWait(tag: string) {
  const holder = await s.session({ user: app, application: `${tag}-holder` });
  await holder.client.query('BEGIN');
  await holder.client.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
  const waiter = await s.session({ user: app, application: `${tag}-waiter` });
  const waiting = waiter.client.query(`SELECT count(*) FROM ${table}`).catch(() => undefined);
  const deadline = Date.now() + 10_000;
  while ((await s.admin.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'", [waiter.pid])).rowCount === 0) {
    if (Date.now() > deadline) throw new Error(`session ${waiter.pid} did not wait on the lock`);
    await sleep(20);
  }
  return { holder, waiter, release: async () => (await holder.client.query('ROLLBACK'), await waiting) };
}

describe('the snapshot statement', () => {
  it('leaves out the lock graph when no policy reads it, and still counts the lock waiters', async () => {
    const tag = unique('t-graph');
    const { holder, waiter, release } = await lockWait(tag);
    const config = testConfig({ policies: [{ name: 'idle', maxIdle: '1h' }] }, reaper);
    const db = openTarget(config.targets[0]!, { applicationName: config.applicationName });
    try {
      const plain = snapshotFilter(compilePolicies(config, 'main'), PROTECT_ALL);
      const locks = snapshotFilter(compilePolicies(testConfig({ policies: [{ name: 'locks', maxLockWait: '1h' }] }, reaper), 'main'), PROTECT_ALL);
      expect(plain.parts.lockGraph).toBe(false);
      expect(locks.parts.lockGraph).toBe(true);
      const texts: string[] = [];
      // the waiter comes as a row either way (watched)
      const without = await readSnapshot(recording(db, texts), { withQuery: false, filter: plain, watch: [waiter.pid] });
      const withGraph = await readSnapshot(recording(db, texts), { withQuery: false, filter: locks, watch: [waiter.pid] });
      expect(texts[0]).not.toMatch(/pg_blocking_pids|pg_locks/);
      expect(texts[1]).toMatch(/pg_blocking_pids/);
      // the metrics' count of lock waiters is the same without the graph
      expect(without.waiting).toBeGreaterThanOrEqual(1);
      expect(without.waiting).toBe(withGraph.waiting);
      expect(without.sessions.find((x) => x.pid === waiter.pid)).toMatchObject({ blockedBy: null, waitStartMs: null, waitMode: null });
      expect(withGraph.sessions.find((x) => x.pid === waiter.pid)).toMatchObject({ blockedBy: [holder.pid], waitMode: 'AccessShareLock' });
    } finally {
      await release();
      await db.close();
    }
  });

  it('is prepared once per connection, again after a reconnect, and not at all with preparedStatements: false', async () => {
    const tag = unique('t-prep');
    const idle = await s.session({ user: app, application: `${tag}-idle` });
    const prepared = "SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name LIKE 'pg_reaper_snapshot_%'";
    for (const preparedStatements of [true, false]) {
      const config = testConfig({ targets: [{ name: 'main', connectionString: urlFor({ user: reaper }), preparedStatements }], policies: [{ name: 'idle', maxIdle: '1ms' }] });
      const filter = snapshotFilter(compilePolicies(config, 'main'), PROTECT_ALL);
      const db = openTarget(config.targets[0]!, { applicationName: config.applicationName });
      try {
        const connections = new Set<object>();
        const round = () =>
          db.withConnection(async (c, connection) => {
            connections.add(connection);
            // the server's version known, as from the second run on: one statement text
            const snap = await readSnapshot(c, { withQuery: false, filter, serverVersionNum: Number((await c.query<{ v: string }>("SELECT current_setting('server_version_num') AS v"))[0]!.v) });
            expect(snap.sessions.map((x) => x.pid)).toContain(idle.pid);
            return { pid: snap.selfPid, n: (await c.query<{ n: number }>(prepared))[0]!.n };
          });
        const first = await round();
        const second = await round();
        expect(second.pid).toBe(first.pid);
        expect([first.n, second.n]).toEqual(preparedStatements ? [1, 1] : [0, 0]);
        // the server ends our session: the next run connects again and prepares afresh
        await s.admin.query('SELECT pg_terminate_backend($1)', [first.pid]);
        let third: { pid: number; n: number } | undefined;
        for (const deadline = Date.now() + 10_000; !third; ) {
          third = await round().catch(() => undefined);
          if (!third && Date.now() > deadline) throw new Error('no snapshot after the reconnect');
        }
        expect(third.pid).not.toBe(first.pid);
        expect(third.n).toBe(preparedStatements ? 1 : 0);
        expect(connections.size).toBe(2);
      } finally {
        await db.close();
      }
    }
  });

  it('a prepared statement the server connection does not have (a pooler in transaction mode) fails with what to change', async () => {
    const config = testConfig({ targets: [{ name: 'main', connectionString: urlFor({ user: reaper }) }], policies: [{ name: 'idle', maxIdle: '1h' }] });
    const filter = snapshotFilter(compilePolicies(config, 'main'), PROTECT_ALL);
    const db = openTarget(config.targets[0]!, { applicationName: config.applicationName });
    try {
      const version = async (c: Db) => Number((await c.query<{ v: string }>("SELECT current_setting('server_version_num') AS v"))[0]!.v);
      const read = async (c: Db) => readSnapshot(c, { withQuery: false, filter, serverVersionNum: await version(c) });
      // prepared by the first run; then the server connection loses it, as when a pooler hands
      // the next run another one
      const error = await db.withConnection(async (c) => {
        await read(c);
        await c.query('DEALLOCATE ALL');
        return read(c).then(() => undefined, (err: unknown) => err as Error & { code?: string });
      });
      expect(error?.code).toBe('26000');
      expect(error?.message).toContain('set preparedStatements: false for this target');
    } finally {
      await db.close();
    }
  });
});
