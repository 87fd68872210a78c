import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { createLogger } from '../../src/log/logger.js';
import { ensureReaperRole, ensureRole, Sessions, unique, urlFor } from '../helpers/pg.js';
import { checkPromql, havePromtool } from '../helpers/promql.js';
import { dashboardExpr } from '../helpers/dashboard.js';

// The metrics and alert rules as Prometheus itself reads them: promtool (Debian's "prometheus"
// package) lints a real scrape and checks and unit-tests the rule file. Without promtool these
// tests are skipped, and say so.

const RULES = join(import.meta.dirname, '../../deploy/prometheus');
const promtool = spawnSync('promtool', ['--version']).status === 0;
const s = new Sessions();
let daemon: Daemon;

beforeAll(async () => {
  await s.start();
  const reaper = await ensureReaperRole(s.admin);
  daemon = await startDaemon(
    validateConfig({
      schedule: '0 0 1 1 *',
      http: { host: '127.0.0.1', port: 0 },
      // audit on, so its series are linted too
      audit: { target: 'main', table: 'reaper_audit_t.promtool' },
      targets: [
        { name: 'main', connectionString: urlFor({ user: reaper }) },
        { name: 'down', host: '127.0.0.1', port: 1, connectTimeout: '1s' },
      ],
      policies: [
        { name: 'idle', maxIdle: '1h', maxIdleInTransaction: '1h' },
        { name: 'slow', maxQueryDuration: '1h', action: 'cancel' },
      ],
    }),
    { logger: createLogger('silent'), version: 'test' },
  );
});
afterAll(async () => {
  await daemon?.stop();
  await s.end();
});

const scrape = async () => (await fetch(`http://127.0.0.1:${daemon.http.port}/metrics`)).text();

describe('Prometheus', () => {
  it('every outcome series a policy can produce exists at 0 from the first scrape, so increase() sees the first kill too', async () => {
    const body = await scrape();
    const series = (policy: string, reason: string, action: string, outcome: string) => `pg_reaper_actions_total{target="main",policy="${policy}",reason="${reason}",action="${action}",outcome="${outcome}"} 0`;
    for (const [policy, reason] of [['idle', 'idle'], ['idle', 'idle_in_transaction']] as const) {
      for (const outcome of ['terminated', 'signalled', 'skipped_changed', 'skipped_cap', 'denied', 'failed']) expect(body).toContain(series(policy, reason, 'terminate', outcome));
      // what a terminate policy outside dry run never produces
      for (const outcome of ['cancelled', 'would_terminate', 'would_cancel']) expect(body).not.toContain(`policy="${policy}",reason="${reason}",action="terminate",outcome="${outcome}"`);
    }
    for (const outcome of ['cancelled', 'skipped_changed', 'skipped_cap', 'denied', 'failed']) expect(body).toContain(series('slow', 'query_duration', 'cancel', outcome));
    expect(body).not.toContain('policy="slow",reason="query_duration",action="terminate"');
    for (const result of ['dropped', 'failed']) expect(body).toContain(`pg_reaper_audit_rows_total{result="${result}"} 0`);
  });

  it.skipIf(!havePromtool)('the dashboard sees the first termination of a policy: increase() over a real scrape before and after it (skipped without promtool)', async () => {
    const tag = unique('t-first');
    const reaper = await ensureReaperRole(s.admin);
    const app = await ensureRole(s.admin, 'app_t');
    const d = await startDaemon(
      validateConfig({
        schedule: '0 0 1 1 *',
        http: { host: '127.0.0.1', port: 0 },
        targets: [{ name: 'main', connectionString: urlFor({ user: reaper }) }],
        policies: [{ name: 'first', maxIdle: '300ms', match: { applications: [`${tag}-*`] } }],
      }),
      { logger: createLogger('silent'), version: 'test' },
    );
    try {
      await d.startupRuns();
      const get = async () => ({ instance: 'a:9188', body: await (await fetch(`http://127.0.0.1:${d.http.port}/metrics`)).text() });
      const before = await get();
      const victim = await s.session({ user: app, application: `${tag}-v` });
      await s.agedOver(victim.pid, 300);
      await d.runNow('main');
      expect(await s.isAlive(victim.pid)).toBe(false);
      const after = await get();
      const panel = dashboardExpr('Actions by policy and outcome');
      const r = checkPromql([[before], [after]], [{ expr: `count by (policy, outcome) ((${panel}) > 0)`, evalMinute: 1, samples: [{ labels: '{policy="first",outcome="terminated"}', value: 1 }] }]);
      expect(r.output).toContain('SUCCESS');
    } finally {
      await d.stop();
    }
  });

  it.skipIf(!promtool)('promtool check metrics finds nothing to complain about in a whole scrape (skipped without promtool)', async () => {
    await daemon.startupRuns();
    const body = await scrape();
    expect(body).toContain('pg_reaper_target_info{target="main"');
    expect(body).toContain('pg_reaper_audit_up ');
    const r = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it.skipIf(!promtool)('the alert rules are valid and their unit tests pass (skipped without promtool)', () => {
    expect(execFileSync('promtool', ['check', 'rules', 'pg-reaper.rules.yaml'], { cwd: RULES, encoding: 'utf8' })).toMatch(/SUCCESS: \d+ rules found/);
    expect(execFileSync('promtool', ['test', 'rules', 'pg-reaper.rules.test.yaml'], { cwd: RULES, encoding: 'utf8' })).toContain('SUCCESS');
  });
});
