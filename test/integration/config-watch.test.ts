import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KubeletVolume } from '../helpers/kubelet-volume.js';
import { ensureReaperRole, ensureRole, Sessions, unique, urlFor } from '../helpers/pg.js';

// A config change that reaches a pod: the daemon (the shipped bundle, as a child process) reads
// its config through a ConfigMap-style volume, and the test updates the volume the way the
// kubelet does (new timestamped directory, ..data_tmp renamed over ..data). No SIGHUP is sent.

const CLI = join(import.meta.dirname, '../../dist/pg-reaper/cli.js');
const s = new Sessions();
let reaper: string;
let app: string;
let dir: string;
let daemon: ChildProcess | undefined;

beforeAll(async () => {
  await s.start();
  reaper = await ensureReaperRole(s.admin);
  app = await ensureRole(s.admin, 'app_t');
});
afterEach(async () => {
  if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
    daemon.kill('SIGKILL');
    await once(daemon, 'exit');
  }
  daemon = undefined;
  await s.closeAll();
  rmSync(dir, { recursive: true, force: true });
});
afterAll(() => s.end());

/** A config on a 1 s schedule with one policy that reaps idle sessions of applications TAG-*. */
const configYaml = (policy: string, tag: string, extra = '') => `schedule: "* * * * * *"
http: { host: 127.0.0.1, port: 0 }
logFormat: json
${extra}targets:
  - name: main
    connectionString: \${REAPER_URL}
policies:
  - name: ${policy}
    maxIdle: 300ms
    match: { applications: ["${tag}-*"] }
`;

type Line = Record<string, unknown>;

function startDaemon(file: string) {
  daemon = spawn(process.execPath, [CLI, 'run', '-c', file], { env: { ...process.env, REAPER_URL: urlFor({ user: reaper }) }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  daemon.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  daemon.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const lines = () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);
  const waitFor = async (what: () => Promise<boolean> | boolean, label: string) => {
    const deadline = Date.now() + 20_000;
    while (!(await what())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${label}; stdout:\n${out}\nstderr:\n${err}`);
      await sleep(50);
    }
  };
  const metric = async (name: string) => {
    const port = (lines().find((l) => String(l.msg).startsWith('pg-reaper started')) as { port: number }).port;
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
  };
  const runsFinished = () => lines().filter((l) => l.msg === 'run finished').length;
  return { lines, waitFor, metric, runsFinished, child: daemon };
}

describe('pg-reaper run: the config file watch (watchConfig, on by default)', () => {
  it('applies a ConfigMap update made by a ..data symlink swap, and rejects a broken one with the old config kept', async () => {
    const before = unique('t-watch-old');
    const tag = unique('t-watch');
    dir = mkdtempSync(join(tmpdir(), 'pg-reaper-watch-'));
    const volume = new KubeletVolume(dir);
    volume.update({ 'config.yaml': configYaml('idle-before', before) });
    const d = startDaemon(join(dir, 'config.yaml'));
    await d.waitFor(() => d.lines().some((l) => String(l.msg).startsWith('pg-reaper started')), 'start');
    expect(d.lines().find((l) => String(l.msg).startsWith('pg-reaper started'))).toMatchObject({ configFile: join(dir, 'config.yaml'), watchConfig: true });

    // the first config does not cover the victim: it survives runs well past the threshold
    const victim = await s.session({ user: app, application: `${tag}-1` });
    await s.agedOver(victim.pid, 300);
    const seen = d.runsFinished();
    await d.waitFor(() => d.runsFinished() >= seen + 2, 'two runs with the first config');
    expect(await s.isAlive(victim.pid)).toBe(true);

    // the kubelet's update: the new policy reaps it, with no signal sent
    volume.update({ 'config.yaml': configYaml('idle-after', tag) });
    await d.waitFor(async () => !(await s.isAlive(victim.pid)), 'the new policy to reap the victim');
    await d.waitFor(() => d.lines().some((l) => l.msg === 'config reloaded'), 'the reload log line');
    await d.waitFor(() => d.lines().some((l) => l.pid === victim.pid && l.outcome === 'terminated'), 'the action log line');
    expect(d.lines().find((l) => l.pid === victim.pid && l.outcome === 'terminated')).toMatchObject({ policy: 'idle-after', reason: 'idle' });
    expect(d.lines().find((l) => l.msg === 'config reloaded')).toMatchObject({ trigger: 'file change', policies: ['idle-after'] });
    expect(await d.metric('pg_reaper_config_last_reload_successful')).toBe(1);

    // a broken update is rejected as a whole, says where, and the running config stays
    volume.update({ 'config.yaml': configYaml('idle-after', tag).replace('maxIdle: 300ms', 'maxIdle: ten') });
    await d.waitFor(() => d.lines().some((l) => String(l.msg).startsWith('config reload failed')), 'the rejected update');
    const failed = d.lines().find((l) => String(l.msg).startsWith('config reload failed')) as { trigger: string; problems: string[] };
    expect(failed.trigger).toBe('file change');
    expect(failed.problems).toEqual([expect.stringMatching(new RegExp(`^${join(dir, 'config.yaml')}:\\d+:\\d+ policies\\[0\\]\\.maxIdle: expected a duration like`))]);
    expect(await d.metric('pg_reaper_config_last_reload_successful')).toBe(0);
    const second = await s.session({ user: app, application: `${tag}-2` });
    await d.waitFor(async () => !(await s.isAlive(second.pid)), 'the kept config to reap another victim');
    await d.waitFor(() => d.lines().some((l) => l.pid === second.pid && l.outcome === 'terminated'), 'the action log line');
    expect(d.lines().find((l) => l.pid === second.pid && l.outcome === 'terminated')).toMatchObject({ policy: 'idle-after' });

    // one reload per update: the swap's burst of events is debounced
    expect(d.lines().filter((l) => l.msg === 'config file changed: reloading')).toHaveLength(2);
    expect(d.lines().filter((l) => l.msg === 'config reloaded')).toHaveLength(1);
    d.child.kill('SIGTERM');
    const [code] = (await once(d.child, 'exit')) as [number];
    expect(code).toBe(0);
  });

  it('watchConfig: false: an update waits for SIGHUP', async () => {
    const tag = unique('t-nowatch');
    dir = mkdtempSync(join(tmpdir(), 'pg-reaper-watch-'));
    const volume = new KubeletVolume(dir);
    volume.update({ 'config.yaml': configYaml('idle-before', unique('t-nowatch-old'), 'watchConfig: false\n') });
    const d = startDaemon(join(dir, 'config.yaml'));
    await d.waitFor(() => d.lines().some((l) => String(l.msg).startsWith('pg-reaper started')), 'start');
    expect(d.lines().find((l) => String(l.msg).startsWith('pg-reaper started'))).toMatchObject({ watchConfig: false });
    const victim = await s.session({ user: app, application: `${tag}-1` });
    await s.agedOver(victim.pid, 300);

    volume.update({ 'config.yaml': configYaml('idle-after', tag, 'watchConfig: false\n') });
    const seen = d.runsFinished();
    await d.waitFor(() => d.runsFinished() >= seen + 3, 'three runs after the update');
    expect(await s.isAlive(victim.pid)).toBe(true);
    expect(d.lines().some((l) => l.msg === 'config reloaded')).toBe(false);

    d.child.kill('SIGHUP');
    await d.waitFor(async () => !(await s.isAlive(victim.pid)), 'SIGHUP to apply the update');
    await d.waitFor(() => d.lines().some((l) => l.msg === 'config reloaded'), 'the reload log line');
    expect(d.lines().find((l) => l.msg === 'config reloaded')).toMatchObject({ trigger: 'SIGHUP', policies: ['idle-after'] });
    d.child.kill('SIGTERM');
    const [code] = (await once(d.child, 'exit')) as [number];
    expect(code).toBe(0);
  });
});
