import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { readSnapshot } from '../../src/db/snapshot.js';
import { openTarget } from '../../src/db/target.js';
import { snapshotFilter } from '../../src/plan/filter.js';
import { PROTECT_ALL } from '../../src/plan/protect.js';
import { compilePolicies } from '../../src/policy/compile.js';
import type { RunReport } from '../../src/run/run-target.js';
import { dumpServer, type DumpServer } from '../helpers/pg-dump.js';
import { adminUrl, ensureDatabase, HARNESS_APP, outcomeOf, reap, Sessions, unique } from '../helpers/pg.js';

// Backups and maintenance are protected by default, on a real server: a real pg_dump held slow
// by a throttling reader, and a real CREATE INDEX CONCURRENTLY, under policies they exceed by
// far, finish intact, while a control session in the same runs is reaped. The server recognises
// maintenance from the statement running now, whatever comments come first.

const DB = 'protect_db_t';
const s = new Sessions();

beforeAll(async () => {
  await s.start();
  await ensureDatabase(s.admin, DB);
});
afterEach(() => s.closeAll());
afterAll(() => s.end());

const inDb = (url: string, application?: string) => {
  const u = new URL(url);
  u.pathname = `/${DB}`;
  if (application) u.searchParams.set('application_name', application);
  return u.toString();
};

/** A client of its own (closed by the caller), with the errors it saw. */
async function client(url: string): Promise<{ c: pg.Client; pid: number; errors: Error[] }> {
  const c = new pg.Client({ connectionString: url });
  const errors: Error[] = [];
  c.on('error', (e) => errors.push(e));
  await c.connect();
  return { c, pid: (c as unknown as { processID: number }).processID, errors };
}

/** Polls (with a deadline) until the backend has been in the condition for `ms`, by the server's clock. */
async function agedOver(admin: pg.Client, pid: number, ms: number, column: 'xact_start' | 'query_start' | 'state_change'): Promise<void> {
  const deadline = Date.now() + ms + 30_000;
  for (;;) {
    const row = (await admin.query<{ ms: number | null }>(`SELECT extract(epoch FROM clock_timestamp() - ${column})::float8 * 1000 AS ms FROM pg_stat_activity WHERE pid = $1`, [pid])).rows[0];
    if (row?.ms && row.ms > ms) return;
    if (Date.now() > deadline) throw new Error(`backend ${pid} did not age past ${ms} ms (${column})`);
    await sleep(50);
  }
}

/** Policies that act on every session of the test database, whatever it is doing. */
const everything = (url: string, extra: Record<string, unknown> = {}): Config =>
  validateConfig({
    logLevel: 'debug',
    terminateTimeout: '5s',
    exempt: { applications: [HARNESS_APP] },
    targets: [{ name: 'main', connectionString: url }],
    policies: [
      { name: 'queries', maxQueryDuration: '500ms', action: 'cancel', match: { databases: [DB] } },
      { name: 'transactions', maxTransactionDuration: '1s', maxIdleInTransaction: '500ms', maxIdle: '500ms', match: { databases: [DB] } },
    ],
    ...extra,
  });

const whyOf = (r: RunReport, pid: number) => r.notActedOn?.find((n) => n.session.pid === pid)?.why;

describe('the server recognises maintenance running now', () => {
  it('VACUUM, ANALYZE, CREATE INDEX / REINDEX CONCURRENTLY, CLUSTER, REFRESH ... CONCURRENTLY after whitespace and comments, and pg_repack; nothing else', async () => {
    const admin = await client(inDb(adminUrl()));
    const tag = unique('t-maint').replace(/-/g, '_');
    try {
      await admin.c.query(`CREATE TABLE ${tag} (id int PRIMARY KEY, v text); INSERT INTO ${tag} SELECT g, 'x' FROM generate_series(1, 10) g`);
      await admin.c.query(`CREATE MATERIALIZED VIEW ${tag}_mv AS SELECT id FROM ${tag}; CREATE UNIQUE INDEX ON ${tag}_mv (id)`);
      // every statement below waits on this lock (REFRESH on its query's), so it is seen running
      await admin.c.query(`BEGIN; LOCK TABLE ${tag} IN ACCESS EXCLUSIVE MODE`);
      const cases: [string, string | null][] = [
        [`  /* nightly */ -- job\n\tVACUUM (VERBOSE) ${tag}`, 'VACUUM'],
        [`vacuum full ${tag}`, 'VACUUM'],
        [`analyse ${tag}`, 'ANALYZE'],
        [`/* a */ /* b */ ANALYZE ${tag}`, 'ANALYZE'],
        [`CREATE UNIQUE INDEX CONCURRENTLY ${tag}_u ON ${tag} (id)`, 'CREATE INDEX CONCURRENTLY'],
        [`create index\n  concurrently ${tag}_v on ${tag} (v)`, 'CREATE INDEX CONCURRENTLY'],
        [`REINDEX TABLE CONCURRENTLY ${tag}`, 'REINDEX CONCURRENTLY'],
        [`CLUSTER ${tag} USING ${tag}_pkey`, 'CLUSTER'],
        [`REFRESH MATERIALIZED VIEW CONCURRENTLY ${tag}_mv`, 'REFRESH MATERIALIZED VIEW CONCURRENTLY'],
        [`SELECT count(*) FROM ${tag} /* vacuum */`, null],
        [`/* VACUUM */ SELECT v FROM ${tag}`, null],
        [`CREATE INDEX ${tag}_plain ON ${tag} (v)`, null],
        [`REINDEX TABLE ${tag}`, null],
        [`REFRESH MATERIALIZED VIEW ${tag}_mv`, null],
      ];
      const running: { pid: number; done: Promise<unknown>; expected: string | null; sql: string }[] = [];
      for (const [sql, expected] of cases) {
        const x = await s.session({ database: DB, application: `${tag}-case` });
        running.push({ pid: x.pid, done: x.client.query(sql).catch(() => undefined), expected, sql });
      }
      const repack = await s.session({ database: DB, application: 'pg_repack' });
      const afterVacuum = await s.session({ database: DB, application: `${tag}-done` });
      await afterVacuum.client.query('VACUUM pg_class'); // finished: idle, not maintenance now
      for (const r of running) {
        const deadline = Date.now() + 10_000;
        while ((await admin.c.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND wait_event_type = 'Lock'", [r.pid])).rowCount === 0) {
          if (Date.now() > deadline) throw new Error(`${r.sql} never waited on the lock`);
          await sleep(20);
        }
      }
      const db = openTarget(validateConfig({ targets: [{ name: 'main', connectionString: inDb(adminUrl()) }], policies: [{ name: 'p', maxIdle: '1h' }] }).targets[0]!, { applicationName: 'pg-reaper' });
      try {
        const snap = await readSnapshot(db, { withQuery: false });
        const kind = (pid: number) => snap.sessions.find((x) => x.pid === pid)?.maintenance;
        expect(running.map((r) => [r.sql, kind(r.pid)])).toEqual(running.map((r) => [r.sql, r.expected]));
        expect(kind(repack.pid)).toBe('pg_repack');
        expect(kind(afterVacuum.pid)).toBeNull();
        // protect.maintenance false: not even computed
        const off = await readSnapshot(db, { withQuery: false, maintenance: false });
        expect(off.sessions.filter((x) => x.maintenance !== null)).toEqual([]);
        // with the server-side filter, young protected sessions still come as rows (to be counted), other young ones do not
        const policies = compilePolicies(validateConfig({ targets: [{ name: 'main', host: 'x' }], policies: [{ name: 'p', maxIdle: '1h', maxQueryDuration: '1h' }] }), 'main');
        const filtered = await readSnapshot(db, { withQuery: false, filter: snapshotFilter(policies, PROTECT_ALL) });
        const rows = new Set(filtered.sessions.map((x) => x.pid));
        for (const r of running) expect([r.sql, rows.has(r.pid)]).toEqual([r.sql, r.expected !== null]);
        expect(rows.has(repack.pid)).toBe(true);
        expect(rows.has(afterVacuum.pid)).toBe(false);
      } finally {
        await db.close();
      }
      await admin.c.query('ROLLBACK');
      await Promise.all(running.map((r) => r.done));
    } finally {
      await admin.c.query('ROLLBACK').catch(() => undefined);
      await admin.c.query(`DROP TABLE IF EXISTS ${tag} CASCADE`);
      await admin.c.end();
    }
  });

  it('with the filter, a young session named like a backup tool comes as a row; with protect.backups false it does not', async () => {
    const young = await s.session({ database: DB, application: 'pgBackRest [backup]' });
    const other = await s.session({ database: DB, application: unique('t-young') });
    const db = openTarget(validateConfig({ targets: [{ name: 'main', connectionString: inDb(adminUrl()) }], policies: [{ name: 'p', maxIdle: '1h' }] }).targets[0]!, { applicationName: 'pg-reaper' });
    try {
      const policies = compilePolicies(validateConfig({ targets: [{ name: 'main', host: 'x' }], policies: [{ name: 'p', maxIdle: '1h' }] }), 'main');
      const rows = async (backups: boolean) => new Set((await readSnapshot(db, { withQuery: false, filter: snapshotFilter(policies, { backups, maintenance: true }) })).sessions.map((x) => x.pid));
      const on = await rows(true);
      expect([on.has(young.pid), on.has(other.pid)]).toEqual([true, false]);
      expect((await rows(false)).has(young.pid)).toBe(false);
    } finally {
      await db.close();
    }
  });
});

/** pg_dump of the test database, its stdout read slowly (64 KiB per 20 ms), counting the rows of one table. */
function throttledDump(pgDump: string, url: string, table: string) {
  // the tool's own default application_name, whatever this environment sets
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PG')));
  const child = spawn(pgDump, ['--no-password', '--dbname', url], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdout.setEncoding('utf8');
  // a readable listener: Node would otherwise discard what is left unread when pg_dump exits
  child.stdout.on('readable', () => undefined);
  let carry = '';
  let inCopy = false;
  let rows = 0;
  let complete = false;
  const consume = (text: string) => {
    const lines = (carry + text).split('\n');
    carry = lines.pop()!;
    for (const line of lines) {
      if (line.startsWith(`COPY public.${table} `)) inCopy = true;
      else if (inCopy && line === '\\.') inCopy = false;
      else if (inCopy) rows++;
      // pg_dump's last comment (recent releases add an \unrestrict line after it)
      if (line === '-- PostgreSQL database dump complete') complete = true;
    }
  };
  const timer = setInterval(() => {
    const chunk = child.stdout.read() as string | null;
    if (chunk !== null) consume(chunk);
  }, 20);
  const done = new Promise<{ code: number | null; rows: number; complete: boolean; stderr: string }>((resolve) =>
    child.on('close', (code) => {
      clearInterval(timer);
      consume('\n');
      resolve({ code, rows, complete, stderr });
    }),
  );
  return { child, done };
}

describe('protected by default, on a real server', () => {
  let server: DumpServer | { missing: string };
  let admin: { c: pg.Client } | undefined;
  const ROWS = 100_000;
  const table = 'big_t';

  beforeAll(async () => {
    server = await dumpServer();
    if ('missing' in server) return;
    const root = await client(server.url);
    try {
      if ((await root.c.query('SELECT 1 FROM pg_database WHERE datname = $1', [DB])).rowCount === 0) await root.c.query(`CREATE DATABASE ${DB}`);
    } finally {
      await root.c.end();
    }
    admin = await client(inDb(server.url, HARNESS_APP));
    // about 21 MB of COPY data: several seconds through the throttled reader
    await admin.c.query(`DROP TABLE IF EXISTS ${table}; CREATE TABLE ${table} (id int, pad text); INSERT INTO ${table} SELECT g, repeat(md5(g::text), 6) FROM generate_series(1, ${ROWS}) g`);
  }, 180_000);
  afterAll(async () => {
    if (admin) {
      await admin.c.query(`DROP TABLE IF EXISTS ${table}`).catch(() => undefined);
      await admin.c.end();
    }
    if (server && !('missing' in server)) await server.stop();
  });

  async function dumpPid(pgAdmin: pg.Client): Promise<number> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const row = (await pgAdmin.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = 'pg_dump' AND datname = $1", [DB])).rows[0];
      if (row) return row.pid;
      if (Date.now() > deadline) throw new Error('pg_dump never connected');
      await sleep(20);
    }
  }

  it('a real pg_dump, throttled, under policies it exceeds by far, completes with exit 0 and a complete dump; a control session in the same runs is reaped', async (ctx) => {
    if ('missing' in server) return ctx.skip(server.missing);
    const control = await client(inDb(server.url, 'control'));
    await control.c.query('BEGIN');
    await control.c.query('SELECT 1');
    const dump = throttledDump(server.pgDump, inDb(server.url), table);
    const pid = await dumpPid(admin!.c);
    await agedOver(admin!.c, pid, 2000, 'xact_start');
    const config = everything(inDb(server.url));
    const reports: RunReport[] = [];
    let finished = false;
    void dump.done.then(() => (finished = true));
    while (!finished) {
      reports.push(await reap(config));
      await Promise.race([dump.done, sleep(300)]);
    }
    const result = await dump.done;
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.rows).toBe(ROWS);
    expect(result.complete).toBe(true);

    expect(reports.length).toBeGreaterThanOrEqual(3);
    for (const r of reports) expect(r.ok, r.error).toBe(true);
    // the control was reaped in the first run, which already saw the dump far over the thresholds
    expect(outcomeOf(reports[0]!, control.pid)).toBe('terminated');
    const seen = reports.filter((r) => r.snapshot!.sessions.some((x) => x.pid === pid));
    expect(seen.length).toBeGreaterThanOrEqual(3);
    for (const r of seen) {
      expect(outcomeOf(r, pid)).toBeUndefined();
      expect(whyOf(r, pid)).toBe('protected: backup (pg_dump)');
      expect(r.protected?.backup).toBeGreaterThanOrEqual(1);
    }
    const last = seen.at(-1)!;
    const d = last.snapshot!.sessions.find((x) => x.pid === pid)!;
    expect((last.snapshot!.nowMs - d.xactStartMs!) / 1000).toBeGreaterThan(3); // maxTransactionDuration 1s
    await control.c.end().catch(() => undefined);
  }, 180_000);

  it('the same dump with protect: { backups: false } is cancelled or terminated', async (ctx) => {
    if ('missing' in server) return ctx.skip(server.missing);
    const dump = throttledDump(server.pgDump, inDb(server.url), table);
    const pid = await dumpPid(admin!.c);
    await agedOver(admin!.c, pid, 2000, 'xact_start');
    const report = await reap(everything(inDb(server.url), { protect: { backups: false } }));
    expect(['cancelled', 'terminated']).toContain(outcomeOf(report, pid));
    const result = await dump.done;
    expect(result.code).not.toBe(0);
    expect(result.complete).toBe(false);
  }, 180_000);

  /** A CREATE INDEX CONCURRENTLY that runs for seconds: it waits for the snapshot of the control transaction. */
  async function slowIndex(tag: string) {
    const owner = await client(inDb(adminUrl(), `${tag}-setup`));
    await owner.c.query(`CREATE TABLE ${tag} (id int, v int); INSERT INTO ${tag} SELECT g, g % 1000 FROM generate_series(1, 500000) g`);
    await owner.c.end();
    // the control: a transaction holding a snapshot, idle; CREATE INDEX CONCURRENTLY waits for it to end
    const control = await s.session({ database: DB, application: `${tag}-control` });
    await control.client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await control.client.query('SELECT 1');
    const cic = await s.session({ database: DB, application: `${tag}-cic` });
    const built = cic.client.query(`CREATE INDEX CONCURRENTLY ${tag}_v ON ${tag} (v)`).then(() => 'built', (e: { code?: string }) => e.code ?? 'error');
    return { control, cic, built };
  }
  const indexValid = async (tag: string) => {
    const a = await client(inDb(adminUrl()));
    try {
      return (await a.c.query<{ valid: boolean }>('SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = $1::regclass', [`${tag}_v`])).rows[0]?.valid;
    } finally {
      await a.c.end();
    }
  };
  const dropTable = async (tag: string) => {
    const a = await client(inDb(adminUrl()));
    await a.c.query(`DROP TABLE IF EXISTS ${tag}`);
    await a.c.end();
  };

  it('CREATE INDEX CONCURRENTLY under maxQueryDuration 1s completes and leaves a valid index; the control in the same run is reaped', async () => {
    const tag = unique('t_cic').replace(/-/g, '_');
    try {
      const { control, cic, built } = await slowIndex(tag);
      const a = await client(inDb(adminUrl()));
      await agedOver(a.c, cic.pid, 1500, 'query_start');
      await a.c.end();
      const config = validateConfig({
        logLevel: 'debug',
        targets: [{ name: 'main', connectionString: inDb(adminUrl()) }],
        policies: [
          { name: 'queries', maxQueryDuration: '1s', match: { databases: [DB] } },
          { name: 'idle-tx', maxIdleInTransaction: '1s', match: { databases: [DB] } },
        ],
      });
      const report = await reap(config);
      expect(outcomeOf(report, control.pid)).toBe('terminated');
      expect(outcomeOf(report, cic.pid)).toBeUndefined();
      expect(whyOf(report, cic.pid)).toBe('protected: maintenance (CREATE INDEX CONCURRENTLY)');
      expect(report.protected?.maintenance).toBeGreaterThanOrEqual(1);
      expect(await built).toBe('built');
      expect(await indexValid(tag)).toBe(true);
    } finally {
      await dropTable(tag);
    }
  }, 120_000);

  it('with protect: { maintenance: false } the same CREATE INDEX CONCURRENTLY is terminated and leaves an invalid index (the damage protection prevents)', async () => {
    const tag = unique('t_cic').replace(/-/g, '_');
    try {
      const { cic, built } = await slowIndex(tag);
      const a = await client(inDb(adminUrl()));
      await agedOver(a.c, cic.pid, 1500, 'query_start');
      await a.c.end();
      const config = validateConfig({
        protect: { maintenance: false },
        targets: [{ name: 'main', connectionString: inDb(adminUrl()) }],
        policies: [{ name: 'queries', maxQueryDuration: '1s', match: { databases: [DB], applications: [`${tag}-cic`] } }],
      });
      const report = await reap(config);
      expect(outcomeOf(report, cic.pid)).toBe('terminated');
      expect(await built).not.toBe('built');
      expect(await indexValid(tag)).toBe(false);
    } finally {
      await dropTable(tag);
    }
  }, 120_000);
});
