import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ddl, grants, parseTableName } from '../../src/audit/table.js';
import { validateConfig } from '../../src/config/load.js';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { createLogger } from '../../src/log/logger.js';
import type { RunReport } from '../../src/run/run-target.js';
import { captureLog } from '../helpers/log-capture.js';
import { ensureReaperRole, ensureRole, Sessions, unique, urlFor } from '../helpers/pg.js';
import { startProxy } from '../helpers/proxy.js';

// The audit table on a real server: every action of a run is one row, exactly once, with the
// session as the server reported it; the audit server away while kills go on (a TCP proxy that
// is cut) costs no reaping and no rows within the queue bound; a full queue counts its drops; a
// missing table is logged once with the fix; a reload moves the queued rows to the new writer.
// The reaper's role has nothing on the audit table but INSERT (and USAGE on its schema).

const SCHEMA = 'reaper_audit_t';
const s = new Sessions();
let reaper: string;
let app: string;
let versionNum: number;
let daemon: Daemon | undefined;

beforeAll(async () => {
  await s.start();
  reaper = await ensureReaperRole(s.admin);
  app = await ensureRole(s.admin, 'app_t');
  versionNum = Number((await s.admin.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0]!.v);
  await s.admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
});
afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
  await s.closeAll();
});
afterAll(async () => {
  await s.admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  await s.end();
});

/** A fresh audit table as audit-init makes it, writable by the reaper's role with INSERT only. */
async function auditTable(): Promise<string> {
  const name = `${SCHEMA}.a_${randomBytes(4).toString('hex')}`;
  const parsed = parseTableName(name);
  if (!parsed.ok) throw new Error(parsed.error);
  for (const statement of [...ddl(parsed.table), ...grants(parsed.table, reaper)]) await s.admin.query(statement);
  return name;
}

interface Row {
  id: string;
  at_us: string;
  replica: string;
  target: string;
  policy: string;
  reason: string;
  action: string;
  outcome: string;
  dry_run: boolean;
  pid: number;
  backend_start: string;
  usename: string | null;
  datname: string | null;
  application_name: string | null;
  client_addr: string | null;
  state: string | null;
  seconds: number;
  threshold_seconds: number;
  query_id: string | null;
  query: string | null;
}

const rowsOf = async (table: string) =>
  (await s.admin.query<Row>(`SELECT *, (extract(epoch FROM at) * 1000000)::int8::text AS at_us, backend_start::text AS backend_start, query_id::text AS query_id FROM ${table} ORDER BY pid`)).rows;

async function rowsWithin(table: string, n: number, ms: number): Promise<Row[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const rows = await rowsOf(table);
    if (rows.length >= n || Date.now() > deadline) return rows;
    await sleep(100);
  }
}

const metric = async (d: Daemon, line: string): Promise<number | undefined> => {
  const body = await (await fetch(`http://127.0.0.1:${d.http.port}/metrics`)).text();
  const found = body.split('\n').find((l) => l.startsWith(line + ' '));
  return found === undefined ? undefined : Number(found.split(' ')[1]);
};

const nextRun = (d: Daemon, target: string) =>
  new Promise<RunReport>((resolve) => {
    const on = (r: RunReport) => {
      if (r.target !== target) return;
      d.events.off('run', on);
      resolve(r);
    };
    d.events.on('run', on);
  });

async function until(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('audit table', () => {
  it('records every action of a run as one row, exactly once, with the session as the server reported it', async () => {
    const table = await auditTable();
    const tag = unique('t-audit');
    const withQueryId = versionNum >= 140000;
    // query_id is computed only with compute_query_id (14+), a superuser setting
    if (withQueryId) await s.admin.query(`ALTER ROLE ${app} SET compute_query_id = on`);
    try {
      const idle = await s.session({ user: app, application: `${tag}-idle` });
      await idle.client.query('SELECT 42 AS answer');
      const inTx = await s.session({ user: app, application: `${tag}-tx` });
      await inTx.client.query('BEGIN');
      await inTx.client.query('SELECT 1');
      // a superuser's session: the reaper's role may not signal it
      const su = await s.session({ application: `${tag}-su` });
      await su.client.query('SELECT 2');
      for (const x of [idle, inTx, su]) await s.agedOver(x.pid, 400);
      const seen = new Map(
        (await s.admin.query<{ pid: number; backend_start: string; query_id: string | null; query: string }>(`SELECT pid, backend_start::text AS backend_start, ${withQueryId ? 'query_id::text' : 'NULL::text'} AS query_id, query FROM pg_stat_activity WHERE pid = ANY($1)`, [[idle.pid, inTx.pid, su.pid]])).rows.map((r) => [r.pid, r]),
      );

      daemon = await startDaemon(
        validateConfig({
          schedule: '0 0 1 1 *',
          http: { host: '127.0.0.1', port: 0 },
          logQueryText: true,
          audit: { target: 'main', table },
          targets: [{ name: 'main', connectionString: urlFor({ user: reaper }) }],
          policies: [
            { name: 'tx-watch', maxIdleInTransaction: '400ms', dryRun: true, match: { applications: [`${tag}-tx`] } },
            { name: 'idle', maxIdle: '400ms', match: { applications: [`${tag}-*`] } },
          ],
        }),
        { logger: createLogger('silent'), version: 'test', replica: 'replica-a' },
      );
      const run = nextRun(daemon, 'main');
      await daemon.startupRuns();
      const report = await run;
      // a second run, which knows the server's version and reads query_id directly (the first
      // one, not knowing it, read it in a form that every version accepts)
      const later = await s.session({ user: app, application: `${tag}-later` });
      await later.client.query('SELECT 43 AS answer');
      await s.agedOver(later.pid, 400);
      const laterSeen = (await s.admin.query<{ query_id: string | null }>(`SELECT ${withQueryId ? 'query_id::text' : 'NULL::text'} AS query_id FROM pg_stat_activity WHERE pid = $1`, [later.pid])).rows[0]!;
      const second = nextRun(daemon, 'main');
      await daemon.runNow('main');
      expect((await second).results.find((r) => r.decision.session.pid === later.pid)?.outcome).toBe('terminated');
      expect(report.results.map((r) => [r.decision.session.pid, r.outcome]).sort()).toEqual(
        [
          [idle.pid, 'terminated'],
          [inTx.pid, 'would_terminate'],
          [su.pid, 'denied'],
        ].sort(),
      );
      await daemon.stop();
      daemon = undefined;

      const all = await rowsOf(table);
      const laterRow = all.find((r) => r.pid === later.pid)!;
      expect(laterRow.query_id).toBe(laterSeen.query_id);
      expect(laterRow.query_id === null).toBe(!withQueryId);
      // the rows of the first run
      const rows = all.filter((r) => r.at_us === String(Math.round(report.snapshot!.nowMs * 1000)));
      expect(rows.map((r) => r.pid)).toEqual([idle.pid, inTx.pid, su.pid].sort((a, b) => a - b));
      expect(new Set(all.map((r) => r.id)).size).toBe(all.length);
      const at = String(Math.round(report.snapshot!.nowMs * 1000));
      const byPid = new Map(rows.map((r) => [r.pid, r]));
      const expected = (pid: number, policy: string, reason: string, outcome: string, dryRun: boolean, state: string, user: string) => ({
        at_us: at,
        replica: 'replica-a',
        target: 'main',
        policy,
        reason,
        action: 'terminate',
        outcome,
        dry_run: dryRun,
        pid,
        backend_start: seen.get(pid)!.backend_start,
        usename: user,
        datname: 'postgres',
        application_name: `${tag}-${{ [idle.pid]: 'idle', [inTx.pid]: 'tx', [su.pid]: 'su' }[pid]}`,
        client_addr: '127.0.0.1',
        state,
        threshold_seconds: 0.4,
        query_id: seen.get(pid)!.query_id,
        query: seen.get(pid)!.query,
      });
      expect(byPid.get(idle.pid)).toMatchObject(expected(idle.pid, 'idle', 'idle', 'terminated', false, 'idle', app));
      expect(byPid.get(inTx.pid)).toMatchObject(expected(inTx.pid, 'tx-watch', 'idle_in_transaction', 'would_terminate', true, 'idle in transaction', app));
      expect(byPid.get(su.pid)).toMatchObject(expected(su.pid, 'idle', 'idle', 'denied', false, 'idle', new URL(urlFor({})).username));
      for (const r of rows) expect(r.seconds).toBeGreaterThan(0.4);
      // query_id where the server computes it, NULL where it does not
      expect(byPid.get(idle.pid)!.query_id === null).toBe(!withQueryId);
      expect(byPid.get(su.pid)!.query_id).toBeNull();
      // the rows are the run's decisions, and nothing else (each action once)
      expect(rows).toHaveLength(report.results.length);
    } finally {
      if (withQueryId) await s.admin.query(`ALTER ROLE ${app} RESET compute_query_id`);
    }
  });

  it('the audit server away for 10 s: reaping goes on on schedule, and the rows of that time are written once it returns', async () => {
    const table = await auditTable();
    const tag = unique('t-away');
    const proxy = await startProxy(Number(new URL(urlFor({})).port));
    try {
      const auditUrl = new URL(urlFor({ user: reaper }));
      auditUrl.port = String(proxy.port);
      const log = captureLog();
      daemon = await startDaemon(
        validateConfig({
          schedule: '* * * * * *',
          http: { host: '127.0.0.1', port: 0 },
          audit: { connectionString: auditUrl.toString(), table },
          targets: [{ name: 'main', connectionString: urlFor({ user: reaper }) }],
          policies: [{ name: 'idle', maxIdle: '300ms', match: { applications: [`${tag}-*`] } }],
        }),
        { logger: createLogger('info', log.stream), version: 'test' },
      );
      await daemon.startupRuns();
      const d = daemon;
      await until('the audit table to be checked', 10_000, async () => (await metric(d, 'pg_reaper_audit_up')) === 1);

      await proxy.down();
      const downAt = Date.now();
      const runs: RunReport[] = [];
      const onRun = (r: RunReport) => void runs.push(r);
      d.events.on('run', onRun);
      const killed: number[] = [];
      // a new victim about every second while the audit server is away; each is reaped on schedule
      for (let i = 0; Date.now() - downAt < 10_000; i++) {
        const v = await s.session({ user: app, application: `${tag}-${i}` });
        const opened = Date.now();
        await s.gone(v.pid);
        // aged 300 ms, then the next trigger (every second): well within 3 s
        expect(Date.now() - opened).toBeLessThan(3000);
        killed.push(v.pid);
      }
      expect(killed.length).toBeGreaterThanOrEqual(5);
      expect(await metric(d, 'pg_reaper_audit_up')).toBe(0);
      expect(await metric(d, 'pg_reaper_audit_queue_rows')).toBe(killed.length);
      expect(await rowsOf(table)).toEqual([]);
      d.events.off('run', onRun);
      // runs went on every second, quickly, all of them successful
      expect(runs.length).toBeGreaterThanOrEqual(8);
      expect(runs.every((r) => r.ok && r.durationSeconds < 1)).toBe(true);

      await proxy.up();
      const rows = await rowsWithin(table, killed.length, 15_000);
      expect(rows.map((r) => r.pid)).toEqual([...killed].sort((a, b) => a - b));
      expect(rows.every((r) => r.outcome === 'terminated' && r.policy === 'idle')).toBe(true);
      expect(await metric(d, 'pg_reaper_audit_rows_total{result="written"}')).toBe(killed.length);
      expect(await metric(d, 'pg_reaper_audit_rows_total{result="dropped"}')).toBe(0);
      expect(await metric(d, 'pg_reaper_audit_queue_rows')).toBe(0);
      expect(await metric(d, 'pg_reaper_audit_up')).toBe(1);
      // said once when it went away and once when it came back, not at every retry
      expect(log.lines.filter((l) => String(l.msg).startsWith('audit server unreachable'))).toHaveLength(1);
      expect(log.lines.filter((l) => l.msg === 'audit table is written again')).toHaveLength(1);
    } finally {
      await daemon?.stop();
      daemon = undefined;
      await proxy.close();
    }
  });

  it('with the audit server down, a queue of 5 keeps 5 rows and counts the rest as dropped', async () => {
    const table = await auditTable();
    const tag = unique('t-full');
    const proxy = await startProxy(Number(new URL(urlFor({})).port));
    try {
      await proxy.down();
      const auditUrl = new URL(urlFor({ user: reaper }));
      auditUrl.port = String(proxy.port);
      const victims = [];
      for (let i = 0; i < 8; i++) victims.push(await s.session({ user: app, application: `${tag}-${i}` }));
      for (const v of victims) await s.agedOver(v.pid, 300);
      const log = captureLog();
      daemon = await startDaemon(
        validateConfig({
          schedule: '0 0 1 1 *',
          http: { host: '127.0.0.1', port: 0 },
          audit: { connectionString: auditUrl.toString(), table, queueSize: 5 },
          targets: [{ name: 'main', connectionString: urlFor({ user: reaper }) }],
          policies: [{ name: 'idle', maxIdle: '300ms', match: { applications: [`${tag}-*`] } }],
        }),
        { logger: createLogger('info', log.stream), version: 'test' },
      );
      const run = nextRun(daemon, 'main');
      await daemon.startupRuns();
      expect((await run).results.filter((r) => r.outcome === 'terminated')).toHaveLength(8);
      expect(await metric(daemon, 'pg_reaper_audit_rows_total{result="dropped"}')).toBe(3);
      expect(await metric(daemon, 'pg_reaper_audit_queue_rows')).toBe(5);
      expect(log.lines.filter((l) => String(l.msg).startsWith('audit queue is full'))).toHaveLength(1);

      await proxy.up();
      expect(await rowsWithin(table, 5, 15_000)).toHaveLength(5);
      const d = daemon;
      await until('the written count', 5000, async () => (await metric(d, 'pg_reaper_audit_rows_total{result="written"}')) === 5);
      expect(await metric(d, 'pg_reaper_audit_rows_total{result="dropped"}')).toBe(3);
      expect(log.lines.find((l) => l.msg === 'audit queue has room again')).toMatchObject({ dropped: 3 });
    } finally {
      await daemon?.stop();
      daemon = undefined;
      await proxy.close();
    }
  });

  it('stop (SIGTERM) writes the queued rows, and gives up on them within shutdownTimeout when it cannot', async () => {
    const table = await auditTable();
    const tag = unique('t-stop');
    const proxy = await startProxy(Number(new URL(urlFor({})).port));
    try {
      await proxy.down();
      const away = new URL(urlFor({ user: reaper }));
      away.port = String(proxy.port);
      const config = (shutdownTimeout: string) =>
        validateConfig({
          schedule: '0 0 1 1 *',
          shutdownTimeout,
          http: { host: '127.0.0.1', port: 0 },
          audit: { connectionString: away.toString(), table },
          targets: [{ name: 'main', connectionString: urlFor({ user: reaper }) }],
          policies: [{ name: 'idle', maxIdle: '300ms', match: { applications: [`${tag}-*`] } }],
        });
      const open = async (n: number) => {
        const victims = [];
        for (let i = 0; i < n; i++) victims.push(await s.session({ user: app, application: `${tag}-${i}` }));
        for (const v of victims) await s.agedOver(v.pid, 300);
        return victims.map((v) => v.pid);
      };

      // queued while the audit server is away; it returns just before the stop
      const first = await open(2);
      daemon = await startDaemon(config('10s'), { logger: createLogger('silent'), version: 'test' });
      await daemon.startupRuns();
      const d = daemon;
      await until('the rows to wait and the writes to fail', 10_000, async () => (await metric(d, 'pg_reaper_audit_queue_rows')) === 2 && (await metric(d, 'pg_reaper_audit_up')) === 0);
      await proxy.up();
      let started = Date.now();
      await d.stop();
      daemon = undefined;
      // (the stop tries at once rather than after the backoff: test/unit/audit-writer.test.ts)
      expect(Date.now() - started).toBeLessThan(10_000);
      expect((await rowsOf(table)).map((r) => r.pid)).toEqual([...first].sort((a, b) => a - b));

      // the audit server stays away: the stop gives up after shutdownTimeout (at least 2 s for the rows)
      await proxy.down();
      const second = await open(2);
      const log = captureLog();
      daemon = await startDaemon(config('1s'), { logger: createLogger('info', log.stream), version: 'test' });
      await daemon.startupRuns();
      expect(second.every((pid) => !first.includes(pid))).toBe(true);
      started = Date.now();
      await daemon.stop();
      daemon = undefined;
      const took = Date.now() - started;
      expect(took).toBeGreaterThanOrEqual(1900);
      expect(took).toBeLessThan(5000);
      expect(log.lines.find((l) => String(l.msg).startsWith('audit rows not written before the stop deadline'))).toMatchObject({ level: 'error', lost: 2 });
      expect(await rowsOf(table)).toHaveLength(2);
    } finally {
      await daemon?.stop();
      daemon = undefined;
      await proxy.close();
    }
  });

  it('a missing table is logged once with the fix; once it exists the waiting rows are written', async () => {
    const name = `${SCHEMA}.missing_${randomBytes(4).toString('hex')}`;
    const tag = unique('t-missing');
    const victim = await s.session({ user: app, application: `${tag}-a` });
    await s.agedOver(victim.pid, 300);
    const log = captureLog();
    const retries = () => log.lines.filter((l) => l.msg === 'audit write failed; retrying');
    daemon = await startDaemon(
      validateConfig({
        schedule: '0 0 1 1 *',
        http: { host: '127.0.0.1', port: 0 },
        audit: { target: 'main', table: name },
        targets: [{ name: 'main', connectionString: urlFor({ user: reaper }) }],
        policies: [{ name: 'idle', maxIdle: '300ms', match: { applications: [`${tag}-*`] } }],
      }),
      { logger: createLogger('debug', log.stream), version: 'test' },
    );
    await daemon.startupRuns();
    expect(await s.isAlive(victim.pid)).toBe(false);
    const d = daemon;
    // tried three times (each a debug line): logged once
    await until('three tries', 15_000, async () => retries().filter((l) => String(l.error).includes('42P01')).length >= 3);
    await d.runNow('main');
    const errors = log.lines.filter((l) => l.level === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({
      table: name,
      fix: `the table ${name} does not exist: create it with "pg-reaper audit-init -c CONFIG", or have its owner run the DDL of "pg-reaper audit-init -c CONFIG --print"`,
    });
    expect(errors[0]!.error).toContain('42P01');
    expect(await metric(d, 'pg_reaper_audit_up')).toBe(0);

    // created, but the reaper's role may not insert yet: a new problem, a new line with its GRANT
    const parsed = parseTableName(name);
    if (!parsed.ok) throw new Error(parsed.error);
    for (const statement of ddl(parsed.table)) await s.admin.query(statement);
    await s.admin.query(`GRANT USAGE ON SCHEMA ${SCHEMA} TO ${reaper}`);
    await until('the privilege error', 15_000, async () => log.lines.filter((l) => l.level === 'error').length === 2);
    expect(log.lines.filter((l) => l.level === 'error')[1]!.fix).toBe(`the role may not insert into ${name}: run GRANT USAGE ON SCHEMA ${SCHEMA} TO "${reaper}"; GRANT INSERT ON ${name} TO "${reaper}";`);
    await s.admin.query(`GRANT INSERT ON ${name} TO ${reaper}`);
    const rows = await rowsWithin(name, 1, 40_000);
    expect(rows.map((r) => [r.pid, r.outcome])).toEqual([[victim.pid, 'terminated']]);
    expect(log.lines.filter((l) => l.level === 'error')).toHaveLength(2);
  }, 60_000);

  it('audit-init brings a table made by an earlier version up to date, and runs again without error', async () => {
    const name = `${SCHEMA}.old_${randomBytes(4).toString('hex')}`;
    const parsed = parseTableName(name);
    if (!parsed.ok) throw new Error(parsed.error);
    // the first version: threshold_seconds NOT NULL, no transactions, threshold_transactions or details
    const [schema, create] = ddl(parsed.table);
    await s.admin.query(schema!);
    await s.admin.query(create!.replace('threshold_seconds double precision,', 'threshold_seconds double precision NOT NULL,').replace(/\n {2}(transactions|threshold_transactions) bigint,|\n {2}details jsonb,/g, ''));
    const columns = async () =>
      (await s.admin.query<{ column_name: string; is_nullable: string }>('SELECT column_name, is_nullable FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2', [parsed.table.schema, parsed.table.name])).rows;
    expect((await columns()).map((c) => c.column_name)).not.toContain('details');
    for (const statement of ddl(parsed.table)) await s.admin.query(statement);
    for (const statement of ddl(parsed.table)) await s.admin.query(statement);
    const after = new Map((await columns()).map((c) => [c.column_name, c.is_nullable]));
    expect([after.get('threshold_seconds'), after.get('transactions'), after.get('threshold_transactions'), after.get('details')]).toEqual(['YES', 'YES', 'YES', 'YES']);
    expect(after.get('seconds')).toBe('NO');
  });

  it('a reload that moves the audit table hands the queued rows to the new writer, each written once', async () => {
    const table = await auditTable();
    const tag = unique('t-swap');
    const proxy = await startProxy(Number(new URL(urlFor({})).port));
    try {
      await proxy.down();
      const away = new URL(urlFor({ user: reaper }));
      away.port = String(proxy.port);
      const victims = [];
      for (let i = 0; i < 3; i++) victims.push(await s.session({ user: app, application: `${tag}-${i}` }));
      for (const v of victims) await s.agedOver(v.pid, 300);
      const base = {
        schedule: '0 0 1 1 *',
        http: { host: '127.0.0.1', port: 0 },
        targets: [{ name: 'main', connectionString: urlFor({ user: reaper }) }],
        policies: [{ name: 'idle', maxIdle: '300ms', match: { applications: [`${tag}-*`] } }],
      };
      const log = captureLog();
      daemon = await startDaemon(validateConfig({ ...base, audit: { connectionString: away.toString(), table } }), { logger: createLogger('info', log.stream), version: 'test' });
      await daemon.startupRuns();
      expect(await metric(daemon, 'pg_reaper_audit_queue_rows')).toBe(3);

      // the same table, now reached directly
      await daemon.reload(validateConfig({ ...base, audit: { target: 'main', table } }));
      const rows = await rowsWithin(table, 3, 15_000);
      expect(rows.map((r) => r.pid)).toEqual(victims.map((v) => v.pid).sort((a, b) => a - b));
      expect(log.lines.find((l) => String(l.msg).startsWith('audit settings changed'))).toMatchObject({ rows: 3 });
      // and a reload that leaves audit alone keeps the writer
      await daemon.reload(validateConfig({ ...base, audit: { target: 'main', table } }));
      expect(log.lines.filter((l) => String(l.msg).startsWith('audit settings changed'))).toHaveLength(1);
      await sleep(200);
      expect(await rowsOf(table)).toHaveLength(3);
    } finally {
      await daemon?.stop();
      daemon = undefined;
      await proxy.close();
    }
  });
});
