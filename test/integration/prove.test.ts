import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLI, runCli, type CliResult } from '../helpers/cli.js';
import { ensureReaperRole, ensureRole, PASSWORD, Sessions, unique, urlFor } from '../helpers/pg.js';

// Proving a config before it runs, through the built CLI: `snapshot` of a real server replayed
// with `once --dry-run --from` gives the decisions of a live `once --dry-run` taken right after
// it; `test` passes, fails with its diff, or rejects a malformed file with a located error.

const ROOT = join(import.meta.dirname, '../..');
const s = new Sessions();
let reaper: string;
let app: string;
let dir: string;

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error('dist/pg-reaper/cli.js is missing: run "npm run build" (npm test does it first)');
  await s.start();
  reaper = await ensureReaperRole(s.admin);
  app = await ensureRole(s.admin, 'app_t');
  dir = mkdtempSync(join(tmpdir(), 'pg-reaper-prove-'));
});
afterEach(() => s.closeAll());
afterAll(async () => {
  await s.end();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs the CLI in the test's directory; a variable set to undefined in `env` is removed. */
const cli = (args: string[], env: Record<string, string | undefined> = {}) => runCli(args, { env, cwd: dir });

const write = (name: string, body: string) => {
  writeFileSync(join(dir, name), body);
  return join(dir, name);
};

type Line = Record<string, unknown>;
const lines = (text: string): Line[] => text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line);
const decisions = (ls: Line[]) => ls.map((l) => `${String(l.pid)} ${String(l.policy)} ${String(l.reason)} ${String(l.action)} ${String(l.outcome)}`).sort();

describe('snapshot and replay', () => {
  it('a snapshot of a real server, replayed offline, gives the decisions of a live once --dry-run taken right after it', async () => {
    const tag = unique('t-prove');
    // old sessions (over every threshold by far when the snapshot is taken) ...
    const pool = [];
    for (let i = 0; i < 4; i++) pool.push(await s.session({ user: app, application: `${tag}-pool` }));
    const tx = await s.session({ user: app, application: `${tag}-tx` });
    await tx.client.query('BEGIN');
    await tx.client.query('SELECT 1');
    const blocker = await s.session({ user: app, application: `${tag}-holder` });
    const key = Math.floor(Math.random() * 1e9);
    await blocker.client.query('BEGIN');
    await blocker.client.query('SELECT pg_advisory_xact_lock($1)', [key]);
    const waiter = await s.session({ user: app, application: `${tag}-waiter` });
    void waiter.client.query('SELECT pg_advisory_xact_lock($1)', [key]).catch(() => undefined);
    const report = await s.session({ user: app, application: `${tag}-report` });
    void report.client.query('SELECT pg_sleep(60)').catch(() => undefined);
    const superuser = await s.session({ application: `${tag}-su` });
    await superuser.client.query('BEGIN');
    await superuser.client.query('SELECT 1');
    const listener = await s.session({ user: app, application: `${tag}-listen` });
    await listener.client.query('LISTEN prove_channel');
    const pressured = await s.session({ user: app, application: `${tag}-pressure` });
    const old = [...pool, tx, blocker, report, superuser, listener, pressured];
    await s.waitForState(report.pid, 'active');
    for (const x of old) await s.agedOver(x.pid, 8000);
    await s.agedOver(waiter.pid, 8000);
    // ... and young ones, far under every threshold when the live run comes
    const young = await s.session({ user: app, application: `${tag}-pool` });
    const youngTx = await s.session({ user: app, application: `${tag}-tx` });
    await youngTx.client.query('BEGIN');
    await youngTx.client.query('SELECT 1');

    const m = `match: { applications: ["${tag}-*"] }`;
    const config = write(
      'parity.yaml',
      `targets:
  - name: main
    connectionString: \${REAPER_URL}
policies:
  - { name: locks, maxBlocking: 5s, ${m} }
  - { name: pools, maxIdle: 5s, keepIdle: 1, maxActionsPerRun: 2, match: { applications: ["${tag}-pool"] } }
  - { name: tx, maxIdleInTransaction: 5s, ${m} }
  - { name: reports, maxQueryDuration: 5s, action: cancel, terminateAfter: 1h, match: { applications: ["${tag}-report"] } }
  - { name: listeners, maxIdle: 5s, match: { applications: ["${tag}-listen"] } }
  - { name: pressure, maxIdle: 5s, when: { connectionsAbove: 1 }, ${m} }
`,
    );
    const env = { REAPER_URL: urlFor({ user: reaper }) };

    const taken = await cli(['snapshot', '-c', config, '-o', 'main.snapshot.json'], env);
    expect(taken).toMatchObject({ code: 0, stdout: '' });
    expect(taken.stderr).toMatch(/^main: wrote \d+ sessions to main\.snapshot\.json\n$/);
    // the live run right after the snapshot; the replay (offline, whenever) with no server in
    // reach: the connection string's variable is not even set
    const live = await cli(['once', '--dry-run', '--json', '-c', config], env);
    const replayed = await cli(['once', '--dry-run', '--json', '--from', 'main.snapshot.json', '-c', config], { REAPER_URL: undefined });
    expect(replayed.code).toBe(0);
    expect(live.code).toBe(0);

    const want = decisions(lines(live.stdout));
    expect(decisions(lines(replayed.stdout))).toEqual(want);
    // every rule was in play: the blocker (not its waiter), pools kept and capped, a transaction,
    // a cancel, a superuser denied, a listener spared, a match under `when`; the young left alone
    expect(want).toEqual(
      [
        `${blocker.pid} locks blocking terminate would_terminate`,
        `${tx.pid} tx idle_in_transaction terminate would_terminate`,
        `${report.pid} reports query_duration cancel would_cancel`,
        `${superuser.pid} tx idle_in_transaction terminate denied`,
        `${pressured.pid} pressure idle terminate would_terminate`,
        // keepIdle 1 keeps the young one; of the four old, the two oldest take the cap's two slots
        ...pool.map((p, i) => `${p.pid} pools idle terminate ${i < 2 ? 'would_terminate' : 'skipped_cap'}`),
      ].sort(),
    );
    for (const x of [waiter, listener, young, youngTx]) expect(want.some((d) => d.startsWith(`${x.pid} `))).toBe(false);
    const live1 = lines(live.stdout).find((l) => l.pid === tx.pid)!;
    const replayed1 = lines(replayed.stdout).find((l) => l.pid === tx.pid)!;
    expect(Object.keys(replayed1).sort()).toEqual(Object.keys(live1).sort());

    // the file: every client session (no pre-filter), ages before the server's clock, no query text
    const file = join(dir, 'main.snapshot.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { takenAt: string; target: string; server: Record<string, unknown>; sessions: Line[] };
    expect(doc.target).toBe('main');
    expect(doc.server).toEqual({ clientSlots: expect.any(Number), version: expect.stringMatching(/^\d+/), reaperSuperuser: false });
    const byPid = new Map(doc.sessions.map((x) => [x.pid, x]));
    expect(byPid.get(young.pid)).toMatchObject({ user: app, application: `${tag}-pool`, state: 'idle', clientAddr: '127.0.0.1' });
    expect(byPid.get(waiter.pid)).toMatchObject({ state: 'active', waitingOn: [blocker.pid], waitAge: expect.any(Number) });
    expect(byPid.get(listener.pid)).toMatchObject({ listener: true });
    expect(byPid.get(superuser.pid)).toMatchObject({ superuser: true });
    expect(Number(byPid.get(tx.pid)!.stateAge)).toBeGreaterThan(8);
    expect(doc.sessions.some((x) => 'query' in x)).toBe(false);
    expect(readFileSync(file, 'utf8')).not.toContain(PASSWORD);
  });

  it('--with-query adds the query text; a snapshot file serves as a test\'s sessionsFrom as it is', async () => {
    const tag = unique('t-snapq');
    const x = await s.session({ user: app, application: `${tag}-a` });
    await x.client.query('SELECT 42 AS prove_marker');
    const config = write('snapq.yaml', `targets: [{ name: main, connectionString: "\${REAPER_URL}" }]\npolicies: [{ name: idle, maxIdle: 1h, match: { applications: ["${tag}-*"] } }]\n`);
    const r = await cli(['snapshot', '-c', config, '--with-query'], { REAPER_URL: urlFor({ user: reaper }) });
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { sessions: Line[] };
    expect(doc.sessions.find((y) => y.pid === x.pid)).toMatchObject({ query: 'SELECT 42 AS prove_marker' });
    write('q.snapshot.json', r.stdout);
    const t = await cli(['test', write('q.test.yaml', `config: snapq.yaml\ntests:\n  - name: a session idle for seconds is under 1h\n    sessionsFrom: q.snapshot.json\n    expect: [{ pid: ${x.pid}, action: none }]\n`)]);
    expect(t.stdout).toContain('ok    a session idle for seconds is under 1h');
    expect(t.code).toBe(0);
  });

  it('a reaper that cannot see other roles\' sessions lists them as visible: false, so a replay counts the connections a live run does', async () => {
    const blind = await ensureRole(s.admin, 'blind_reaper_t', 'NOSUPERUSER');
    await s.admin.query('REVOKE pg_read_all_stats, pg_signal_backend FROM blind_reaper_t');
    const tag = unique('t-blind');
    const other = await s.session({ user: app, application: `${tag}-other` });
    const config = write('blind.yaml', `targets: [{ name: main, connectionString: "\${REAPER_URL}" }]\npolicies: [{ name: idle, maxIdle: 1ms }]\n`);
    const env = { REAPER_URL: urlFor({ user: blind }) };
    const taken = await cli(['snapshot', '-c', config, '-o', 'blind.snapshot.json'], env);
    expect(taken.code).toBe(0);
    expect(taken.stderr).toMatch(/^main: cannot see other roles' sessions in pg_stat_activity .*: run GRANT pg_read_all_stats TO "?blind_reaper_t"?;$/m);
    const live = await cli(['once', '--dry-run', '-c', config], env);
    const replayed = await cli(['once', '--dry-run', '--from', 'blind.snapshot.json', '-c', config]);
    const doc = JSON.parse(readFileSync(join(dir, 'blind.snapshot.json'), 'utf8')) as { sessions: Line[] };
    expect(doc.sessions.find((x) => x.pid === other.pid)).toEqual({ pid: other.pid, user: app, database: 'postgres', application: `${tag}-other`, visible: false, canSignal: false });
    const count = (r: CliResult) => /^main: ok, (\d+) sessions?, 0 decisions/m.exec(r.stdout)?.[1];
    expect(count(live)).toBeDefined();
    expect(count(replayed)).toBe(count(live));
    expect(await s.isAlive(other.pid)).toBe(true);
  });

  it('errors: an unreachable target exits 1 in one line; a malformed snapshot exits 2 with FILE:LINE:COL; usage errors exit 2', async () => {
    const down = write('down.yaml', 'targets: [{ name: down, host: 127.0.0.1, port: 1, user: x, database: x, connectTimeout: 2s }]\npolicies: [{ name: idle, maxIdle: 1h }]\n');
    const unreachable = await cli(['snapshot', '-c', down]);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toBe('pg-reaper: down: cannot read a snapshot: connect ECONNREFUSED 127.0.0.1:1\n');
    write('bad.snapshot.json', '{\n  "sessions": [\n    {"pid": 1, "state": "sleeping"}\n  ]\n}\n');
    const bad = await cli(['once', '--dry-run', '--from', 'bad.snapshot.json', '-c', down]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^bad\.snapshot\.json:3:25 sessions\[0\]\.state: expected one of "active", "idle", .* got "sleeping"\nbad\.snapshot\.json: 1 problem, snapshot not judged\n$/);
    expect((await cli(['once', '--from', 'bad.snapshot.json', '-c', down])).stderr).toContain('--from judges a saved snapshot and signals nothing: add --dry-run');
    expect((await cli(['snapshot', '--dry-run', '-c', down])).code).toBe(2);
    expect((await cli(['test'])).stderr).toContain('"test" needs at least one test file');
    const two = write('two.yaml', 'targets: [{ name: a, host: h }, { name: b, host: h }]\npolicies: [{ name: idle, maxIdle: 1h }]\n');
    expect((await cli(['snapshot', '-c', two])).stderr).toContain('the config has 2 targets: pass --target NAME (a, b)');
    write('none.snapshot.json', '{"sessions": []}');
    expect((await cli(['once', '--dry-run', '--from', 'none.snapshot.json', '-c', two])).stderr).toContain('does not say its target and the config has 2: pass --target NAME');
    const chosen = await cli(['once', '--dry-run', '--from', 'none.snapshot.json', '--target', 'b', '-c', two]);
    expect(chosen.code).toBe(0);
    expect(chosen.stdout).toMatch(/^b: ok, 0 sessions, 0 decisions/m);
  });
});

describe('pg-reaper test', () => {
  it('the example tests pass with exit 0; a failing expectation prints its diff with exit 1; a malformed file exits 2 with FILE:LINE:COL', async () => {
    const example = join(ROOT, 'deploy/examples/policies.test.yaml');
    const pass = await cli(['test', example], { DATABASE_URL: undefined });
    expect(pass.code).toBe(0);
    expect(pass.stdout).toMatch(/^ {2}ok {4}a forgotten transaction is terminated/m);
    expect(pass.stdout).toMatch(/\n\d+ tests in 1 file: \d+ passed, 0 failed\n$/);

    write('config.yaml', `targets: [{ name: main, connectionString: "\${NOT_SET_HERE}" }]\npolicies:\n  - { name: idle, maxIdle: 10m }\n`);
    const failing = write(
      'failing.test.yaml',
      `config: config.yaml
tests:
  - name: a session idle for 11m is terminated
    sessions:
      - { pid: 1, user: app, state: idle, stateAge: 11m }
      - { pid: 2, user: app, state: idle, stateAge: 9m }
    expect:
      - { pid: 1, action: none }
      - { pid: 2, action: terminate, policy: idle }
`,
    );
    const fail = await cli(['test', failing]);
    expect(fail.code).toBe(1);
    expect(fail.stdout).toBe(
      [
        failing,
        '  FAIL  a session idle for 11m is terminated',
        '        pid 1  expected  none',
        '               got       terminate by idle for idle 11m > 10m, would_terminate',
        '        pid 2  expected  terminate by idle',
        '               got       none',
        '               why not   idle: under threshold (idle 9m <= maxIdle 10m)',
        '1 test in 1 file: 0 passed, 1 failed',
        '',
      ].join('\n'),
    );

    const malformed = write('malformed.test.yaml', 'config: config.yaml\ntests:\n  - name: x\n    sessions: [{ pid: 1, state: idle, stateAge: ages }]\n    expect: []\n');
    const bad = await cli(['test', malformed, failing]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/malformed\.test\.yaml:4:49 tests\[0\]\.sessions\[0\]\.stateAge: expected an age like "5m"/);
    expect(bad.stderr).not.toMatch(/\n\s+at /);
    expect(bad.stdout).toMatch(/1 test in 1 file: 0 passed, 1 failed; 1 file not run\n$/);
  });
});
