import pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { startEmbeddedPostgres } from '../../dev/embedded/embedded-postgres.js';
import { ensureReaperRole, ensureRole, outcomeOf, PASSWORD, reap, resultOf, Sessions, testConfig, unique, type TestSession } from '../helpers/pg.js';

// The rules on a real server: a lock chain, a pool that shrinks, a query that outlives its
// cancel, connection pressure, listeners.

const s = new Sessions();
let reaper: string;
let app: string;
const table = `rules_t_${Math.random().toString(36).slice(2, 8)}`;

beforeAll(async () => {
  await s.start();
  reaper = await ensureReaperRole(s.admin);
  app = await ensureRole(s.admin, 'app_t');
  await s.admin.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v int)`);
  await s.admin.query(`INSERT INTO ${table} SELECT g, 0 FROM generate_series(1, 3) g`);
  await s.admin.query(`GRANT ALL ON ${table} TO app_t`);
});
afterEach(() => s.closeAll());
afterAll(async () => {
  await s.admin.query(`DROP TABLE IF EXISTS ${table}`);
  await s.end();
});

/** Waits until the session waits on a lock, and has for `ms`. */
async function waitingFor(pid: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms + 10_000;
  for (;;) {
    const row = (await s.admin.query<{ ms: number | null }>("SELECT extract(epoch FROM clock_timestamp() - state_change)::float8 * 1000 AS ms FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'", [pid])).rows[0];
    if (row?.ms && row.ms > ms) return;
    if (Date.now() > deadline) throw new Error(`session ${pid} did not wait on a lock for ${ms} ms`);
    await sleep(50);
  }
}

const settle = <T>(p: Promise<T>) => p.then((v) => ({ ok: true as const, v }), (e: { code?: string }) => ({ ok: false as const, code: e.code }));

describe('maxBlocking', () => {
  it('terminates the idle-in-transaction holder of a row lock; the UPDATE and the SELECT FOR UPDATE queued behind it complete', async () => {
    const tag = unique('t-block');
    const holder = await s.session({ user: app, application: `${tag}-holder` });
    const w1 = await s.session({ user: app, application: `${tag}-update` });
    const w2 = await s.session({ user: app, application: `${tag}-select` });
    const lonely = await s.session({ user: app, application: `${tag}-lonely` });
    await holder.client.query('BEGIN');
    await holder.client.query(`UPDATE ${table} SET v = v + 1 WHERE id = 1`);
    await lonely.client.query('BEGIN');
    await lonely.client.query(`SELECT * FROM ${table} WHERE id = 3 FOR UPDATE`); // locks nobody wants
    const update = settle(w1.client.query(`UPDATE ${table} SET v = v + 1 WHERE id = 1`));
    await waitingFor(w1.pid, 0);
    const select = settle(w2.client.query(`SELECT v FROM ${table} WHERE id = 1 FOR UPDATE`));
    await waitingFor(w2.pid, 0);
    await waitingFor(w1.pid, 2000);

    const report = await reap(testConfig({ policies: [{ name: 'blockers', maxBlocking: '2s', match: { applications: [`${tag}-*`] } }] }, reaper));

    expect(report.results.map((r) => [r.decision.session.pid, r.decision.reason, r.outcome])).toEqual([[holder.pid, 'blocking', 'terminated']]);
    const d = resultOf(report, holder.pid)!.decision;
    expect(d.details?.blockedSessions).toBe(2);
    expect(d.seconds).toBeGreaterThan(2);
    expect((await update).ok).toBe(true);
    expect((await select).ok).toBe(true);
    expect(await s.alive([w1.pid, w2.pid, lonely.pid])).toEqual(new Set([w1.pid, w2.pid, lonely.pid]));
  });

  it('a chain A ← B ← C ends with only A terminated', async () => {
    const tag = unique('t-chain');
    const [a, b, c] = [await s.session({ user: app, application: `${tag}-a` }), await s.session({ user: app, application: `${tag}-b` }), await s.session({ user: app, application: `${tag}-c` })];
    await a.client.query('BEGIN');
    await a.client.query(`UPDATE ${table} SET v = v + 1 WHERE id = 1`);
    await b.client.query('BEGIN');
    await b.client.query(`UPDATE ${table} SET v = v + 1 WHERE id = 2`);
    const bWaits = settle(b.client.query(`UPDATE ${table} SET v = v + 1 WHERE id = 1`)); // B waits on A
    await waitingFor(b.pid, 0);
    const cWaits = settle(c.client.query(`UPDATE ${table} SET v = v + 1 WHERE id = 2`)); // C waits on B
    await waitingFor(c.pid, 1500);

    const report = await reap(testConfig({ policies: [{ name: 'blockers', maxBlocking: '1s', match: { applications: [`${tag}-*`] } }] }, reaper));

    expect(report.results.map((r) => [r.decision.session.pid, r.outcome])).toEqual([[a.pid, 'terminated']]);
    expect(resultOf(report, a.pid)!.decision.details?.blockedSessions).toBe(2);
    expect((await bWaits).ok).toBe(true); // B got A's row once A was gone
    expect(await s.alive([a.pid, b.pid, c.pid])).toEqual(new Set([b.pid, c.pid]));
    await b.client.query('ROLLBACK');
    expect((await cWaits).ok).toBe(true);
  });
});

describe('keepIdle', () => {
  it('10 idle sessions of one app and 3 of another, keepIdle 4: the 6 oldest of the first go; a fresh session counts toward the 4', async () => {
    const tag = unique('t-keep');
    const web: TestSession[] = [];
    for (let i = 0; i < 10; i++) {
      const x = await s.session({ user: app, application: `${tag}-web` });
      await x.client.query('SELECT 1');
      web.push(x);
      await sleep(15); // distinct state_change, oldest first
    }
    const jobs = [];
    for (let i = 0; i < 3; i++) jobs.push(await s.session({ user: app, application: `${tag}-jobs` }));
    await s.agedOver(web.at(-1)!.pid, 1000);
    await s.agedOver(jobs.at(-1)!.pid, 1000);
    const config = testConfig({ policies: [{ name: 'shrink', maxIdle: '1s', keepIdle: 4, match: { applications: [`${tag}-*`] } }] }, reaper);

    const first = await reap(config);
    expect(first.results.map((r) => r.decision.session.pid).sort()).toEqual(web.slice(0, 6).map((x) => x.pid).sort());
    expect(first.results.every((r) => r.outcome === 'terminated')).toBe(true);
    expect(await s.alive([...web, ...jobs].map((x) => x.pid))).toEqual(new Set([...web.slice(6), ...jobs].map((x) => x.pid)));

    // a fresh idle session, still under maxIdle, is one of the 4 kept: the oldest of the 4 goes
    const fresh = await s.session({ user: app, application: `${tag}-web` });
    await fresh.client.query('SELECT 1');
    const second = await reap(config);
    expect(second.results.map((r) => [r.decision.session.pid, r.outcome])).toEqual([[web[6]!.pid, 'terminated']]);
  });
});

describe('terminateAfter', () => {
  it('a query still running past maxQueryDuration + terminateAfter is terminated, not cancelled (escalated)', async () => {
    const tag = unique('t-esc');
    const q = await s.session({ user: app, application: `${tag}-q` });
    const running = settle(q.client.query('SELECT pg_sleep(60)'));
    await s.agedOver(q.pid, 1600, 'query_start');
    const report = await reap(testConfig({ policies: [{ name: 'slow', maxQueryDuration: '500ms', action: 'cancel', terminateAfter: '1s', match: { applications: [`${tag}-*`] } }] }, reaper));
    expect(report.results.map((r) => [r.decision.action, r.decision.reason, r.decision.escalated, r.outcome])).toEqual([['terminate', 'query_duration', true, 'terminated']]);
    expect(resultOf(report, q.pid)!.decision.threshold).toBe(1.5);
    expect((await running).ok).toBe(false);
    expect(await s.isAlive(q.pid)).toBe(false);
  });
});

describe('when: connectionsAbove', () => {
  it('does nothing under the threshold; above it terminates just enough of the oldest idle sessions', async () => {
    // a server of its own with 20 connections (17 client slots: 3 reserved for superusers)
    const server = await startEmbeddedPostgres({ maxConnections: 20 });
    const clients: pg.Client[] = [];
    try {
      const open = async (url: string, application: string) => {
        const c = new pg.Client({ connectionString: url, application_name: application });
        c.on('error', () => undefined);
        await c.connect();
        clients.push(c);
        return c;
      };
      const admin = await open(server.url, 'test-harness');
      await admin.query(`CREATE ROLE reaper LOGIN PASSWORD '${PASSWORD}'`);
      await admin.query('GRANT pg_read_all_stats, pg_signal_backend TO reaper');
      await admin.query(`CREATE ROLE app LOGIN PASSWORD '${PASSWORD}'`);
      const url = (user: string) => server.url.replace(/\/\/postgres:[^@]*@/, `//${user}:${PASSWORD}@`);
      const pids: number[] = [];
      for (let i = 0; i < 11; i++) {
        const c = await open(url('app'), 'pool');
        await c.query('SELECT 1');
        pids.push((c as unknown as { processID: number }).processID);
        await sleep(15);
      }
      await sleep(600);
      // 11 pool sessions + the admin + the reaper = 13 client connections
      const config = (connectionsAbove: unknown) =>
        validateConfig({ targets: [{ name: 'small', connectionString: url('reaper') }], exempt: { applications: ['test-harness'] }, policies: [{ name: 'pressure', maxIdle: '500ms', when: { connectionsAbove } }] });
      const alive = async () => new Set((await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE pid = ANY($1)', [pids])).rows.map((r) => r.pid));

      const calm = await reap(config('80%')); // 13.6
      expect(calm.snapshot!.clientSlots).toBe(17);
      expect(calm.results).toEqual([]);
      expect(calm.decisions!.filter((d) => d.held)).toHaveLength(11);
      expect((await alive()).size).toBe(11);

      const pressed = await reap(config('50%')); // 8.5: 13 → 8 takes 5
      expect(pressed.results.map((r) => [r.decision.session.pid, r.outcome])).toEqual(pids.slice(0, 5).map((p) => [p, 'terminated']));
      expect(await alive()).toEqual(new Set(pids.slice(5)));
    } finally {
      for (const c of clients) await c.end().catch(() => undefined);
      await server.stop();
    }
  });
});

describe('exemptListeners', () => {
  it('a session that ran LISTEN survives maxIdle; with exemptListeners false it is terminated; select \'LISTEN\' is no listener', async () => {
    const tag = unique('t-listen');
    const listener = await s.session({ user: app, application: `${tag}-listener` });
    await listener.client.query('LISTEN jobs');
    const commented = await s.session({ user: app, application: `${tag}-commented` });
    await commented.client.query('/* worker */\n  -- wake me up\n  listen "cache-invalidation"');
    const impostor = await s.session({ user: app, application: `${tag}-impostor` });
    await impostor.client.query("SELECT 'LISTEN'");
    for (const x of [listener, commented, impostor]) await s.agedOver(x.pid, 500);
    const policies = [{ name: 'idle', maxIdle: '500ms', match: { applications: [`${tag}-*`] } }];

    const spared = await reap(testConfig({ policies }, reaper));
    expect(spared.results.map((r) => [r.decision.session.pid, r.outcome])).toEqual([[impostor.pid, 'terminated']]);
    expect(spared.snapshot!.sessions.find((x) => x.pid === listener.pid)).toMatchObject({ listener: true, state: 'idle' });
    expect(spared.snapshot!.sessions.find((x) => x.pid === listener.pid)).not.toHaveProperty('query');

    const off = await reap(testConfig({ policies, exemptListeners: false }, reaper));
    expect(off.results.map((r) => r.decision.session.pid).sort()).toEqual([listener.pid, commented.pid].sort());
    expect(outcomeOf(off, listener.pid)).toBe('terminated');
  });
});
