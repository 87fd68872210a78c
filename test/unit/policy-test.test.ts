import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTestFiles } from '../../src/cli/test.js';

// `pg-reaper test`: what passes, what fails and how the failure reads, what is malformed and
// where, and that a test judges as the daemon would (caps, when, keepIdle, exemptions, facts).

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pg-reaper-policy-test-'));
  // the connection string's variable is never set: a test does not connect
  writeFileSync(
    join(dir, 'config.yaml'),
    `dryRun: true
exempt: { applications: ["pg_dump*"] }
targets:
  - name: primary
    connectionString: \${NEVER_SET_DATABASE_URL}
policies:
  - name: idle-in-transaction
    maxIdleInTransaction: 2m
  - name: pools
    maxIdle: 10m
    keepIdle: 2
    match: { users: ["app*"] }
  - name: runaway-queries
    maxQueryDuration: 15m
    action: cancel
    maxActionsPerRun: 1
  - name: pressure
    maxIdle: 1m
    when: { connectionsAbove: 6 }
`,
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(name: string, body: string, ...more: string[]): { code: number; out: string; err: string } {
  const file = join(dir, name);
  writeFileSync(file, body);
  let out = '';
  let err = '';
  const code = runTestFiles([file, ...more], { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out: out.replaceAll(dir + '/', ''), err: err.replaceAll(dir + '/', '') };
}

const ISSUE_EXAMPLE = `config: config.yaml
tests:
  - name: a forgotten transaction is terminated, a runaway query cancelled, a short idle left alone
    target: primary
    server: { clientSlots: 100 }
    sessions:
      - { pid: 101, user: app, database: shop, application: web, state: idle in transaction, stateAge: 5m, xactAge: 5m, backendAge: 1h }
      - { pid: 102, user: app, database: shop, application: web, state: idle, stateAge: 30s, backendAge: 2h }
      - { pid: 103, user: app, database: shop, application: web, state: active, queryAge: 20m, xactAge: 20m, backendAge: 3h }
    expect:
      - { pid: 101, action: terminate, policy: idle-in-transaction, reason: idle_in_transaction }
      - { pid: 102, action: none }
      - { pid: 103, action: cancel, policy: runaway-queries, reason: query_duration, outcome: would_cancel }
`;

describe('pg-reaper test', () => {
  it('a passing file: one ok line per test and a summary, exit 0', () => {
    const r = run('pass.test.yaml', ISSUE_EXAMPLE);
    expect(r).toEqual({
      code: 0,
      out: 'pass.test.yaml\n  ok    a forgotten transaction is terminated, a runaway query cancelled, a short idle left alone\n1 test in 1 file: 1 passed, 0 failed\n',
      err: '',
    });
  });

  it('a failing expectation: FAIL with expected and got per pid, the policy, reason and evidence, the why-not line; exit 1', () => {
    const r = run(
      'fail.test.yaml',
      ISSUE_EXAMPLE.replace('{ pid: 102, action: none }', '{ pid: 102, action: terminate, policy: pools }').replace('action: cancel, policy: runaway-queries, reason: query_duration, outcome: would_cancel', 'action: terminate, policy: runaway-queries') +
        `  - name: 'strict: a session not listed must get none'
    sessions:
      - { pid: 201, user: app, state: idle in transaction, stateAge: 3m, xactAge: 3m }
      - { pid: 202, user: app, state: idle, stateAge: 1m }
    expect:
      - { pid: 202, action: none }
`,
    );
    expect(r.code).toBe(1);
    expect(r.err).toBe('');
    expect(r.out).toBe(
      [
        'fail.test.yaml',
        '  FAIL  a forgotten transaction is terminated, a runaway query cancelled, a short idle left alone',
        '        pid 102  expected  terminate by pools',
        '                 got       none',
        '                 why not   idle-in-transaction: under threshold (maxIdleInTransaction: not idle in transaction); pools: kept by keepIdle 2 (among the 2 most recently active idle sessions of its user, database and application); later policies do not judge it',
        '        pid 103  expected  terminate by runaway-queries',
        '                 got       cancel by runaway-queries for query_duration 20m > 15m, would_cancel',
        '  FAIL  strict: a session not listed must get none',
        '        pid 201  expected  none (not listed in expect)',
        '                 got       terminate by idle-in-transaction for idle_in_transaction 3m > 2m, would_terminate',
        '2 tests in 1 file: 0 passed, 2 failed',
        '',
      ].join('\n'),
    );
  });

  it('others: any lets unlisted sessions get anything', () => {
    const r = run('others.test.yaml', `config: config.yaml\ntests:\n  - name: only 202 matters\n    others: any\n    sessions:\n      - { pid: 201, state: idle in transaction, stateAge: 3m }\n      - { pid: 202, state: idle, stateAge: 1m }\n    expect: [{ pid: 202, action: none }]\n`);
    expect(r.code).toBe(0);
  });

  it('a malformed file: every problem as FILE:LINE:COL PATH on stderr, its tests not run, exit 2 (even beside a failing file)', () => {
    const failing = join(dir, 'fail.test.yaml');
    const r = run(
      'bad.test.yaml',
      `config: config.yaml
tests:
  - name: typos
    target: replica
    sessions:
      - { pid: 1, user: app, state: idel, stateAge: 5 minutes }
      - { pid: 2, state: idle, colour: red }
    expect:
      - { pid: 3, action: none }
      - { pid: 2, action: cancel, policy: runaway, outcome: would_terminate }
  - name: nothing to judge
    expect: []
`,
      failing,
    );
    expect(r.code).toBe(2);
    expect(r.err.split('\n')).toEqual([
      'bad.test.yaml:4:13 tests[0].target: unknown target "replica"; the config\'s targets: primary',
      'bad.test.yaml:6:37 tests[0].sessions[0].state: expected one of "active", "idle", "idle in transaction", "idle in transaction (aborted)", "fastpath function call", "disabled", got "idel"',
      'bad.test.yaml:6:53 tests[0].sessions[0].stateAge: expected an age like "5m" or "90s" (ms, s, m, h, d, or a number of seconds), 0 or more, got "5 minutes"',
      expect.stringMatching(/^bad\.test\.yaml:7:32 tests\[0\]\.sessions\[1\]\.colour: unknown key "colour"; accepted keys: pid, user, /),
      'bad.test.yaml:10:61 tests[0].expect[1].outcome: outcome would_terminate goes with action terminate, not cancel',
      'bad.test.yaml:11:5 tests[1]: expected sessions, sessionsFrom, or both',
      'bad.test.yaml: 6 problems, tests not run',
      '',
    ]);
    expect(r.out).toContain('bad.test.yaml\n  NOT RUN  (6 problems, on stderr)\n');
    expect(r.out).toMatch(/\n2 tests in 1 file: 0 passed, 2 failed; 1 file not run\n$/);
  });

  it('a test that names what is not there is malformed: a pid not among the sessions, an unknown policy, a pid twice, a reason with none', () => {
    const r = run(
      'names.test.yaml',
      `config: config.yaml
tests:
  - name: names
    sessions:
      - { pid: 1, state: idle }
      - { pid: 1, state: active }
    expect:
      - { pid: 9, action: none }
      - { pid: 1, action: terminate, policy: pool }
      - { pid: 1, action: none, reason: idle }
`,
    );
    expect(r.code).toBe(2);
    expect(r.err.split('\n').slice(0, 5)).toEqual([
      'names.test.yaml:6:16 tests[0].sessions[1].pid: pid 1 is listed twice',
      'names.test.yaml:8:16 tests[0].expect[0].pid: pid 9 is not among the test\'s sessions',
      'names.test.yaml:9:46 tests[0].expect[1].policy: unknown policy "pool"; the policies of target primary: idle-in-transaction, pools, runaway-queries, pressure',
      'names.test.yaml:10:16 tests[0].expect[2].pid: pid 1 is expected twice',
      'names.test.yaml:10:41 tests[0].expect[2].reason: reason goes with action terminate or cancel: no policy decides a session whose action is none',
    ]);
  });

  it('a malformed config or a missing file is reported where it is, exit 2', () => {
    writeFileSync(join(dir, 'broken.yaml'), 'targets: [{ name: a, host: h }]\npolicies: [{ name: p, maxIdle: ten }]\n');
    const broken = run('broken-config.test.yaml', 'config: broken.yaml\ntests: [{ name: x, sessions: [], expect: [] }]\n');
    expect(broken.code).toBe(2);
    expect(broken.err).toContain('broken.yaml:2:32 policies[0].maxIdle: expected a duration like "10m"');
    const missing = run('missing-config.test.yaml', 'config: nowhere.yaml\ntests: [{ name: x, sessions: [], expect: [] }]\n');
    expect(missing.err).toContain('missing-config.test.yaml:1:9 config: nowhere.yaml: no such file\n');
    const noFile = runTestFiles([join(dir, 'absent.test.yaml')], { out: () => undefined, err: () => undefined });
    expect(noFile).toBe(2);
  });
});

describe('a test judges as the daemon acts', () => {
  const judge = (sessions: string, expect_: string, server = '') =>
    run('judge.test.yaml', `config: config.yaml\ntests:\n  - name: t\n${server ? `    server: ${server}\n` : ''}    sessions:\n${sessions}    expect:\n${expect_}`);

  it('the connections when.connectionsAbove sees are the listed sessions plus the reaper\'s own', () => {
    const active = (pid: number) => `      - { pid: ${pid}, user: etl, state: active, queryAge: 1s }\n`;
    const five = '      - { pid: 1, user: etl, state: idle, stateAge: 5m }\n' + [2, 3, 4, 5].map(active).join('');
    // 5 sessions + the reaper = 6, not above 6: held
    expect(judge(five, '      - { pid: 1, action: none }\n').code).toBe(0);
    // 6 sessions + the reaper = 7 > 6: acted on
    expect(judge(five + active(6), '      - { pid: 1, action: terminate, policy: pressure, reason: idle, outcome: would_terminate }\n').code).toBe(0);
    // a held match explains itself
    const held = judge(five, '      - { pid: 1, action: terminate }\n');
    expect(held.out).toContain('why not   pressure: over idle, but held: client connections (6) are not above when.connectionsAbove 6');
  });

  it('caps give skipped_cap, oldest first; keepIdle keeps the most recently active', () => {
    const r = judge(
      `      - { pid: 1, user: etl, state: active, queryAge: 20m }
      - { pid: 2, user: etl, state: active, queryAge: 30m }
      - { pid: 3, user: app, state: idle, stateAge: 11m }
      - { pid: 4, user: app, state: idle, stateAge: 12m }
      - { pid: 5, user: app, state: idle, stateAge: 13m }
`,
      `      - { pid: 2, action: cancel, outcome: would_cancel }
      - { pid: 1, action: cancel, outcome: skipped_cap }
      - { pid: 5, action: terminate, policy: pools, reason: idle }
      - { pid: 3, action: none }
      - { pid: 4, action: none }
`,
    );
    expect(r.out).toContain('ok    t');
  });

  it('server facts: a superuser session is denied unless the reaper is superuser; an exempt session gets none', () => {
    const su = '      - { pid: 1, user: admin, superuser: true, state: idle in transaction, stateAge: 3m }\n      - { pid: 2, user: app, application: pg_dump, state: idle in transaction, stateAge: 1h, xactAge: 1h }\n';
    expect(judge(su, '      - { pid: 1, action: terminate, outcome: denied }\n').code).toBe(0);
    expect(judge(su, '      - { pid: 1, action: terminate, outcome: would_terminate }\n', '{ reaperSuperuser: true }').code).toBe(0);
  });

  it('the global dryRun does not change a test: policies are judged as the daemon acts once it is off', () => {
    // 6 sessions + the reaper = 7 > 6, but the pools policy terminates one first: 6, so pressure
    // holds back. Judged as the configured dry run, nothing would be freed and pressure would act.
    const sessions = `      - { pid: 1, user: app, state: idle, stateAge: 20m }
      - { pid: 2, user: app, state: idle, stateAge: 19m }
      - { pid: 3, user: app, state: idle, stateAge: 18m }
      - { pid: 4, user: etl, state: idle, stateAge: 5m }
      - { pid: 5, user: etl, state: idle, stateAge: 4m }
      - { pid: 6, user: etl, state: idle, stateAge: 3m }
`;
    const r = judge(sessions, '      - { pid: 1, action: terminate, policy: pools, outcome: would_terminate }\n');
    expect(r.out).toContain('ok    t');
  });

  it('sessionsFrom reads a snapshot file beside sessions; its server facts apply under the test\'s own', () => {
    writeFileSync(
      join(dir, 'snap.json'),
      '{\n  "takenAt": "2026-11-22T04:30:52.101Z",\n  "target": "primary",\n  "server": {"clientSlots": 40, "version": "16.4", "reaperSuperuser": true},\n  "sessions": [\n    {"pid": 1, "user": "admin", "superuser": true, "state": "idle in transaction", "stateAge": 180},\n    {"pid": 2, "user": "etl", "state": "active", "queryAge": 1}\n  ]\n}\n',
    );
    const base = `config: config.yaml\ntests:\n  - name: from a snapshot\n    sessionsFrom: snap.json\n`;
    const superuser = run('from.test.yaml', `${base}    sessions:\n      - { pid: 3, user: app, state: idle in transaction, stateAge: 3m }\n    expect:\n      - { pid: 1, action: terminate, outcome: would_terminate }\n      - { pid: 3, action: terminate, policy: idle-in-transaction }\n`);
    expect(superuser.out).toContain('ok    from a snapshot');
    const overridden = run('from-server.test.yaml', `${base}    server: { reaperSuperuser: false }\n    expect: [{ pid: 1, action: terminate, outcome: denied }]\n`);
    expect(overridden.out).toContain('ok    from a snapshot');
    const dup = run('from-dup.test.yaml', `${base}    sessions:\n      - { pid: 2, state: idle }\n    expect: []\n`);
    expect(dup.err).toContain('from-dup.test.yaml:6:16 tests[0].sessions[0].pid: pid 2 is also in sessionsFrom snap.json');
    writeFileSync(join(dir, 'bad-snap.json'), '{"sessions": [{"pid": 1}]}');
    const bad = run('from-bad.test.yaml', `config: config.yaml\ntests:\n  - name: x\n    sessionsFrom: bad-snap.json\n    expect: []\n`);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/^bad-snap\.json:1:15 sessions\[0\]\.state: required/m);
  });
});

describe('protection and budgets in a test', () => {
  const config = (extra: string) => {
    writeFileSync(join(dir, 'guarded.yaml'), `${extra}targets: [{ name: main, host: h }]\npolicies:\n  - { name: idle, maxIdle: 1m }\n  - { name: queries, maxQueryDuration: 1m }\n`);
  };
  const sessions = `config: guarded.yaml
tests:
  - name: guarded
    sessions:
      - { pid: 1, state: idle, stateAge: 10m }
      - { pid: 2, state: idle, stateAge: 9m }
      - { pid: 3, state: idle, stateAge: 8m }
      - { pid: 4, application: pg_dump, state: idle, stateAge: 1h }
      - { pid: 5, state: active, queryAge: 1h, maintenance: CREATE INDEX CONCURRENTLY }
    others: any
    expect:
`;

  it('backups (by application_name) and maintenance (as the server reports it) are protected unless protect says otherwise', () => {
    config('budget: off\n');
    const r = run('protected.test.yaml', `${sessions}      - { pid: 4, action: none }\n      - { pid: 5, action: none }\n      - { pid: 1, action: terminate }\n`);
    expect(r.out).toContain('ok    guarded');
    const why = run('protected-why.test.yaml', `${sessions}      - { pid: 4, action: terminate }\n      - { pid: 5, action: terminate }\n`);
    expect(why.out).toContain('why not   protected: backup (pg_dump)');
    expect(why.out).toContain('why not   protected: maintenance (CREATE INDEX CONCURRENTLY)');
    config('budget: off\nprotect: { backups: false, maintenance: false }\n');
    const off = run('unprotected.test.yaml', `${sessions}      - { pid: 4, action: terminate, policy: idle }\n      - { pid: 5, action: terminate, policy: queries }\n`);
    expect(off.out).toContain('ok    guarded');
  });

  it('a budget leaves the decisions past it skipped_budget, oldest first, counted from a daemon that just started', () => {
    config('budget: { maxActions: 2, window: 10m }\n');
    const r = run('budget.test.yaml', `${sessions}      - { pid: 1, action: terminate, outcome: would_terminate }\n      - { pid: 2, action: terminate, outcome: would_terminate }\n      - { pid: 3, action: terminate, outcome: skipped_budget }\n`);
    expect(r.out).toContain('ok    guarded');
  });
});
