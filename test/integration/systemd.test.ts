import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureReaperRole, ensureRole, Sessions, unique, urlFor } from '../helpers/pg.js';

// deploy/systemd/pg-reaper.service: what it runs and how it is hardened, `systemd-analyze verify`
// and `systemd-analyze security` where systemd-analyze is installed, and (with strace too) every
// system call the daemon makes while it starts, reaps, serves /metrics, reloads and stops is one
// that the unit's SystemCallFilter lets through. This machine has no systemd as PID 1 to start
// the unit for real: the filter is checked against what node actually calls.

const ROOT = join(import.meta.dirname, '../..');
const UNIT = join(ROOT, 'deploy/systemd/pg-reaper.service');
const CLI = join(ROOT, 'dist/pg-reaper/cli.js');
const has = (cmd: string, arg: string) => spawnSync(cmd, [arg], { stdio: 'ignore' }).status === 0;
const hasAnalyze = has('systemd-analyze', '--version');
const hasStrace = has('strace', '-V');
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pg-reaper-systemd-test-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The [Service] section: each key with its values in file order. */
function service(): Map<string, string[]> {
  const text = readFileSync(UNIT, 'utf8');
  const section = text.split(/^\[Service\]$/m)[1]!.split(/^\[/m)[0]!;
  const keys = new Map<string, string[]>();
  for (const line of section.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) keys.set(m[1]!, [...(keys.get(m[1]!) ?? []), m[2]!]);
  }
  return keys;
}
const value = (key: string) => service().get(key)?.at(-1);

/** The unit with ExecStart's node replaced by the node running this test (verify checks the executable exists). */
function unitCopy(): string {
  const file = join(dir, 'pg-reaper.service');
  writeFileSync(file, readFileSync(UNIT, 'utf8').replace(/^ExecStart=\S+/m, `ExecStart=${process.execPath}`));
  return file;
}

describe('deploy/systemd/pg-reaper.service', () => {
  it('runs node on the bundle directly, reloads by SIGHUP to that process, restarts on failure, as its own user', () => {
    const exec = value('ExecStart')!.split(' ');
    expect(exec[0]).toMatch(/^\/.*\/node$/);
    expect(exec.slice(1, 2)).toEqual(['--max-semi-space-size=1']);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    expect(exec[2]).toMatch(new RegExp(`/node_modules/pg-reaper/${pkg.bin['pg-reaper']}$`));
    expect(exec.slice(3)).toEqual(['run']);
    expect(value('ExecStart')).not.toMatch(/\bnpm\b/);
    expect(value('Type')).toBe('exec');
    expect(value('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(value('Restart')).toBe('on-failure');
    expect(value('RestartPreventExitStatus')).toBe('2');
    expect(value('User')).toBe('pg-reaper');
    // SIGTERM waits up to shutdownTimeout (default 10 s) for runs in flight
    expect(Number(value('TimeoutStopSec'))).toBeGreaterThan(10);
    expect(value('Environment') && service().get('Environment')).toContain('PG_REAPER_CONFIG=/etc/pg-reaper/config.yaml');
  });

  it('carries the hardening the issue asks for, and not MemoryDenyWriteExecute (V8 needs W+X memory for its JIT)', () => {
    expect(Object.fromEntries([...service()].filter(([k]) => ['NoNewPrivileges', 'ProtectSystem', 'ProtectHome', 'PrivateTmp', 'CapabilityBoundingSet', 'RestrictAddressFamilies'].includes(k)).map(([k, v]) => [k, v.at(-1)]))).toEqual({
      NoNewPrivileges: 'yes',
      ProtectSystem: 'strict',
      ProtectHome: 'yes',
      PrivateTmp: 'yes',
      CapabilityBoundingSet: '',
      RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX',
    });
    expect(service().get('SystemCallFilter')![0]).toBe('@system-service');
    expect(service().has('MemoryDenyWriteExecute')).toBe(false);
    expect(readFileSync(UNIT, 'utf8')).toMatch(/#\s+- MemoryDenyWriteExecute=yes: V8's JIT/);
  });

  it.skipIf(!hasAnalyze)('systemd-analyze verify finds nothing', () => {
    const r = spawnSync('systemd-analyze', ['verify', unitCopy()], { encoding: 'utf8' });
    expect(r.stderr + r.stdout).toBe('');
    expect(r.status).toBe(0);
  });

  it.skipIf(!hasAnalyze)('systemd-analyze security rates it as the README says', () => {
    const r = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', unitCopy()], { encoding: 'utf8' });
    const score = /Overall exposure level for pg-reaper\.service: (\d+\.\d) (\w+)/.exec(r.stdout);
    expect(score, r.stdout + r.stderr).not.toBeNull();
    expect(Number(score![1])).toBeLessThanOrEqual(2);
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8').replace(/\s+/g, ' ');
    expect(readme).toContain(`\`systemd-analyze security\` rates it ${score![1]} (${score![2]})`);
  });
});

/** Every system call a filter list of the unit allows: `systemd-analyze syscall-filter`'s groups, expanded. */
function allowedSyscalls(filters: string[]): Set<string> {
  const groups = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of execFileSync('systemd-analyze', ['syscall-filter', '--no-pager'], { encoding: 'utf8' }).split('\n')) {
    if (/^@\S+$/.test(line)) groups.set(line, (current = []));
    else if (/^\s+[@a-z_0-9-]+$/.test(line)) current?.push(line.trim());
  }
  const expand = (names: string[]): Set<string> => {
    const out = new Set<string>();
    const walk = (n: string) => (n.startsWith('@') ? groups.get(n)?.forEach(walk) : out.add(n));
    names.forEach(walk);
    return out;
  };
  // an allow list first, then deny lists (~...), as systemd applies them in order
  let allowed = new Set<string>();
  for (const f of filters) {
    if (f.startsWith('~')) for (const n of expand(f.slice(1).split(/\s+/))) allowed.delete(n);
    else allowed = new Set([...allowed, ...expand(f.split(/\s+/))]);
  }
  return allowed;
}

describe('the unit\'s SystemCallFilter and RestrictAddressFamilies, against the daemon at work', () => {
  const s = new Sessions();
  beforeAll(() => s.start());
  afterAll(() => s.end());

  it.skipIf(!hasAnalyze || !hasStrace)('every system call and socket family the daemon uses (start, reap, /metrics, SIGHUP, a watched change, SIGTERM) is allowed', { timeout: 60_000 }, async () => {
    const reaper = await ensureReaperRole(s.admin);
    const app = await ensureRole(s.admin, 'app_t');
    const tag = unique('t-systemd');
    // the config in a directory of its own: the watch must not see strace's log being written
    mkdirSync(join(dir, 'etc'));
    const config = join(dir, 'etc', 'config.yaml');
    const yaml = (maxIdle: string) => `schedule: "* * * * * *"\nhttp: { host: 127.0.0.1, port: 0 }\nlogFormat: json\ntargets: [{ name: main, connectionString: "${urlFor({ user: reaper })}" }]\npolicies: [{ name: idle, maxIdle: ${maxIdle}, match: { applications: ["${tag}-*"] } }]\n`;
    writeFileSync(config, yaml('300ms'));
    const victim = await s.session({ user: app, application: `${tag}-1` });
    const log = join(dir, 'strace.log');
    const exec = value('ExecStart')!.split(' ');
    const env = { ...process.env, NODE_ENV: 'production', PG_REAPER_CONFIG: config, NODE_COMPILE_CACHE: join(dir, 'cache') };
    const strace = spawn('strace', ['-f', '-qq', '-o', log, process.execPath, exec[1]!, CLI, 'run'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    strace.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    strace.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const waitFor = async (what: () => Promise<boolean> | boolean, label: string) => {
      const deadline = Date.now() + 30_000;
      while (!(await what())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}:\n${out}`);
        await sleep(50);
      }
    };
    const exited = once(strace, 'exit') as Promise<[number | null]>;
    // strace's child is the daemon: signals go to it (a killed strace would leave it running)
    let node = 0;
    try {
      await waitFor(() => out.includes('pg-reaper started'), 'start');
      node = Number(readFileSync(`/proc/${strace.pid}/task/${strace.pid}/children`, 'utf8').trim().split(' ')[0]);
      const port = (JSON.parse(out.split('\n').find((l) => l.includes('pg-reaper started'))!) as { port: number }).port;
      await waitFor(async () => !(await s.isAlive(victim.pid)), 'the victim to be reaped');
      expect(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).toContain('pg_reaper_actions_total');
      process.kill(node, 'SIGHUP');
      await waitFor(() => out.includes('"trigger":"SIGHUP"'), 'the SIGHUP reload');
      writeFileSync(config, yaml('400ms'));
      await waitFor(() => out.includes('"trigger":"file change"'), 'the watched reload');
      process.kill(node, 'SIGTERM');
      const [code] = await exited;
      expect(code, out).toBe(0);
    } finally {
      if (strace.exitCode === null) {
        if (node) process.kill(node, 'SIGKILL');
        strace.kill('SIGKILL');
        await exited;
      }
    }

    const trace = readFileSync(log, 'utf8');
    const used = new Set([...trace.matchAll(/^\d+\s+([a-z0-9_]+)\(/gm)].map((m) => m[1]!));
    expect(used.size).toBeGreaterThan(20);
    const allowed = allowedSyscalls(service().get('SystemCallFilter')!);
    expect([...used].filter((name) => !allowed.has(name)).sort()).toEqual([]);
    const families = new Set([...trace.matchAll(/^\d+\s+socket\((AF_\w+)/gm)].map((m) => m[1]!));
    const permitted = value('RestrictAddressFamilies')!.split(' ');
    expect([...families].filter((f) => !permitted.includes(f))).toEqual([]);
  });
});
