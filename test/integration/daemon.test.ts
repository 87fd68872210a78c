import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { openTarget } from '../../src/db/target.js';
import { createLogger } from '../../src/log/logger.js';
import type { RunReport } from '../../src/run/run-target.js';
import { startBlackhole } from '../helpers/blackhole.js';
import { captureLog } from '../helpers/log-capture.js';
import { startProxy } from '../helpers/proxy.js';
import { ensureReaperRole, ensureRole, PASSWORD, Sessions, unique, urlFor } from '../helpers/pg.js';

// The daemon as operators run it: scheduled runs, metrics and probes over HTTP, one dead server
// next to a live one, overlapping triggers, and a stop that waits.

const s = new Sessions();
let reaper: string;
let app: string;
let daemon: Daemon | undefined;

beforeAll(async () => {
  await s.start();
  reaper = await ensureReaperRole(s.admin);
  app = await ensureRole(s.admin, 'app_t');
});
afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
  await s.closeAll();
});
afterAll(() => s.end());

const get = async (port: number, path: string) => {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
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

describe('daemon', () => {
  it('serves metrics, probes and logs for a live and an unreachable target side by side', async () => {
    const tag = unique('t-d');
    const victim = await s.session({ user: app, application: `${tag}-a` });
    await s.agedOver(victim.pid, 400);
    const log = captureLog();
    const config = validateConfig({
      schedule: '0 0 1 1 *',
      http: { host: '127.0.0.1', port: 0 },
      targets: [
        { name: 'main', connectionString: urlFor({ user: reaper }) },
        { name: 'down', host: '127.0.0.1', port: 1, user: 'reaper', password: 'down-secret-pw', database: 'postgres', connectTimeout: '1s' },
      ],
      policies: [{ name: 'idle', maxIdle: '400ms', match: { applications: [`${tag}-*`] } }],
    });
    daemon = await startDaemon(config, { logger: createLogger('info', log.stream), version: '9.9.9' });
    const port = daemon.http.port;
    expect((await get(port, '/livez')).status).toBe(200);
    expect((await get(port, '/healthz')).status).toBe(200);
    expect((await get(port, '/nope')).status).toBe(404);

    // every target runs once at start, not only at its first trigger (next January here)
    await daemon.startupRuns();

    expect(await s.isAlive(victim.pid)).toBe(false);
    expect((await get(port, '/readyz')).status).toBe(200);
    const { status, body } = await get(port, '/metrics');
    expect(status).toBe(200);
    const metric = (line: string) => body.split('\n').find((l) => l.startsWith(line + ' '));
    expect(metric('pg_reaper_build_info{version="9.9.9"}')).toBeDefined();
    expect(metric('pg_reaper_actions_total{target="main",policy="idle",reason="idle",action="terminate",outcome="terminated"}')).toMatch(/ 1$/);
    expect(metric('pg_reaper_matched_sessions{target="main",policy="idle",reason="idle"}')).toMatch(/ 1$/);
    expect(metric('pg_reaper_runs_total{target="main",result="success"}')).toMatch(/ 1$/);
    expect(metric('pg_reaper_runs_total{target="down",result="failure"}')).toMatch(/ 1$/);
    expect(metric('pg_reaper_target_up{target="main"}')).toMatch(/ 1$/);
    expect(metric('pg_reaper_target_up{target="down"}')).toMatch(/ 0$/);
    expect(metric('pg_reaper_run_duration_seconds_count{target="main"}')).toMatch(/ 1$/);
    expect(Number(metric('pg_reaper_last_success_timestamp_seconds{target="main"}')!.split(' ')[1])).toBeGreaterThan(Date.now() / 1000 - 60);
    expect(metric('pg_reaper_last_success_timestamp_seconds{target="down"}')).toBeUndefined();
    expect(Number(metric('pg_reaper_sessions{target="main",state="idle"}')!.split(' ')[1])).toBeGreaterThanOrEqual(1);
    expect(metric('pg_reaper_max_state_age_seconds{target="main",state="idle"}')).toBeDefined();
    expect(body).toMatch(/^process_resident_memory_bytes /m);
    expect(body).not.toMatch(/[{,](pid|user|query)="/);

    const action = log.lines.find((l) => l.outcome === 'terminated')!;
    expect(action).toMatchObject({ target: 'main', policy: 'idle', reason: 'idle', action: 'terminate', dryRun: false, pid: victim.pid, user: app, database: 'postgres', application: `${tag}-a`, clientAddr: '127.0.0.1', state: 'idle', thresholdSeconds: 0.4 });
    expect(action.seconds as number).toBeGreaterThan(0.4);
    expect(action).not.toHaveProperty('stateSeconds');
    expect(action).not.toHaveProperty('query');
    // a target that is down is logged once, with the reason, not once per run
    await daemon.runNow('down');
    await daemon.runNow('down');
    const downLines = log.lines.filter((l) => l.target === 'down' && (l.level === 'error' || l.level === 'warn'));
    expect(downLines).toHaveLength(1);
    expect(downLines[0]).toMatchObject({ level: 'error', msg: 'target is down: cannot read pg_stat_activity; every run keeps trying, and its recovery is logged' });
    expect(downLines[0]!.error).toMatch(/ECONNREFUSED/);
    expect(metric('pg_reaper_runs_total{target="down",result="failure"}')).toMatch(/ 1$/); // read before the two extra runs
    expect(/pg_reaper_runs_total\{target="down",result="failure"\} 3/.test((await get(port, '/metrics')).body)).toBe(true);
    expect(log.lines.find((l) => l.msg === 'run finished' && l.target === 'main')).toMatchObject({ result: 'success', actions: { terminated: 1 } });
    expect(log.text()).not.toContain(PASSWORD);
    expect(log.text()).not.toContain('down-secret-pw');
  });

  it('logs a target going down once with the reason, and coming back with how long it was down', async () => {
    const proxy = await startProxy(Number(new URL(urlFor({})).port));
    try {
      const log = captureLog();
      const url = new URL(urlFor({ user: reaper }));
      url.port = String(proxy.port);
      daemon = await startDaemon(
        validateConfig({ schedule: '0 0 1 1 *', http: { host: '127.0.0.1', port: 0 }, targets: [{ name: 'flaky', connectionString: url.toString(), connectTimeout: '1s' }], policies: [{ name: 'idle', maxIdle: '1h' }] }),
        { logger: createLogger('info', log.stream), version: 'test' },
      );
      await daemon.startupRuns();
      expect(log.lines.find((l) => l.msg?.toString().startsWith('connected to PostgreSQL'))).toMatchObject({ target: 'flaky', role: reaper, superuser: false, readAllStats: true, signalBackend: true });
      await proxy.down();
      for (let i = 0; i < 3; i++) await daemon.runNow('flaky');
      await proxy.up();
      await daemon.runNow('flaky');
      const lines = log.lines.filter((l) => l.target === 'flaky' && l.level !== 'info' ? true : /target is|connected to/.test(String(l.msg)));
      expect(lines.map((l) => [l.level, l.msg])).toEqual([
        ['info', 'connected to PostgreSQL ' + String(lines[0]!.serverVersion) + ' as ' + reaper],
        ['error', 'target is down: cannot read pg_stat_activity; every run keeps trying, and its recovery is logged'],
        ['info', 'target is back up'],
      ]);
      expect(lines[2]!.downSeconds).toBeGreaterThanOrEqual(0);
      const body = (await get(daemon.http.port, '/metrics')).body;
      expect(body).toMatch(/pg_reaper_runs_total\{target="flaky",result="failure"\} 3/);
      expect(body).toMatch(new RegExp(`pg_reaper_target_info\\{target="flaky",server_version="[0-9.]+",superuser="false",read_all_stats="true",signal_backend="true"\\} 1`));
    } finally {
      await daemon?.stop();
      daemon = undefined;
      await proxy.close();
    }
  });

  it('runs on its cron schedule and counts a trigger that finds the previous run still going as an overlap', async () => {
    const hole = await startBlackhole();
    try {
      const tag = unique('t-sched');
      const victim = await s.session({ user: app, application: `${tag}-a` });
      await s.agedOver(victim.pid, 300);
      const config = validateConfig({
        schedule: '* * * * * *',
        http: { host: '127.0.0.1', port: 0 },
        targets: [
          { name: 'main', connectionString: urlFor({ user: reaper }) },
          { name: 'hung', host: '127.0.0.1', port: hole.port, user: 'x', database: 'x', connectTimeout: '2500ms' },
        ],
        policies: [{ name: 'idle', maxIdle: '300ms', match: { applications: [`${tag}-*`] } }],
      });
      const log = captureLog();
      daemon = await startDaemon(config, { logger: createLogger('info', log.stream), version: 'test' });
      const scheduled = await nextRun(daemon, 'main');
      expect(scheduled.results.map((r) => [r.decision.session.pid, r.outcome])).toEqual([[victim.pid, 'terminated']]);

      const hung = await nextRun(daemon, 'hung');
      expect(hung.ok).toBe(false);
      expect(hung.durationSeconds).toBeGreaterThan(2);
      const body = (await get(daemon.http.port, '/metrics')).body;
      const overlaps = Number(/pg_reaper_runs_total\{target="hung",result="overlap"\} (\d+)/.exec(body)![1]);
      expect(overlaps).toBeGreaterThanOrEqual(1);
      expect(Number(/pg_reaper_runs_total\{target="main",result="success"\} (\d+)/.exec(body)![1])).toBeGreaterThanOrEqual(2);
      expect(log.lines.some((l) => l.msg === 'previous run still in progress: trigger skipped' && l.target === 'hung')).toBe(true);
    } finally {
      await daemon?.stop();
      daemon = undefined;
      await hole.close();
    }
  });

  it('a denied session is logged at warn and counted once while it lives, even when it is busy for a while in between; a new one is counted again', async () => {
    const tag = unique('t-denied');
    const log = captureLog();
    // superuser sessions: a non-superuser reaper may not signal them
    const su1 = await s.session({ application: `${tag}-su1` });
    const su2 = await s.session({ application: `${tag}-su2` });
    await s.agedOver(su1.pid, 1000);
    await s.agedOver(su2.pid, 1000);
    daemon = await startDaemon(
      validateConfig({ schedule: '0 0 1 1 *', http: { host: '127.0.0.1', port: 0 }, targets: [{ name: 'main', connectionString: urlFor({ user: reaper }) }], policies: [{ name: 'idle', maxIdle: '1s', match: { applications: [`${tag}-*`] } }] }),
      { logger: createLogger('info', log.stream), version: 'test' },
    );
    await daemon.startupRuns();
    for (let i = 0; i < 3; i++) await daemon.runNow('main');
    // su2 runs a statement: at the next run it is no candidate (idle under 1s), and still lives
    await su2.client.query('SELECT 1');
    await daemon.runNow('main');
    await s.agedOver(su2.pid, 1000);
    await daemon.runNow('main');
    const denied = () => log.lines.filter((l) => l.outcome === 'denied' && l.level === 'warn').map((l) => l.pid);
    const counted = async () => Number(/^pg_reaper_actions_total\{target="main",policy="idle",reason="idle",action="terminate",outcome="denied"\} (\d+)$/m.exec((await get(daemon!.http.port, '/metrics')).body)?.[1]);
    expect(denied().sort()).toEqual([su1.pid, su2.pid].sort());
    expect(await counted()).toBe(2);
    // the run lines count only what is new
    expect(log.lines.filter((l) => l.msg === 'run finished').map((l) => (l.actions as Record<string, number>).denied ?? 0)).toEqual([2, 0, 0, 0, 0, 0]);

    // su1 ends; a new superuser session that breaks the policy is reported
    await su1.client.end();
    const su3 = await s.session({ application: `${tag}-su3` });
    await s.agedOver(su3.pid, 1000);
    await daemon.runNow('main');
    await daemon.runNow('main');
    expect(denied().sort()).toEqual([su1.pid, su2.pid, su3.pid].sort());
    expect(await counted()).toBe(3);
    expect(await s.alive([su2.pid, su3.pid])).toEqual(new Set([su2.pid, su3.pid]));
  });

  it('a reload swaps targets and policies and drops the series of a removed target and of removed policies', async () => {
    const tag = unique('t-reload');
    const base = {
      schedule: '0 0 1 1 *',
      http: { host: '127.0.0.1', port: 0 },
      policies: [{ name: 'idle', maxIdle: '300ms', match: { applications: [`${tag}-*`] } }],
    };
    const main = { name: 'main', connectionString: urlFor({ user: reaper }) };
    daemon = await startDaemon(validateConfig({ ...base, targets: [main, { name: 'old', host: '127.0.0.1', port: 1, connectTimeout: '1s' }] }), { logger: createLogger('silent'), version: 'test' });
    await daemon.startupRuns();
    const first = (await get(daemon.http.port, '/metrics')).body;
    expect(first).toContain('pg_reaper_target_up{target="old"} 0');
    expect(first).toContain('pg_reaper_actions_total{target="main",policy="idle",reason="idle",action="terminate",outcome="terminated"} 0');
    expect(first).toContain('pg_reaper_matched_sessions{target="main",policy="idle",reason="idle"} 0');

    await daemon.reload(validateConfig({ ...base, targets: [main], policies: [{ name: 'idle-v2', maxIdle: '300ms', match: { applications: [`${tag}-*`] } }] }));
    await daemon.startupRuns();
    const victim = await s.session({ user: app, application: `${tag}-a` });
    await s.agedOver(victim.pid, 300);
    const report = nextRun(daemon, 'main');
    await daemon.runNow('main');

    expect((await report).results.map((r) => [r.decision.policy, r.outcome])).toEqual([['idle-v2', 'terminated']]);
    const body = (await get(daemon.http.port, '/metrics')).body;
    expect(body).not.toContain('target="old"');
    // the removed policy's series are gone; the new one's exist from the reload (terminated is 1 now)
    expect(body).not.toContain('policy="idle"');
    expect(body).toContain('pg_reaper_actions_total{target="main",policy="idle-v2",reason="idle",action="terminate",outcome="terminated"} 1');
    expect(body).toContain('pg_reaper_actions_total{target="main",policy="idle-v2",reason="idle",action="terminate",outcome="failed"} 0');
    expect(body).toContain('pg_reaper_config_last_reload_successful 1');
    expect(daemon.ready()).toBe(true);
  });

  it('a reload whose new config cannot be built leaves the old one running untouched, and says which target failed', async () => {
    const tag = unique('t-badreload');
    const log = captureLog();
    const main = { name: 'main', connectionString: urlFor({ user: reaper }) };
    const base = { schedule: '0 0 1 1 *', http: { host: '127.0.0.1', port: 0 }, policies: [{ name: 'idle', maxIdle: '300ms', match: { applications: [`${tag}-*`] } }] };
    daemon = await startDaemon(validateConfig({ ...base, targets: [main] }), {
      logger: createLogger('info', log.stream),
      version: 'test',
      openTarget: (t, opts) => {
        if (t.name === 'broken') throw new Error('cannot open this one');
        return openTarget(t, opts);
      },
    });
    await daemon.startupRuns();

    await daemon.reload(validateConfig({ ...base, targets: [main, { name: 'broken', host: '127.0.0.1', port: 5 }] }));

    expect(log.lines.find((l) => l.msg === 'config reload failed: the previous config keeps running')).toMatchObject({ level: 'error', error: 'target broken: cannot open this one' });
    const body = (await get(daemon.http.port, '/metrics')).body;
    expect(body).toContain('pg_reaper_config_last_reload_successful 0');
    expect(body).not.toContain('target="broken"');
    expect((await get(daemon.http.port, '/livez')).status).toBe(200);
    // the old generation still reaps: its pool was not closed, its scheduler not stopped
    const victim = await s.session({ user: app, application: `${tag}-a` });
    await s.agedOver(victim.pid, 300);
    const report = nextRun(daemon, 'main');
    await daemon.runNow('main');
    expect((await report).results.map((r) => [r.decision.session.pid, r.outcome])).toEqual([[victim.pid, 'terminated']]);
    expect(log.lines.some((l) => l.msg === 'config reloaded')).toBe(false);
  });

  it('/livez stays 200 while a reload waits for a run in flight', async () => {
    const hole = await startBlackhole();
    try {
      const config = validateConfig({
        schedule: '0 0 1 1 *',
        http: { host: '127.0.0.1', port: 0 },
        targets: [{ name: 'hung', host: '127.0.0.1', port: hole.port, user: 'x', database: 'x', connectTimeout: '1500ms' }],
        policies: [{ name: 'idle', maxIdle: '1h' }],
      });
      daemon = await startDaemon(config, { logger: createLogger('silent'), version: 'test' });
      const port = daemon.http.port;
      const run = daemon.runNow('hung');
      let reloaded = false;
      const reload = daemon.reload(config).then(() => (reloaded = true));
      const probes: number[] = [];
      while (!reloaded) {
        probes.push((await get(port, '/livez')).status);
        await sleep(100);
      }
      await Promise.all([run, reload]);
      expect(probes.length).toBeGreaterThan(5);
      expect(new Set(probes)).toEqual(new Set([200]));
      expect((await get(port, '/livez')).status).toBe(200);
    } finally {
      await daemon?.stop();
      daemon = undefined;
      await hole.close();
    }
  });

  it('stop() waits for the run in flight, then closes HTTP', async () => {
    const hole = await startBlackhole();
    try {
      const config = validateConfig({
        schedule: '0 0 1 1 *',
        shutdownTimeout: '10s',
        http: { host: '127.0.0.1', port: 0 },
        targets: [{ name: 'hung', host: '127.0.0.1', port: hole.port, user: 'x', database: 'x', connectTimeout: '1500ms' }],
        policies: [{ name: 'idle', maxIdle: '1h' }],
      });
      const log = captureLog();
      daemon = await startDaemon(config, { logger: createLogger('info', log.stream), version: 'test' });
      const port = daemon.http.port;
      let runEnded = false;
      void daemon.runNow('hung').then(() => (runEnded = true));
      await daemon.stop();
      expect(runEnded).toBe(true);
      await expect(fetch(`http://127.0.0.1:${port}/livez`)).rejects.toThrow();
      daemon = undefined;
    } finally {
      await hole.close();
    }
  });
});
