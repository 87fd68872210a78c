import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import type { Db } from '../../src/db/db.js';
import { readSnapshot } from '../../src/db/snapshot.js';
import { openTarget } from '../../src/db/target.js';
import type { Config } from '../../src/config/schema.js';
import { plan, type Decision } from '../../src/plan/planner.js';
import { compilePolicies } from '../../src/policy/compile.js';
import { execute } from '../../src/run/executor.js';
import { ensureReaperRole, ensureRole, HARNESS_APP, outcomeOf, PASSWORD, reap, Sessions, testConfig, unique, urlFor } from '../helpers/pg.js';

// What an operator fears most: the reaper killing replication, background processes or its own
// connections, one bad victim or one bad server stopping the rest, a race killing the wrong pid.

const s = new Sessions();
let reaper: string;
let app: string;

beforeAll(async () => {
  await s.start();
  reaper = await ensureReaperRole(s.admin);
  app = await ensureRole(s.admin, 'app_t');
});
afterEach(() => s.closeAll());
afterAll(() => s.end());

// The run's steps one by one, so a test can act between planning and executing.
const planNow = async (db: Db, config: Config, applicationName = config.applicationName) =>
  plan(await readSnapshot(db, { withQuery: false }), compilePolicies(config, 'main'), { target: 'main', applicationName });
const executeNow = async (db: Db, config: Config, decisions: Decision[]) => {
  const results = await execute(decisions, { db, applicationName: config.applicationName, terminateTimeoutMs: 5000, sleep: (ms) => sleep(ms), now: () => performance.now() });
  return new Map(results.map((r) => [r.decision.session.pid, r.outcome]));
};

describe('sessions that are never ours to kill', () => {
  it('a policy matching everything spares our own connections, other replicas, walsenders and every non-client backend', async () => {
    const victim = await s.session({ user: app, application: unique('t-all') });
    const otherReplica = await s.session({ user: reaper, application: 'pg-reaper' });
    const walsender = await s.session({ application: unique('t-walsender'), replication: true });
    await walsender.client.query('IDENTIFY_SYSTEM');
    const background = (await s.admin.query<{ pid: number; backend_type: string }>("SELECT pid, backend_type FROM pg_stat_activity WHERE backend_type <> 'client backend'")).rows;
    expect(background.map((b) => b.backend_type)).toEqual(expect.arrayContaining(['walsender', 'checkpointer']));
    await s.agedOver(victim.pid, 300, 'backend_start');

    // the reaper runs as superuser here, so nothing but the rules themselves protects them
    const config = testConfig({ exempt: { applications: [HARNESS_APP] }, policies: [{ name: 'everything', maxConnectionAge: '1ms', maxIdle: '1ms' }] });
    const db = openTarget(config.targets[0]!, { applicationName: config.applicationName });
    const selfPid = (await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'))[0]!.pid;
    const report = await reap(config, db);

    expect(report.ok).toBe(true);
    expect(report.snapshot!.privileges.superuser).toBe(true);
    expect(report.results.map((r) => r.decision.session.pid)).toEqual([victim.pid]);
    expect(outcomeOf(report, victim.pid)).toBe('terminated');
    // our own connection was closed by reap(): wait for its backend to exit, then look
    await s.gone(selfPid);
    const survivors = await s.alive([selfPid, otherReplica.pid, walsender.pid, ...background.map((b) => b.pid)]);
    expect(survivors).toEqual(new Set([otherReplica.pid, walsender.pid, ...background.map((b) => b.pid)]));
    expect(await s.isAlive(victim.pid)).toBe(false);
  });
});

describe('races', () => {
  it('a session that runs a query between plan and execute is skipped_changed and lives', async () => {
    const tag = unique('t-race');
    const busy = await s.session({ user: app, application: `${tag}-busy` });
    const still = await s.session({ user: app, application: `${tag}-still` });
    await s.agedOver(busy.pid, 400);
    await s.agedOver(still.pid, 400);
    const config = testConfig({ policies: [{ name: 'idle', maxIdle: '400ms', match: { applications: [`${tag}-*`] } }] }, reaper);
    const db = openTarget(config.targets[0]!, { applicationName: config.applicationName });
    try {
      const decisions = await planNow(db, config);
      expect(decisions.map((d) => d.session.pid).sort()).toEqual([busy.pid, still.pid].sort());

      await busy.client.query('SELECT 1'); // the session wakes up after we looked

      const byPid = await executeNow(db, config, decisions);
      expect(byPid.get(busy.pid)).toBe('skipped_changed');
      expect(byPid.get(still.pid)).toBe('terminated');
      expect(await s.alive([busy.pid, still.pid])).toEqual(new Set([busy.pid]));
    } finally {
      await db.close();
    }
  });

  it('a pid whose backend exited and was replaced is not signalled (backend_start differs)', async () => {
    const tag = unique('t-reuse');
    const a = await s.session({ user: app, application: `${tag}-a` });
    await s.agedOver(a.pid, 300);
    const config = testConfig({ policies: [{ name: 'idle', maxIdle: '300ms', match: { applications: [`${tag}-*`] } }] }, reaper);
    const db = openTarget(config.targets[0]!, { applicationName: config.applicationName });
    try {
      // forge the identity the snapshot saw: same pid, another backend_start, as after pid reuse
      const forged = (await planNow(db, config)).map((d) => ({ ...d, session: { ...d.session, backendStart: '2001-01-01 00:00:00+00' } }));
      expect([...(await executeNow(db, config, forged)).values()]).toEqual(['skipped_changed']);
      expect(await s.isAlive(a.pid)).toBe(true);
    } finally {
      await db.close();
    }
  });
});

/** Runs `SELECT 1` on the session every 10 ms until stopped (or until the session is killed). */
function busy(c: { query(sql: string): Promise<unknown> }): { stop(): Promise<void> } {
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        await c.query('SELECT 1');
      } catch {
        return;
      }
      await sleep(10);
    }
  })();
  return { stop: async () => ((running = false), await loop) };
}

describe('the guard re-checks the fact the decision rests on, not more', () => {
  it('terminates a session busy inside one long transaction (maxTransactionDuration), though its state_change moves every 10 ms', async () => {
    const tag = unique('t-busy-tx');
    const victim = await s.session({ user: app, application: `${tag}-a` });
    await victim.client.query('BEGIN');
    const loop = busy(victim.client);
    try {
      await s.agedOver(victim.pid, 500, 'xact_start');
      const config = testConfig({ policies: [{ name: 'tx', maxTransactionDuration: '500ms', match: { applications: [`${tag}-*`] } }] }, reaper);
      const db = openTarget(config.targets[0]!, { applicationName: config.applicationName });
      try {
        const decisions = await planNow(db, config);
        expect(decisions.map((d) => [d.session.pid, d.reason])).toEqual([[victim.pid, 'transaction_duration']]);
        await sleep(50); // several statements later: state_change and query_start have moved
        expect((await executeNow(db, config, decisions)).get(victim.pid)).toBe('terminated');
      } finally {
        await db.close();
      }
    } finally {
      await loop.stop();
    }
    expect(await s.isAlive(victim.pid)).toBe(false);
  });

  it('terminates an autocommit session that runs short queries back to back (maxConnectionAge)', async () => {
    const tag = unique('t-busy-age');
    const victim = await s.session({ user: app, application: `${tag}-a` });
    const loop = busy(victim.client);
    try {
      await s.agedOver(victim.pid, 500, 'backend_start');
      const config = testConfig({ policies: [{ name: 'age', maxConnectionAge: '500ms', match: { applications: [`${tag}-*`] } }] }, reaper);
      const report = await reap(config);
      expect(report.results.map((r) => [r.decision.session.pid, r.decision.reason, r.outcome])).toEqual([[victim.pid, 'connection_age', 'terminated']]);
    } finally {
      await loop.stop();
    }
    expect(await s.isAlive(victim.pid)).toBe(false);
  });

  it('query_duration: a session whose long query ended and another began between plan and execute is skipped_changed; the same query is cancelled', async () => {
    const tag = unique('t-query');
    const q = await s.session({ user: app, application: `${tag}-a` });
    const config = testConfig({ policies: [{ name: 'slow', maxQueryDuration: '300ms', action: 'cancel', match: { applications: [`${tag}-*`] } }] }, reaper);
    const db = openTarget(config.targets[0]!, { applicationName: config.applicationName });
    try {
      const first = q.client.query('SELECT pg_sleep(0.6)');
      await s.agedOver(q.pid, 300, 'query_start');
      const decisions = await planNow(db, config);
      expect(decisions.map((d) => [d.session.pid, d.reason])).toEqual([[q.pid, 'query_duration']]);
      await first;
      const second = q.client.query('SELECT pg_sleep(1.5)').then(() => 'finished', (e: { code?: string }) => e.code);
      await s.waitForState(q.pid, 'active');
      expect((await executeNow(db, config, decisions)).get(q.pid)).toBe('skipped_changed');
      await s.agedOver(q.pid, 300, 'query_start');
      expect((await executeNow(db, config, await planNow(db, config))).get(q.pid)).toBe('cancelled');
      expect(await second).toBe('57014');
    } finally {
      await db.close();
    }
  });

  it('idle_in_transaction: a session that ran a statement between plan and execute is skipped_changed', async () => {
    const tag = unique('t-iit');
    const t = await s.session({ user: app, application: `${tag}-a` });
    await t.client.query('BEGIN');
    await s.agedOver(t.pid, 300);
    const config = testConfig({ policies: [{ name: 'iit', maxIdleInTransaction: '300ms', match: { applications: [`${tag}-*`] } }] }, reaper);
    const db = openTarget(config.targets[0]!, { applicationName: config.applicationName });
    try {
      const decisions = await planNow(db, config);
      expect(decisions.map((d) => [d.session.pid, d.reason])).toEqual([[t.pid, 'idle_in_transaction']]);
      await t.client.query('SELECT 1');
      expect((await executeNow(db, config, decisions)).get(t.pid)).toBe('skipped_changed');
      expect(await s.isAlive(t.pid)).toBe(true);
    } finally {
      await db.close();
    }
  });
});

describe('the guard for blocking', () => {
  it('a blocker that committed and opened another transaction between plan and execute is skipped_changed', async () => {
    const tag = unique('t-bguard');
    const table = `bguard_${tag.replace(/-/g, '_')}`;
    await s.admin.query(`CREATE TABLE ${table} (id int PRIMARY KEY)`);
    await s.admin.query(`INSERT INTO ${table} VALUES (1)`);
    await s.admin.query(`GRANT ALL ON ${table} TO app_t`);
    try {
      const holder = await s.session({ user: app, application: `${tag}-holder` });
      const waiter = await s.session({ user: app, application: `${tag}-waiter` });
      await holder.client.query('BEGIN');
      await holder.client.query(`SELECT * FROM ${table} FOR UPDATE`);
      const waits = waiter.client.query(`SELECT * FROM ${table} FOR UPDATE`);
      const deadline = Date.now() + 10_000;
      while ((await s.admin.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock' AND clock_timestamp() - state_change > interval '500 ms'", [waiter.pid])).rowCount === 0) {
        if (Date.now() > deadline) throw new Error('the waiter never waited');
        await sleep(50);
      }
      const config = testConfig({ policies: [{ name: 'b', maxBlocking: '500ms', match: { applications: [`${tag}-*`] } }] }, reaper);
      const db = openTarget(config.targets[0]!, { applicationName: config.applicationName });
      try {
        const decisions = await planNow(db, config);
        expect(decisions.map((d) => [d.session.pid, d.reason])).toEqual([[holder.pid, 'blocking']]);
        await holder.client.query('COMMIT'); // the waiter gets its lock
        await waits;
        await holder.client.query('BEGIN');
        await holder.client.query('SELECT 1'); // a new transaction: not the one that blocked
        expect((await executeNow(db, config, decisions)).get(holder.pid)).toBe('skipped_changed');
        expect(await s.isAlive(holder.pid)).toBe(true);
      } finally {
        await db.close();
      }
    } finally {
      await s.closeAll();
      await s.admin.query(`DROP TABLE ${table}`);
    }
  });
});

describe('the guard inside the kill statement', () => {
  it('refuses an own-application session and a superuser session even when a decision names them', async () => {
    const tag = unique('t-guard');
    const replica = await s.session({ user: app, application: 'pg-reaper' });
    const su = await s.session({ application: `${tag}-su` });
    const plain = await s.session({ user: app, application: `${tag}-plain` });
    for (const x of [replica, su, plain]) await s.agedOver(x.pid, 300);
    const config = testConfig({ policies: [{ name: 'idle', maxIdle: '300ms' }], exempt: { applications: [HARNESS_APP] } }, reaper);
    const db = openTarget(config.targets[0]!, { applicationName: config.applicationName });
    try {
      const decisions = (await planNow(db, config, 'someone-else'))
        .filter((d) => [replica.pid, su.pid, plain.pid].includes(d.session.pid))
        // as if the planner and the privilege check had both been wrong
        .map((d) => ({ ...d, capped: false, session: { ...d.session, canSignal: true } }));
      expect(decisions).toHaveLength(3);
      const byPid = await executeNow(db, config, decisions);
      expect(byPid.get(replica.pid)).toBe('skipped_changed');
      expect(byPid.get(su.pid)).toBe('skipped_changed');
      expect(byPid.get(plain.pid)).toBe('terminated');
      expect(await s.alive([replica.pid, su.pid, plain.pid])).toEqual(new Set([replica.pid, su.pid]));
    } finally {
      await db.close();
    }
  });
});

describe('errors stay with their victim', () => {
  it('when the batched statement fails, each victim is retried alone and one failure does not stop the others', async () => {
    const tag = unique('t-fault');
    const victims = [];
    for (let i = 0; i < 3; i++) victims.push(await s.session({ user: app, application: `${tag}-${i}` }));
    for (const v of victims) await s.agedOver(v.pid, 300);
    const config = testConfig({ policies: [{ name: 'idle', maxIdle: '300ms', match: { applications: [`${tag}-*`] } }] }, reaper);
    const real = openTarget(config.targets[0]!, { applicationName: config.applicationName });
    const poisoned = victims[1]!.pid;
    let signalStatements = 0;
    // Fault injection at our Db interface: the statements still run on the real server, except
    // that the batch and the poisoned victim's own statement fail as a server error would.
    const faulty: Db & { close(): Promise<void> } = {
      close: () => real.close(),
      query: async (sql, params) => {
        if (sql.includes('pg_terminate_backend')) {
          signalStatements++;
          const pids = params![0] as number[];
          if (pids.length > 1 || pids[0] === poisoned) throw Object.assign(new Error('injected: permission denied to terminate process'), { code: '42501' });
        }
        return real.query(sql, params);
      },
    };

    const report = await reap(config, faulty as never);

    expect(signalStatements).toBe(4);
    expect(victims.map((v) => outcomeOf(report, v.pid))).toEqual(['terminated', 'failed', 'terminated']);
    expect(report.results.find((r) => r.outcome === 'failed')!.error).toContain('SQLSTATE 42501');
    expect(report.ok).toBe(false);
    expect(await s.alive(victims.map((v) => v.pid))).toEqual(new Set([poisoned]));
  });
});

describe('connections', () => {
  it('reads the password from passwordFile, alongside a connection string without one', async () => {
    const tag = unique('t-pwfile');
    const a = await s.session({ user: app, application: `${tag}-a` });
    await s.agedOver(a.pid, 300);
    const dir = mkdtempSync(join(tmpdir(), 'pg-reaper-test-'));
    writeFileSync(join(dir, 'password'), `${PASSWORD}\n`);
    const url = new URL(urlFor({ user: reaper }));
    url.password = '';
    const config = validateConfig({
      targets: [{ name: 'main', connectionString: url.toString(), passwordFile: join(dir, 'password') }],
      policies: [{ name: 'idle', maxIdle: '300ms', match: { applications: [`${tag}-*`] } }],
    });

    const report = await reap(config).finally(() => rmSync(dir, { recursive: true, force: true }));

    expect(report.ok).toBe(true);
    expect(outcomeOf(report, a.pid)).toBe('terminated');
  });

  it('an unreachable server fails its own run with a clear error and no secret in it', async () => {
    const config = validateConfig({
      targets: [{ name: 'down', connectionString: 'postgres://reaper:s3cretpw@127.0.0.1:1/postgres', connectTimeout: '2s' }],
      policies: [{ name: 'idle', maxIdle: '1m' }],
    });
    const report = await reap(config);
    expect(report.ok).toBe(false);
    expect(report.error).toMatch(/ECONNREFUSED/);
    expect(report.error).not.toContain('s3cretpw');
  });

  it('a wrong password is reported without the password', async () => {
    const url = new URL(urlFor({ user: reaper }));
    url.password = 'wrong-password-123';
    const report = await reap(validateConfig({ targets: [{ name: 'main', connectionString: url.toString() }], policies: [{ name: 'idle', maxIdle: '1m' }] }));
    expect(report.ok).toBe(false);
    expect(report.error).toMatch(/password authentication failed/);
    expect(report.error).not.toContain('wrong-password-123');
  });
});

describe('visibility', () => {
  it('a reaper without pg_read_all_stats cannot judge other roles and leaves them alone', async () => {
    const blind = await ensureRole(s.admin, 'blind_reaper_t', 'NOSUPERUSER');
    await s.admin.query('REVOKE pg_read_all_stats, pg_signal_backend FROM blind_reaper_t');
    const tag = unique('t-blind');
    const a = await s.session({ user: app, application: `${tag}-a` });
    await s.agedOver(a.pid, 300);
    const report = await reap(testConfig({ policies: [{ name: 'all', maxIdle: '300ms', maxConnectionAge: '1ms', match: {} }] }, blind));
    expect(report.ok).toBe(true);
    expect(report.snapshot!.privileges).toEqual({ superuser: false, signalBackend: false, readAllStats: false });
    expect(report.results).toEqual([]);
    // counted (as state unknown), never judged
    expect(report.snapshot!.states.find((x) => x.state === null)?.count).toBeGreaterThanOrEqual(1);
    expect(report.snapshot!.sessions.find((x) => x.pid === a.pid)).toBeUndefined();
    expect(await s.isAlive(a.pid)).toBe(true);
  });

  it('without pg_read_all_stats, only client backends count as unknown sessions: not the logical replication launcher (a role, no database)', async () => {
    const blind = await ensureRole(s.admin, 'blind_reaper_t', 'NOSUPERUSER');
    await s.admin.query('REVOKE pg_read_all_stats, pg_signal_backend FROM blind_reaper_t');
    const a = await s.session({ user: app, application: unique('t-unknown') });
    // the blind role sees the launcher as a row with a role, no database and a NULL backend_type
    const seen = new pg.Client({ connectionString: urlFor({ user: blind }) });
    await seen.connect();
    try {
      const launcher = (await s.admin.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE backend_type = 'logical replication launcher'")).rows[0];
      expect(launcher).toBeDefined();
      const asBlind = (await seen.query('SELECT backend_type, usesysid IS NOT NULL AS has_role, datid IS NULL AS no_database FROM pg_stat_activity WHERE pid = $1', [launcher!.pid])).rows[0];
      expect(asBlind).toEqual({ backend_type: null, has_role: true, no_database: true });
    } finally {
      await seen.end();
    }
    const report = await reap(testConfig({ policies: [{ name: 'all', maxIdle: '1h' }] }, blind));
    // the truth, read as superuser: other roles' client backends (ours is the reaper's own)
    const others = (await s.admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND usename <> 'blind_reaper_t'")).rows[0]!.n;
    expect(others).toBeGreaterThanOrEqual(2); // the suite's admin session and `a`
    expect(report.snapshot!.states.find((x) => x.state === null)?.count).toBe(others);
    expect(report.snapshot!.clients).toBe(others);
    expect(await s.isAlive(a.pid)).toBe(true);
  });
});

