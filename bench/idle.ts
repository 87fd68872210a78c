import { pino } from 'pino';
import pg from 'pg';
import { validateConfig } from '../src/config/load.js';
import { openTarget } from '../src/db/target.js';
import { createLogger } from '../src/log/logger.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { logRun, recordRun } from '../src/run/report.js';
import { runTarget, settingsFor, systemDeps } from '../src/run/run-target.js';
import { startHolder } from './lib/holder.js';
import { timed } from './lib/reap-variants.js';
import { log, writeResult } from './lib/results.js';
import { startBenchServer } from './lib/server.js';
import { round, summarize } from './lib/stats.js';

// 2. Idle cost: 5,000 sessions and nothing to kill. A whole pg-reaper run (snapshot, plan, log
// and metrics) against a bare SELECT of the same pg_stat_activity columns, alternating.

const SESSIONS = Number(process.env.BENCH_IDLE_SESSIONS ?? 5000);
const REPS = Number(process.env.BENCH_REPS_IDLE ?? 40);

const BARE_SQL = `SELECT pid, usename, datname, application_name, client_addr, state, backend_start, xact_start, query_start, state_change
  FROM pg_stat_activity WHERE backend_type = 'client backend'`;

export async function benchIdle(): Promise<Record<string, unknown>> {
  const server = await startBenchServer(SESSIONS + 100);
  const holder = await startHolder();
  const config = validateConfig({
    targets: [{ name: 'bench', connectionString: server.reaperUrl }],
    policies: [
      { name: 'idle', maxIdle: '1h' },
      { name: 'tx', maxIdleInTransaction: '10m' },
      { name: 'q', maxQueryDuration: '15m', action: 'cancel' },
    ],
  });
  const db = openTarget(config.targets[0]!, { applicationName: config.applicationName });
  const bare = new pg.Client({ connectionString: server.reaperUrl, application_name: 'bench-bare' });
  const logger = createLogger('info', pino.destination({ dest: '/dev/null', sync: true }));
  const metrics = createMetrics('bench', { defaultMetrics: false });
  const run = async () => {
    const report = await runTarget(settingsFor(config, 'bench'), systemDeps(db));
    logRun(logger, report, false);
    recordRun(metrics, report);
    if (!report.ok || report.results.length) throw new Error('the idle benchmark expects a clean run with nothing to do');
    return report.snapshot!.sessions.length;
  };
  try {
    await bare.connect();
    log(`idle: opening ${SESSIONS} sessions`);
    await holder.open(server.appUrl, SESSIONS, 'bench-idle');
    for (let i = 0; i < 5; i++) {
      await run();
      await bare.query(BARE_SQL);
    }
    const reaper: number[] = [];
    const plain: number[] = [];
    for (let rep = 0; rep < REPS; rep++) {
      const order = rep % 2 === 0 ? [true, false] : [false, true];
      for (const isReaper of order) {
        if (isReaper) reaper.push((await timed(run)).ms);
        else plain.push((await timed(() => bare.query(BARE_SQL))).ms);
      }
    }
    const seen = await run();
    const r = summarize(reaper);
    const b = summarize(plain);
    const result = {
      postgres: server.version,
      sessions: seen,
      reps: REPS,
      ms: { reaper: r, bareSelect: b },
      ratio: round(r.median / b.median, 3),
      goal: 'pg-reaper run <= 1.5 x bare SELECT round trip (medians)',
    };
    log(`idle: ${seen} sessions, reaper ${round(r.median)} ms, bare ${round(b.median)} ms, ratio ${result.ratio}`);
    writeResult('idle', 'npm run bench:idle', result);
    return result;
  } finally {
    await db.close();
    await bare.end();
    await holder.close();
    await server.stop();
  }
}
