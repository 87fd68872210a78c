import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { createLogger } from '../../src/log/logger.js';
import type { RunReport } from '../../src/run/run-target.js';
import { captureLog } from '../helpers/log-capture.js';
import { ensureReaperRole, ensureRole, reap, Sessions, testConfig, unique, urlFor, type TestSession } from '../helpers/pg.js';

// A bound on what any config can do, on a real server and through the daemon: a budget of 5
// actions per window against 12 victims. The window is a few seconds here; the unit tests cover
// a 1-minute window with a fixed clock.

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

async function victims(tag: string, n: number): Promise<TestSession[]> {
  const out: TestSession[] = [];
  for (let i = 0; i < n; i++) out.push(await s.session({ user: app, application: `${tag}-v` }));
  for (const v of out) await s.agedOver(v.pid, 300);
  return out;
}

/** Waits (polling the server's clock, with a deadline) until `ms` have passed since `fromMs` on it. */
async function serverClockPast(fromMs: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms + 10_000;
  for (;;) {
    const now = (await s.admin.query<{ ms: number }>('SELECT extract(epoch FROM clock_timestamp())::float8 * 1000 AS ms')).rows[0]!.ms;
    if (now >= fromMs + ms) return;
    if (Date.now() > deadline) throw new Error('the server clock did not move on');
    await sleep(Math.min(200, fromMs + ms - now + 5));
  }
}

const count = (r: RunReport, outcome: string) => r.results.filter((x) => x.outcome === outcome).length;

describe('budget', () => {
  it('12 idle victims under { maxActions: 5, window: 4s }: exactly 5 terminated, 7 alive with skipped_budget, the metric 1, one warning; after the window, the next 5', async () => {
    const tag = unique('t-budget');
    const vs = await victims(tag, 12);
    const log = captureLog();
    const reports: RunReport[] = [];
    const WINDOW = 4000;
    daemon = await startDaemon(
      validateConfig({
        schedule: '0 0 1 1 *',
        http: { host: '127.0.0.1', port: 0 },
        budget: { maxActions: 5, window: '4s' },
        targets: [{ name: 'main', connectionString: urlFor({ user: reaper }) }],
        policies: [{ name: 'idle', maxIdle: '300ms', match: { applications: [`${tag}-*`] } }],
      }),
      { logger: createLogger('info', log.stream), version: 'test' },
    );
    daemon.events.on('run', (r) => reports.push(r));
    const scrape = async () => (await fetch(`http://127.0.0.1:${daemon!.http.port}/metrics`)).text();
    const exhausted = async () => /pg_reaper_budget_exhausted\{target="main",policy=""\} (\d+)/.exec(await scrape())?.[1];
    const warnings = (msg: string) => log.lines.filter((l) => l.level === 'warn' && String(l.msg).startsWith(msg));
    const alive = async () => (await s.alive(vs.map((v) => v.pid))).size;
    // what a run read, the budgets' state included, comes only from a replica that leads the
    // target: nothing before the first run
    expect(await exhausted()).toBeUndefined();

    await daemon.startupRuns();
    expect(reports[0]!.snapshot).toBeDefined();
    const first = reports[0]!;
    expect([count(first, 'terminated'), count(first, 'skipped_budget')]).toEqual([5, 7]);
    // oldest offenders first: the five that went are the five oldest
    const byAge = [...first.results].sort((a, b) => b.decision.seconds - a.decision.seconds);
    expect(byAge.slice(0, 5).map((r) => r.outcome)).toEqual(Array(5).fill('terminated'));
    expect(await alive()).toBe(7);
    expect(await exhausted()).toBe('1');
    expect(warnings('budget exhausted')).toHaveLength(1);
    expect(warnings('budget exhausted')[0]).toMatchObject({ target: 'main', budget: 'target', maxActions: 5, windowSeconds: 4, used: 5, skipped: 7 });
    expect(log.lines.filter((l) => l.outcome === 'skipped_budget')).toHaveLength(7);

    // at once again: nothing more, no second warning
    await daemon.runNow('main');
    expect([count(reports[1]!, 'terminated'), count(reports[1]!, 'skipped_budget')]).toEqual([0, 7]);
    expect(await alive()).toBe(7);
    expect(warnings('budget exhausted')).toHaveLength(1);
    expect(await scrape()).toMatch(/pg_reaper_actions_total\{target="main",policy="idle",reason="idle",action="terminate",outcome="skipped_budget"\} 14/);

    // after the window (on the server's clock): the next 5; still refusing the last 2
    await serverClockPast(first.snapshot!.nowMs, WINDOW);
    await daemon.runNow('main');
    expect([count(reports[2]!, 'terminated'), count(reports[2]!, 'skipped_budget')]).toEqual([5, 2]);
    expect(await alive()).toBe(2);
    expect(await exhausted()).toBe('1');

    // another window: the last 2 go, room is left, one line says so and the metric is 0
    await serverClockPast(reports[2]!.snapshot!.nowMs, WINDOW);
    await daemon.runNow('main');
    expect(count(reports[3]!, 'terminated')).toBe(2);
    expect(await alive()).toBe(0);
    expect(await exhausted()).toBe('0');
    expect(warnings('budget has room again')).toHaveLength(1);
    expect(warnings('budget exhausted')).toHaveLength(1);
  }, 60_000);

  it('a policy budget is reported with its policy label; budget: off on the target leaves only it', async () => {
    const tag = unique('t-pbudget');
    const vs = await victims(tag, 4);
    const log = captureLog();
    daemon = await startDaemon(
      validateConfig({
        schedule: '0 0 1 1 *',
        http: { host: '127.0.0.1', port: 0 },
        budget: 'off',
        targets: [{ name: 'main', connectionString: urlFor({ user: reaper }) }],
        policies: [{ name: 'idle', maxIdle: '300ms', match: { applications: [`${tag}-*`] }, budget: { maxActions: 3, window: '1m' } }],
      }),
      { logger: createLogger('info', log.stream), version: 'test' },
    );
    await daemon.startupRuns();
    const body = await (await fetch(`http://127.0.0.1:${daemon.http.port}/metrics`)).text();
    expect(body).toContain('pg_reaper_budget_exhausted{target="main",policy="idle"} 1');
    expect(body).not.toContain('pg_reaper_budget_exhausted{target="main",policy=""}');
    expect((await s.alive(vs.map((v) => v.pid))).size).toBe(1);
    expect(log.lines.find((l) => l.level === 'warn' && String(l.msg).startsWith('budget exhausted'))).toMatchObject({ policy: 'idle', budget: 'policy', maxActions: 3, skipped: 1 });
  }, 60_000);

  it('dry-run decisions use no budget', async () => {
    const tag = unique('t-dbudget');
    await victims(tag, 7);
    const report = await reap(testConfig({ dryRun: true, budget: { maxActions: 5, window: '1m' }, policies: [{ name: 'idle', maxIdle: '300ms', match: { applications: [`${tag}-*`] } }] }, reaper));
    expect([count(report, 'would_terminate'), count(report, 'skipped_budget')]).toEqual([7, 0]);
  });
});
