import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { AdvisoryLease, keepalivesFor } from '../../src/coord/advisory-lease.js';
import { DEFAULT_LOCK_KEY } from '../../src/config/schema.js';
import { targetKey } from '../../src/coord/lock-key.js';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { createLogger } from '../../src/log/logger.js';
import { captureLog } from '../helpers/log-capture.js';
import { adminUrl, ensureReaperRole, ensureRole, Sessions, unique, urlFor } from '../helpers/pg.js';

// Replicas in one process: leadership per target on advisory locks, and a holder whose lock
// connection is cut from outside.

const s = new Sessions();
let reaper: string;
let app: string;
const daemons: Daemon[] = [];

beforeAll(async () => {
  await s.start();
  reaper = await ensureReaperRole(s.admin);
  app = await ensureRole(s.admin, 'app_t');
});
afterEach(async () => {
  for (const d of daemons.splice(0)) await d.stop();
  await s.closeAll();
});
afterAll(() => s.end());

const unsigned = (n: number) => (n < 0 ? n + 2 ** 32 : n);

/** The pids holding each target's lock, from pg_locks (classid = lockKey, objid = target key, objsubid 2). */
async function holders(names: string[]): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const name of names) {
    const rows = await s.admin.query<{ pid: number }>(
      "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 2",
      [unsigned(DEFAULT_LOCK_KEY), unsigned(targetKey(name))],
    );
    out[name] = rows.rows.map((r) => r.pid);
  }
  return out;
}

async function replica(targets: string[], tag: string, log = captureLog()): Promise<Daemon> {
  const d = await startDaemon(
    validateConfig({
      schedule: '0 0 1 1 *',
      http: { host: '127.0.0.1', port: 0 },
      coordination: { mode: 'advisory-lock' },
      targets: targets.map((name) => ({ name, connectionString: urlFor({ user: reaper }) })),
      policies: [{ name: 'idle', maxIdle: '300ms', match: { applications: [`${tag}-*`] } }],
    }),
    { logger: createLogger('info', log.stream), version: 'test' },
  );
  daemons.push(d);
  await d.startupRuns();
  return d;
}

const leaderOf = async (d: Daemon, target: string) => Number(new RegExp(`^pg_reaper_leader\\{target="${target}"\\} (\\d)$`, 'm').exec(await (await fetch(`http://127.0.0.1:${d.http.port}/metrics`)).text())?.[1]);

describe('coordination: advisory-lock', () => {
  it('leadership is per target: each target has exactly one leader, visible in pg_locks', async () => {
    const tag = unique('t-lead');
    const a = await replica(['one'], tag);
    const b = await replica(['one', 'two'], tag);
    expect([await leaderOf(a, 'one'), await leaderOf(b, 'one'), await leaderOf(b, 'two')]).toEqual([1, 0, 1]);
    const locks = await holders(['one', 'two']);
    expect(locks.one).toHaveLength(1);
    expect(locks.two).toHaveLength(1);
    expect(locks.one![0]).not.toBe(locks.two![0]);
    // the lock connections carry our application_name: no replica ever reaps them
    const apps = await s.admin.query<{ application_name: string }>('SELECT application_name FROM pg_stat_activity WHERE pid = ANY($1)', [[...locks.one!, ...locks.two!]]);
    expect(apps.rows.map((r) => r.application_name)).toEqual(['pg-reaper', 'pg-reaper']);

    // only the holder acts; the other stands by and counts it
    const victim = await s.session({ user: app, application: `${tag}-v` });
    await s.agedOver(victim.pid, 300);
    await Promise.all([a.runNow('one'), b.runNow('one')]);
    expect(await s.isAlive(victim.pid)).toBe(false);
    const body = await (await fetch(`http://127.0.0.1:${b.http.port}/metrics`)).text();
    expect(body).toMatch(/^pg_reaper_runs_total\{target="one",result="standby"\} 2$/m);
    expect(body).toMatch(/^pg_reaper_target_up\{target="one"\} 1$/m);

    // a graceful stop releases the lock: the other replica takes over at its next run
    await a.stop();
    daemons.splice(daemons.indexOf(a), 1);
    // the server frees the lock when it has ended A's session, a moment after A closed its socket
    const deadline = Date.now() + 5000;
    while ((await holders(['one'])).one!.length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await b.runNow('one');
    expect(await leaderOf(b, 'one')).toBe(1);
    expect((await holders(['one'])).one).toHaveLength(1);
  });

  it('a holder whose lock connection is cut stands by while another holds the lock, never signals without it, and retakes it later', async () => {
    const tag = unique('t-cut');
    const log = captureLog();
    const d = await replica(['main'], tag, log);
    const [held] = (await holders(['main'])).main!;
    expect(held).toBeDefined();

    // cut the holder's session and take the lock from outside, as another replica would
    const other = new pg.Client({ connectionString: adminUrl(), application_name: 'pg-reaper' });
    await other.connect();
    try {
      await s.admin.query('SELECT pg_terminate_backend($1)', [held]);
      await other.query('SELECT pg_advisory_lock($1, $2)', [DEFAULT_LOCK_KEY, targetKey('main')]);
      const victim = await s.session({ user: app, application: `${tag}-v` });
      await s.agedOver(victim.pid, 300);

      await d.runNow('main'); // the cut connection fails this run, or the new one finds the lock taken
      await d.runNow('main');
      expect(await s.isAlive(victim.pid)).toBe(true);
      expect(await leaderOf(d, 'main')).toBe(0);
      expect(log.lines.filter((l) => l.outcome !== undefined)).toEqual([]);
      expect(log.lines.some((l) => l.msg === 'standing by: another replica holds the lock of this target')).toBe(true);

      await other.query('SELECT pg_advisory_unlock($1, $2)', [DEFAULT_LOCK_KEY, targetKey('main')]);
      await d.runNow('main');
      expect(await leaderOf(d, 'main')).toBe(1);
      expect(await s.isAlive(victim.pid)).toBe(false);
      expect(log.lines.some((l) => l.msg === 'took the lock: this replica now acts on the target')).toBe(true);
    } finally {
      await other.end();
    }
  });

  it('the lock statement sets keepalives (and client_connection_check_interval from 14) so the server ends an orphaned holder within leaseTimeout', async () => {
    expect(keepalivesFor(30_000)).toEqual({ idle: 10, interval: 5, count: 3, checkMs: 10_000 });
    const c = new pg.Client({ connectionString: urlFor({ user: reaper }) });
    await c.connect();
    try {
      const db = { query: async <R extends object>(sql: string, params?: readonly unknown[]) => (await c.query<R>(sql, params as unknown[])).rows };
      const lease = new AdvisoryLease(DEFAULT_LOCK_KEY, targetKey('keepalive-check'), 30_000);
      expect(await lease.hold(db, c)).toBe(true);
      expect(await lease.hold(db, c)).toBe(true); // held: no second statement, no second lock count
      const show = async (name: string) => (await c.query<Record<string, string>>(`SHOW ${name}`)).rows[0]![name];
      expect([await show('tcp_keepalives_idle'), await show('tcp_keepalives_interval'), await show('tcp_keepalives_count')]).toEqual(['10', '5', '3']);
      if (Number(await show('server_version_num')) >= 140000) expect(await show('client_connection_check_interval')).toBe('10s');
      expect((await holders(['keepalive-check']))['keepalive-check']).toEqual([(c as unknown as { processID: number }).processID]);
    } finally {
      await c.end();
    }
  });
});
