import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { createLogger } from '../../src/log/logger.js';
import { ensureReaperRole, Sessions, urlFor } from '../helpers/pg.js';

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
  it('every series an alert reads with increase() exists at 0 from the first scrape', async () => {
    const body = await scrape();
    for (const [policy, reason, action] of [['idle', 'idle', 'terminate'], ['idle', 'idle_in_transaction', 'terminate'], ['slow', 'query_duration', 'cancel']]) {
      for (const outcome of ['failed', 'denied']) {
        expect(body).toContain(`pg_reaper_actions_total{target="main",policy="${policy}",reason="${reason}",action="${action}",outcome="${outcome}"} 0`);
      }
    }
  });

  it.skipIf(!promtool)('promtool check metrics finds nothing to complain about in a whole scrape (skipped without promtool)', async () => {
    await daemon.startupRuns();
    const body = await scrape();
    expect(body).toContain('pg_reaper_target_info{target="main"');
    const r = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it.skipIf(!promtool)('the alert rules are valid and their unit tests pass (skipped without promtool)', () => {
    expect(execFileSync('promtool', ['check', 'rules', 'pg-reaper.rules.yaml'], { cwd: RULES, encoding: 'utf8' })).toMatch(/SUCCESS: \d+ rules found/);
    expect(execFileSync('promtool', ['test', 'rules', 'pg-reaper.rules.test.yaml'], { cwd: RULES, encoding: 'utf8' })).toContain('SUCCESS');
  });
});
