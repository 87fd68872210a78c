import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLI, runCli, startCli } from '../helpers/cli.js';
import { ensureReaperRole, ensureRole, PASSWORD, Sessions, unique, urlFor } from '../helpers/pg.js';

// The built CLI as a child process, the way a container runs it.

// the program as shipped: the bundle that npm run build makes (npm test builds first)
const s = new Sessions();
let reaper: string;
let app: string;
let dir: string;

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error('dist/pg-reaper/cli.js is missing: run "npm run build" (npm test does it first)');
  await s.start();
  reaper = await ensureReaperRole(s.admin);
  app = await ensureRole(s.admin, 'app_t');
  dir = mkdtempSync(join(tmpdir(), 'pg-reaper-cli-'));
});
afterEach(() => s.closeAll());
afterAll(async () => {
  await s.end();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs the CLI; `env` adds variables, and one set to undefined is removed. */
const start = (args: string[], env: Record<string, string | undefined> = {}) => startCli(args, { env });
const cli = (args: string[], env?: Record<string, string | undefined>) => runCli(args, env ? { env } : {});

function writeConfig(name: string, body: string): string {
  const file = join(dir, name);
  writeFileSync(file, body);
  return file;
}

/** A daemon config on a 1 s schedule that reaps idle sessions of applications named TAG-*. */
const daemonYaml = (tag: string, maxIdle = '500ms') => `schedule: "* * * * * *"
http: { host: 127.0.0.1, port: 0 }
targets:
  - name: main
    connectionString: \${REAPER_URL}
policies:
  - name: idle
    maxIdle: ${maxIdle}
    match: { applications: ["${tag}-*"] }
`;

describe('pg-reaper run', () => {
  it('reaps on a 1 s schedule as a child process and exits 0 on SIGTERM', async () => {
    const tag = unique('t-run');
    const victim = await s.session({ user: app, application: `${tag}-a` });
    const file = writeConfig('run.yaml', daemonYaml(tag));
    const p = start(['run', '-c', file], { REAPER_URL: urlFor({ user: reaper }) });
    const deadline = Date.now() + 15_000;
    while ((await s.isAlive(victim.pid)) && Date.now() < deadline) await sleep(100);
    expect(await s.isAlive(victim.pid)).toBe(false);
    while (!p.out().includes('"outcome":"terminated"') && Date.now() < deadline) await sleep(50);

    p.child.kill('SIGTERM');
    const result = await p.exit;

    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    const started = lines.find((l) => String(l.msg).startsWith('pg-reaper started'))!;
    expect(started.port).toBeGreaterThan(0);
    expect(lines.find((l) => l.outcome === 'terminated')).toMatchObject({ pid: victim.pid, policy: 'idle', reason: 'idle' });
    expect(lines.at(-1)!.msg).toBe('stopped');
    expect(result.stdout).not.toContain(PASSWORD);
  });
});

describe('pg-reaper run: reload on SIGHUP', () => {
  it('applies a valid config and keeps the old one running when the new one is invalid', async () => {
    const tagA = unique('t-hupa');
    const tagB = unique('t-hupb');
    const body = (tag: string, maxIdle = '300ms') => daemonYaml(tag, maxIdle);
    const file = writeConfig('hup.yaml', body(tagA));
    const p = start(['run', '-c', file], { REAPER_URL: urlFor({ user: reaper }) });
    const waitFor = async (what: () => Promise<boolean> | boolean, label: string) => {
      const deadline = Date.now() + 15_000;
      while (!(await what())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}; stdout:\n${p.out()}\nstderr:\n${p.err()}`);
        await sleep(50);
      }
    };
    const metric = async (name: string) => {
      const port = (JSON.parse(p.out().split('\n').find((l) => l.includes('pg-reaper started'))!) as { port: number }).port;
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    };
    await waitFor(() => p.out().includes('pg-reaper started'), 'start');

    writeConfig('hup.yaml', body(tagA, 'ten'));
    p.child.kill('SIGHUP');
    await waitFor(() => p.out().includes('config reload failed'), 'the rejected reload');
    expect(p.out()).toContain('policies[0].maxIdle: expected a duration like');
    expect(await metric('pg_reaper_config_last_reload_successful')).toBe(0);
    const a = await s.session({ user: app, application: `${tagA}-1` });
    await waitFor(async () => !(await s.isAlive(a.pid)), 'the old config to reap a session');

    writeConfig('hup.yaml', body(tagB));
    p.child.kill('SIGHUP');
    await waitFor(() => p.out().includes('"msg":"config reloaded"'), 'the applied reload');
    expect(await metric('pg_reaper_config_last_reload_successful')).toBe(1);
    const spared = await s.session({ user: app, application: `${tagA}-2` });
    const b = await s.session({ user: app, application: `${tagB}-1` });
    await s.agedOver(spared.pid, 300);
    await waitFor(async () => !(await s.isAlive(b.pid)), 'the new config to reap a session');
    expect(await s.isAlive(spared.pid)).toBe(true);

    p.child.kill('SIGTERM');
    expect((await p.exit).code).toBe(0);
  });
});

describe('pg-reaper run: signals while starting', () => {
  // SigCgt in /proc/PID/status: the signals the process catches (bit n-1 for signal n)
  const catches = (pid: number, signal: number) => {
    try {
      const mask = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
      return mask !== undefined && ((BigInt(`0x${mask}`) >> BigInt(signal - 1)) & 1n) === 1n;
    } catch {
      return false;
    }
  };

  it('a SIGHUP before the daemon is up does not end it: the reload is applied once it is', async () => {
    const tag = unique('t-early');
    const file = writeConfig('early.yaml', daemonYaml(tag));
    const p = start(['run', '-c', file], { REAPER_URL: urlFor({ user: reaper }) });
    const deadline = Date.now() + 10_000;
    while (!catches(p.child.pid!, 1) && Date.now() < deadline && p.child.exitCode === null) await sleep(2);
    expect(p.out()).not.toContain('pg-reaper started');
    p.child.kill('SIGHUP');
    while (!p.out().includes('"msg":"config reloaded"') && Date.now() < deadline + 5000 && p.child.exitCode === null) await sleep(50);
    expect(p.child.exitCode).toBeNull();
    expect(p.out()).toContain('SIGHUP arrived while starting: reloading the config now');
    expect(p.out()).toContain('"msg":"config reloaded"');
    p.child.kill('SIGTERM');
    expect((await p.exit).code).toBe(0);
  });

  it('a SIGTERM before the daemon is up stops it as soon as it is, with exit 0', async () => {
    const file = writeConfig('early-term.yaml', daemonYaml(unique('t-early-term')));
    const p = start(['run', '-c', file], { REAPER_URL: urlFor({ user: reaper }) });
    const deadline = Date.now() + 10_000;
    while (!catches(p.child.pid!, 1) && Date.now() < deadline) await sleep(2); // early-signals.ts is loaded
    p.child.kill('SIGTERM');
    const result = await p.exit;
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('"msg":"stopped"');
  });
});

describe('pg-reaper once', () => {
  it('--json prints one object per decision; --dry-run signals nothing', async () => {
    const tag = unique('t-once');
    const victim = await s.session({ user: app, application: `${tag}-a` });
    await s.agedOver(victim.pid, 300);
    const file = writeConfig(
      'once.yaml',
      `targets:
  - name: main
    connectionString: \${REAPER_URL}
policies:
  - name: idle
    maxIdle: 300ms
    match: { applications: ["${tag}-*"] }
`,
    );
    const env = { REAPER_URL: urlFor({ user: reaper }) };

    const dry = await cli(['once', '--json', '--dry-run', '-c', file], env);
    expect(dry.code).toBe(0);
    const decisions = dry.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(decisions).toEqual([
      expect.objectContaining({ target: 'main', policy: 'idle', reason: 'idle', action: 'terminate', outcome: 'would_terminate', dryRun: true, pid: victim.pid, user: app, database: 'postgres', application: `${tag}-a`, clientAddr: '127.0.0.1', state: 'idle', thresholdSeconds: 0.3 }),
    ]);
    expect(Object.keys(decisions[0]!).sort()).toEqual(['action', 'application', 'clientAddr', 'database', 'dryRun', 'outcome', 'pid', 'policy', 'reason', 'seconds', 'state', 'target', 'thresholdSeconds', 'user'].sort());
    expect(await s.isAlive(victim.pid)).toBe(true);

    const real = await cli(['once', '-c', file], env);
    expect(real.code).toBe(0);
    expect(real.stdout).toMatch(new RegExp(`main\\s+idle\\s+idle\\s+terminate\\s+terminated\\s+${victim.pid}\\s`));
    expect(real.stdout).toMatch(/^main: ok, \d+ sessions, 1 decision/m);
    expect(await s.isAlive(victim.pid)).toBe(false);
  });

  it('exits 1 when a target fails, after running the others', async () => {
    const file = writeConfig(
      'down.yaml',
      `targets:
  - name: main
    connectionString: \${REAPER_URL}
  - name: down
    host: 127.0.0.1
    port: 1
    user: reaper
    database: postgres
policies:
  - name: idle
    maxIdle: 1h
`,
    );
    const r = await cli(['once', '-c', file], { REAPER_URL: urlFor({ user: reaper }) });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^main: ok/m);
    expect(r.stdout).toMatch(/^down: FAILED: .*ECONNREFUSED/m);
  });
});

describe('pg-reaper audit-init, and once with audit', () => {
  const SCHEMA = 'reaper_audit_cli_t';
  // from a clean slate, whatever an interrupted earlier run left
  beforeAll(() => s.admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`));
  afterAll(() => s.admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`));
  const auditYaml = (table: string, audit = `{ target: main, table: ${table} }`, extra = '') => `targets:
  - name: main
    connectionString: \${REAPER_URL}
audit: ${audit}
${extra}policies:
  - name: idle
    maxIdle: 300ms
    match: { applications: ["\${TAG}-*"] }
`;

  it('--print writes the DDL with the GRANT, connecting to nothing; the reaper role alone may not create, but once made it only checks', async () => {
    const table = `${SCHEMA}.printed`;
    const unreachable = writeConfig('audit-print.yaml', auditYaml(table, `{ connectionString: "postgres://${reaper}@127.0.0.1:1/postgres", table: ${table} }`));
    const printed = await cli(['audit-init', '-c', unreachable, '--print'], { REAPER_URL: urlFor({ user: reaper }), TAG: 'x' });
    expect(printed.code).toBe(0);
    expect(printed.stdout).toContain(`CREATE SCHEMA IF NOT EXISTS ${SCHEMA};`);
    expect(printed.stdout).toContain(`CREATE TABLE IF NOT EXISTS ${table} (\n  id uuid PRIMARY KEY,`);
    expect(printed.stdout).toContain(`GRANT USAGE ON SCHEMA ${SCHEMA} TO "${reaper}";\nGRANT INSERT ON ${table} TO "${reaper}";\nCOMMIT;`);

    // as the reaper's own role, which may not create schemas in the database
    const file = writeConfig('audit-init.yaml', auditYaml(table));
    const env = { REAPER_URL: urlFor({ user: reaper }), TAG: 'x' };
    const denied = await cli(['audit-init', '-c', file], env);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/permission denied for database .*SQLSTATE 42501.*have the database owner run "pg-reaper audit-init -c .* --print \| psql \.\.\." \(it grants "reaper_t" INSERT\)/);
    expect(denied.stderr).not.toMatch(/\n\s+at /);

    // the printed DDL, run by an admin; then the reaper's role finds it and can insert
    await s.admin.query(printed.stdout);
    const checked = await cli(['audit-init', '-c', file], env);
    expect(checked).toMatchObject({ code: 0, stdout: `${table} on target main: already there; pg-reaper can insert into it\n` });
    const connect = await cli(['check', '-c', file, '--connect'], env);
    expect(connect.stdout).toContain(`audit: ${table} on target main: pg-reaper can insert into it`);
    expect(connect.code).toBe(0);
  }, 120_000);

  it('creates the table once and is idempotent; once writes its rows before it exits, and exits 1 when it cannot', async () => {
    const table = `${SCHEMA}.actions`;
    const tag = unique('t-once-audit');
    const file = writeConfig('audit-once.yaml', auditYaml(table));
    const env = { REAPER_URL: urlFor({}), TAG: tag };
    expect(await cli(['audit-init', '-c', file], env)).toMatchObject({ code: 0, stdout: `${table} on target main: created; pg-reaper can insert into it\n` });
    expect(await cli(['audit-init', '-c', file], env)).toMatchObject({ code: 0, stdout: `${table} on target main: already there; pg-reaper can insert into it\n` });
    expect((await cli(['check', '-c', file], env)).stdout).toMatch(new RegExp(`dryRun off, audit to ${table.replace('.', '\\.')} on target main\n`));

    const victim = await s.session({ user: app, application: `${tag}-a` });
    await s.agedOver(victim.pid, 300);
    const r = await cli(['once', '-c', file], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/terminated/);
    const rows = (await s.admin.query(`SELECT pid, outcome, policy FROM ${table}`)).rows;
    expect(rows).toEqual([{ pid: victim.pid, outcome: 'terminated', policy: 'idle' }]);

    // the audit server refuses connections: the action is done, the row is lost, exit 1
    const away = writeConfig('audit-away.yaml', auditYaml(table, `{ connectionString: "postgres://x@127.0.0.1:1/postgres", table: ${table} }`, 'shutdownTimeout: 1s\n'));
    const victim2 = await s.session({ user: app, application: `${tag}-b` });
    await s.agedOver(victim2.pid, 300);
    const lost = await cli(['once', '-c', away, '--log-format', 'json'], env);
    expect(await s.isAlive(victim2.pid)).toBe(false);
    expect(lost.code).toBe(1);
    expect(lost.stderr).toContain('audit server unreachable');
    expect(lost.stderr).toMatch(/"lost":1,.*"msg":"audit rows not written before the stop deadline are lost/);
  }, 120_000);

  it('audit-init without audit in the config exits 2 and says what to add', async () => {
    const file = writeConfig('no-audit.yaml', daemonYaml('x'));
    const r = await cli(['audit-init', '-c', file], { REAPER_URL: urlFor({ user: reaper }) });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`pg-reaper: ${file}: no audit in the config: add audit: { target: NAME } or audit: { connectionString: ... } (README: Audit table)\n`);
    expect((await cli(['check', '-c', file, '--print'])).stderr).toContain('--print only applies to "audit-init"');
  });
});

describe('pg-reaper check and usage', () => {
  it('check accepts config.example.yaml and prints a summary', async () => {
    const example = join(import.meta.dirname, '../../config.example.yaml');
    const withEnv = await cli(['check', '-c', example], { DATABASE_URL: 'postgres://reaper@db/postgres' });
    const r = await cli(['check', '-c', example], { DATABASE_URL: undefined });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/config\.example\.yaml:\d+:\d+ targets\[0\]\.connectionString: environment variable DATABASE_URL is not set/);
    expect(withEnv.code).toBe(0);
    expect(withEnv.stdout).toMatch(/ok: 1 target \(primary\), 5 policies \(lock-blockers, idle-in-transaction, idle-app-sessions, runaway-reports, free-slots-under-pressure\)/);
    // what is protected, and the budgets
    const [, protectedLine, budgetLine] = withEnv.stdout.split('\n');
    expect(protectedLine).toMatch(/^protected: backups by application_name \(pg_dump, pg_dumpall, pg_restore, pg_basebackup, barman, wal-g, pgBackRest \[\*, barman_\*, pgcopydb\[\*\); maintenance by the statement running now \(VACUUM, ANALYZE, CREATE INDEX CONCURRENTLY, REINDEX CONCURRENTLY, CLUSTER, REFRESH MATERIALIZED VIEW CONCURRENTLY\) and pg_repack's sessions$/);
    expect(budgetLine).toBe('budget: at most 100 terminations and cancellations per 10m on each target; policy idle-app-sessions: 30 per 10m');
    const off = await cli(['check', '-c', writeConfig('off.yaml', 'protect: { backups: false }\nbudget: off\ntargets: [{ name: a, host: h }]\npolicies: [{ name: p, maxIdle: 1m }]\n')]);
    expect(off.stdout.split('\n').slice(1, 3)).toEqual([
      "protected: backups: off (protect.backups: false); maintenance by the statement running now (VACUUM, ANALYZE, CREATE INDEX CONCURRENTLY, REINDEX CONCURRENTLY, CLUSTER, REFRESH MATERIALIZED VIEW CONCURRENTLY) and pg_repack's sessions",
      'budget: off for the targets (budget: off)',
    ]);
  });

  it('a bad config exits 2 with every problem as FILE:LINE:COL PATH and no stack trace', async () => {
    const file = writeConfig('bad.yaml', 'targets:\n  - name: Main\n    host: db\npolicies:\n  - name: idle\n    maxIdle: ten\n    colour: red\n');
    const r = await cli(['check', '-c', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${file}:2:11 targets[0].name: expected lowercase letters, digits, "_" or "-", got "Main"`);
    expect(r.stderr).toContain(`${file}:6:14 policies[0].maxIdle: expected a duration like "10m"`);
    expect(r.stderr).toContain(`${file}:7:5 policies[0].colour: unknown key "colour"`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stdout).toBe('');
  });

  it('run exits 3 with a clear line when its HTTP port is taken', async () => {
    const { createServer } = await import('node:net');
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as { port: number }).port;
    try {
      const file = writeConfig('busy.yaml', `http: { host: 127.0.0.1, port: ${port} }\ntargets: [{ name: main, host: 127.0.0.1 }]\npolicies: [{ name: idle, maxIdle: 1h }]\n`);
      const r = await cli(['run', '-c', file]);
      expect(r.code).toBe(3);
      const fatal = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
      expect(fatal).toMatchObject({ level: 'fatal', msg: 'cannot start', error: `cannot listen on 127.0.0.1:${port}: EADDRINUSE` });
    } finally {
      busy.close();
    }
  });

  it('usage errors exit 2; --help and --version exit 0', async () => {
    const bad = await cli(['frobnicate']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown command "frobnicate"');
    const flag = await cli(['run', '--json']);
    expect(flag.code).toBe(2);
    // an unknown option says what it is and the nearest known one, in pg-reaper's words, not Node's
    const typo = await cli(['once', '--dryrun']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toBe('pg-reaper: unknown option --dryrun: did you mean --dry-run?\nRun "pg-reaper --help" for usage.\n');
    const missing = await cli(['check', '-c', join(dir, 'missing.yaml')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('missing.yaml: no such file');
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('pg-reaper once [--dry-run] [--json]');
    const version = await cli(['--version']);
    expect(version.stdout).toMatch(/^pg-reaper \d+\.\d+\.\d+\n$/);
  });
});

describe('operator experience', () => {
  it('check --connect prints what the reaper can do per target; exit 1 for an unreachable target or hidden sessions', async () => {
    const blind = await ensureRole(s.admin, 'blind_reaper_t', 'NOSUPERUSER');
    await s.admin.query('REVOKE pg_read_all_stats, pg_signal_backend FROM blind_reaper_t');
    const other = await s.session({ user: app, application: unique('t-seen') });
    const yaml = (targets: string) => `targets:\n${targets}policies: [{ name: idle, maxIdle: 1h }]\n`;
    const good = await cli(['check', '--connect', '-c', writeConfig('connect-ok.yaml', yaml(`  - { name: main, connectionString: "${urlFor({ user: reaper })}" }\n`))]);
    expect(good.code).toBe(0);
    const line = good.stdout.split('\n').find((l) => l.startsWith('main: '))!;
    expect(line).toMatch(/^main: PostgreSQL \d+\.\d+\S* as reaper_t: superuser no, pg_read_all_stats yes, pg_signal_backend yes; sees \d+ client sessions?, can judge \d+ and signal \d+, protects \d+( \(backup \d+, maintenance \d+\))?$/);

    const bad = await cli(['check', '--connect', '-c', writeConfig('connect-bad.yaml', yaml(`  - { name: blind, connectionString: "${urlFor({ user: blind })}" }\n  - { name: down, host: 127.0.0.1, port: 1, user: x, database: x, connectTimeout: 2s }\n`))]);
    expect(bad.code).toBe(1);
    const [blindLine, readGrant, signalGrant, downLine] = bad.stdout.trimEnd().split('\n').slice(3);
    expect(blindLine).toMatch(/^blind: PostgreSQL .* as blind_reaper_t: superuser no, pg_read_all_stats no, pg_signal_backend no; sees \d+ client sessions, can judge \d+ and signal \d+, protects 0$/);
    // one line per missing privilege, each ending with one statement to paste: the role quoted, one semicolon
    expect(readGrant).toMatch(/^ {2}cannot see other roles' sessions .*: run GRANT pg_read_all_stats TO "blind_reaper_t";$/);
    expect(signalGrant).toMatch(/^ {2}can only signal .*: run GRANT pg_signal_backend TO "blind_reaper_t";$/);
    expect(bad.stdout).not.toContain(';;');
    // the other role's session is seen (counted) but cannot be judged
    const [, seen, judged] = /sees (\d+) client sessions?, can judge (\d+)/.exec(blindLine!)!;
    expect(Number(seen)).toBeGreaterThan(Number(judged));
    expect(downLine).toMatch(/^down: UNREACHABLE: connect ECONNREFUSED 127\.0\.0\.1:1$/);
    expect(await s.isAlive(other.pid)).toBe(true);
  });

  it('--log-format pretty prints one readable line per action and per run; debug says why a session was not acted on', async () => {
    const tag = unique('t-pretty');
    const victim = await s.session({ user: app, application: `${tag}-a` });
    const spared = await s.session({ user: app, application: `${tag}-keep` });
    await s.agedOver(victim.pid, 300);
    const file = writeConfig(
      'pretty.yaml',
      `logLevel: debug\ntargets: [{ name: main, connectionString: "\${REAPER_URL}" }]\npolicies:\n  - name: idle\n    maxIdle: 300ms\n    match: { applications: ["${tag}-*"] }\n    exempt: { applications: ["${tag}-keep"] }\n`,
    );
    const r = await cli(['once', '--log-format', 'pretty', '-c', file], { REAPER_URL: urlFor({ user: reaper }) });
    expect(r.code).toBe(0);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines.some((l) => l.startsWith('{'))).toBe(false);
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^\\d\\d:\\d\\d:\\d\\d terminated +pid ${victim.pid} app_t@postgres \\(${tag}-a, 127\\.0\\.0\\.1\\): idle [\\d.]+s > 0\\.3s \\[main/idle\\]$`)));
    expect(lines).toContainEqual(expect.stringMatching(/^\d\d:\d\d:\d\d run finished main: \d+ sessions, terminated 1 \(\d+ms\)$/));
    expect(lines).toContainEqual(expect.stringMatching(new RegExp(`DEBUG not acted on .*pid=${spared.pid} .*why=idle: exempt by exempt\\.applications "${tag}-keep"`)));
  });

  it('resolves a relative passwordFile against the config file, from any working directory', async () => {
    const tag = unique('t-rel');
    const victim = await s.session({ user: app, application: `${tag}-a` });
    await s.agedOver(victim.pid, 300);
    const sub = join(dir, 'conf');
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, 'reaper.pw'), `${PASSWORD}\n`);
    const url = new URL(urlFor({ user: reaper }));
    url.password = '';
    writeFileSync(join(sub, 'rel.yaml'), `targets: [{ name: main, connectionString: "${url}", passwordFile: reaper.pw }]\npolicies: [{ name: idle, maxIdle: 300ms, match: { applications: ["${tag}-*"] } }]\n`);
    const child = spawn(process.execPath, [CLI, 'once', '--json', '-c', join(sub, 'rel.yaml')], { cwd: tmpdir(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const [code] = (await once(child, 'exit')) as [number];
    expect(code).toBe(0);
    expect(JSON.parse(out.trim())).toMatchObject({ pid: victim.pid, outcome: 'terminated' });
  });

  it('each verb has its own --help with an example', async () => {
    for (const verb of ['run', 'check', 'once', 'audit-init', 'snapshot', 'test']) {
      const r = await cli([verb, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^pg-reaper ${verb}`));
      expect(r.stdout).toMatch(/^Examples?:$/m);
    }
    // the demo is development tooling: the program says where it runs instead
    expect((await cli(['--help'])).stdout).not.toContain('demo');
    expect(await cli(['demo'])).toMatchObject({ code: 2, stderr: expect.stringContaining('runs from a git checkout of pg-reaper, not from the installed program: npm ci && npm run demo') });
    expect((await cli(['once', '--connect'])).stderr).toContain('--connect only applies to "check"');
    const one = await cli(['check', '-c', writeConfig('one.yaml', 'targets: [{ name: a, host: h }]\npolicies: [{ name: p, maxIdle: 1m }]\n')]);
    expect(one.stdout).toMatch(/ok: 1 target \(a\), 1 policy \(p\),/);
  });

  it('SIGTERM to "npm start" reaches the daemon: npm exits 0 and nothing is left running', async () => {
    const file = writeConfig('npm-start.yaml', daemonYaml(unique('t-npm')));
    const npm = spawn('npm', ['start', '--silent', '--', '-c', file], { cwd: join(import.meta.dirname, '../..'), env: { ...process.env, REAPER_URL: urlFor({ user: reaper }) }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    npm.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 20_000;
    while (!out.includes('pg-reaper started') && Date.now() < deadline) await sleep(50);
    const started = JSON.parse(out.split('\n').find((l) => l.includes('pg-reaper started'))!) as { pid: number; port: number };
    expect(started.pid).not.toBe(npm.pid);
    npm.kill('SIGTERM');
    const [code] = (await once(npm, 'exit')) as [number | null];
    expect(code).toBe(0);
    expect(out).toContain('"msg":"stopped"');
    expect(() => process.kill(started.pid, 0)).toThrow(); // the daemon is gone
    await expect(fetch(`http://127.0.0.1:${started.port}/livez`)).rejects.toThrow();
  });
});
