import { pino } from 'pino';
import pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { openTarget, type TargetDb } from '../../src/db/target.js';
import { createLogger } from '../../src/log/logger.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { logRun } from '../../src/run/log-lines.js';
import { recordRun } from '../../src/run/run-metrics.js';
import { runTarget, settingsFor, systemDeps } from '../../src/run/run-target.js';

// The ways to reap the same idle sessions that the benchmarks compare. Each starts with an open
// connection and ends when every victim's backend is confirmed gone.

export const VICTIM_APP = 'bench-victim';
export const THRESHOLD_MS = 200;

export function reapConfig(url: string): Config {
  return validateConfig({
    terminateTimeout: '60s',
    // the same work as the bare SQL: every victim, however many (the default budget stops at 100)
    budget: 'off',
    targets: [{ name: 'bench', connectionString: url }],
    policies: [{ name: 'idle', maxIdle: `${THRESHOLD_MS}ms`, match: { applications: [VICTIM_APP] } }],
  });
}

/** (a) pg-reaper's run as the daemon does it: runTarget, then its log lines and metrics. */
export async function pgReaperRun(config: Config, db: TargetDb): Promise<number> {
  const logger = createLogger('info', pino.destination({ dest: '/dev/null', sync: true }));
  const metrics = createMetrics('bench', { defaultMetrics: false });
  const report = await runTarget(settingsFor(config, 'bench'), systemDeps(db));
  logRun(logger, report, false);
  recordRun(metrics, report);
  if (!report.ok) throw new Error(`run failed: ${report.error}`);
  return report.results.filter((r) => r.outcome === 'terminated').length;
}

export function openReaperDb(config: Config): TargetDb {
  return openTarget(config.targets[0]!, { applicationName: config.applicationName });
}

const BARE_SQL = `SELECT pid FROM (
  SELECT pid, pg_terminate_backend(pid) AS ok FROM pg_stat_activity
   WHERE application_name = $1 AND state = 'idle' AND clock_timestamp() - state_change > $2 * interval '1 millisecond'
) s WHERE ok`;

/** (b) the one-statement SQL of the tutorials, plus the same confirmation loop as pg-reaper's. */
export async function bareSql(client: pg.Client): Promise<number> {
  const pids = (await client.query<{ pid: number }>(BARE_SQL, [VICTIM_APP, THRESHOLD_MS])).rows.map((r) => r.pid);
  let pause = 10;
  let waiting = pids;
  while (waiting.length) {
    waiting = (await client.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE pid = ANY($1)', [waiting])).rows.map((r) => r.pid);
    if (!waiting.length) break;
    await sleep(pause);
    pause = Math.min(pause * 2, 200);
  }
  return pids.length;
}

/** (c) a naive loop: pg_terminate_backend(pid, 5000) per pid (PostgreSQL 14+), which polls each exit 100 ms apart. */
export async function naiveLoop(client: pg.Client): Promise<number> {
  const pids = (
    await client.query<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle' AND clock_timestamp() - state_change > $2 * interval '1 millisecond'",
      [VICTIM_APP, THRESHOLD_MS],
    )
  ).rows.map((r) => r.pid);
  for (const pid of pids) await client.query('SELECT pg_terminate_backend($1, 5000)', [pid]);
  return pids.length;
}

export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}
