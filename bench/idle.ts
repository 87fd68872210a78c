import { pino } from 'pino';
import pg from 'pg';
import { validateConfig } from '../src/config/load.js';
import { openTarget } from '../src/db/target.js';
import { createLogger } from '../src/log/logger.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { logRun } from '../src/run/log-lines.js';
import { recordRun } from '../src/run/run-metrics.js';
import { runTarget, settingsFor, systemDeps } from '../src/run/run-target.js';
import { startHolder } from './lib/holder.js';
import { settings } from './lib/options.js';
import { timed } from './lib/reap-variants.js';
import { log, writeResult, type PartResult } from './lib/results.js';
import { startBenchServer } from './lib/server.js';
import { pairedRatio, round, summarize } from './lib/stats.js';
import { check } from './lib/verdict.js';

// 2. Idle cost: thousands of client sessions and nothing to kill. Three things, alternating in
// each repetition:
// (a) a whole pg-reaper run: its snapshot statement (the server counts every session and takes
//     the oldest age per state, and sends a row only for sessions past a policy's threshold:
//     none here), the plan, the log line and the metrics;
// (b) a bare statement doing the same work on the server: count and oldest age per state of
//     every client backend, plus the full row of each session past the same thresholds;
// (c) for context, the bare SELECT of every session's columns, which a reaper without the
//     server-side filter would need (pg-reaper before the pre-filter did this): 5,000 rows.
// The goal's ratio is (a)/(b): like for like.

export const SETTINGS = { sessions: 5000, reps: 40 };
const QUICK = { sessions: 300, reps: 5 };

// the policies' thresholds: 1 h idle, 10 min idle in transaction, 15 min query
const SAME_WORK_SQL = `WITH c AS (
  SELECT pid, usename, datname, application_name, client_addr, state, backend_start, xact_start, query_start, state_change
    FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
)
SELECT s.state, s.n, s.oldest, c.*
  FROM (SELECT state, count(*)::int AS n, max(clock_timestamp() - state_change) AS oldest FROM c GROUP BY state) s
  LEFT JOIN c ON c.state IS NOT DISTINCT FROM s.state AND (
       (c.state = 'idle' AND c.state_change < clock_timestamp() - interval '1 hour')
    OR (c.state IN ('idle in transaction', 'idle in transaction (aborted)') AND c.state_change < clock_timestamp() - interval '10 minutes')
    OR (c.state = 'active' AND c.query_start < clock_timestamp() - interval '15 minutes'))`;

const EVERY_ROW_SQL = `SELECT pid, usename, datname, application_name, client_addr, state, backend_start, xact_start, query_start, state_change
  FROM pg_stat_activity WHERE backend_type = 'client backend'`;

export async function benchIdle(): Promise<Record<string, unknown>> {
  const t0 = Date.now();
  const s = settings('idle', SETTINGS, QUICK);
  const server = await startBenchServer(s.sessions + 100);
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
  const runSettings = settingsFor(config, 'bench');
  const run = async () => {
    const report = await runTarget(runSettings, systemDeps(db));
    logRun(logger, report, false);
    recordRun(metrics, report);
    if (!report.ok || report.results.length) throw new Error('the idle benchmark expects a clean run with nothing to do');
    return { counted: report.snapshot!.clients, rows: report.snapshot!.sessions.length };
  };
  const sameWork = async () => {
    const rows = (await bare.query<{ n: number; pid: number | null }>(SAME_WORK_SQL)).rows;
    return { counted: rows.reduce((sum, r) => sum + r.n, 0), rows: rows.filter((r) => r.pid !== null).length };
  };
  const everyRow = async () => {
    const rows = (await bare.query(EVERY_ROW_SQL)).rows.length;
    return { counted: rows, rows };
  };
  try {
    await bare.connect();
    log(`idle: opening ${s.sessions} sessions`);
    await holder.open(server.appUrl, s.sessions, 'bench-idle');
    for (let i = 0; i < 5; i++) {
      await run();
      await sameWork();
      await everyRow();
    }
    const variants = { reaper: run, sameWork, everyRow } as const;
    type V = keyof typeof variants;
    const names = Object.keys(variants) as V[];
    const ms: Record<V, number[]> = { reaper: [], sameWork: [], everyRow: [] };
    const cpuMs: Record<V, number[]> = { reaper: [], sameWork: [], everyRow: [] };
    const seen: Record<V, { counted: number; rows: number }> = { reaper: { counted: 0, rows: 0 }, sameWork: { counted: 0, rows: 0 }, everyRow: { counted: 0, rows: 0 } };
    for (let rep = 0; rep < s.reps; rep++) {
      // rotate the order, so no variant always runs first
      const order = names.map((_, i) => names[(i + rep) % names.length]!);
      for (const v of order) {
        const cpu0 = process.cpuUsage();
        const { ms: t, value } = await timed(variants[v]);
        const cpu = process.cpuUsage(cpu0);
        ms[v].push(t);
        cpuMs[v].push((cpu.user + cpu.system) / 1000);
        seen[v] = value;
      }
    }
    const ratio = pairedRatio(ms.reaper, ms.sameWork);
    const ratioEveryRow = pairedRatio(ms.reaper, ms.everyRow);
    const result: PartResult = {
      describes:
        `${seen.reaper.counted} client sessions counted by the server, nothing to kill, ${s.reps} repetitions in rotating order. ` +
        `(a) a whole pg-reaper run: its snapshot statement (the server counts every session and takes the oldest age per state, and sends a row only for sessions past a policy's threshold: ${seen.reaper.rows} rows here), the plan of 3 policies, the log line and the metrics. ` +
        `(b) a bare statement doing the same work on the server: count and oldest age per state of every client backend, and the full row of each session past the same thresholds (${seen.sameWork.rows} rows). ` +
        `(c) for context only, the bare SELECT of every client session's columns (${seen.everyRow.rows} rows), what a reaper without the server-side filter receives. ` +
        `Client CPU is this process's user+system time around each variant (process.cpuUsage, µs resolution).`,
      settings: s,
      postgres: server.version,
      sessionsCountedByServer: seen.reaper.counted,
      rowsReceived: { reaper: seen.reaper.rows, sameWork: seen.sameWork.rows, everyRow: seen.everyRow.rows },
      ms: { reaper: summarize(ms.reaper), sameWork: summarize(ms.sameWork), everyRow: summarize(ms.everyRow) },
      clientCpuMs: { reaper: summarize(cpuMs.reaper), sameWork: summarize(cpuMs.sameWork), everyRow: summarize(cpuMs.everyRow) },
      ratio,
      ratioEveryRow,
      checks: [check(`(a) pg-reaper run ÷ (b) bare statement doing the same work, ${seen.reaper.counted} sessions (median of paired ratios)`, ratio.median, '<=', 1.5, '×', 'issue 3')],
    };
    log(`idle: server counted ${seen.reaper.counted} sessions; reaper ${round(summarize(ms.reaper).median)} ms, same work ${round(summarize(ms.sameWork).median)} ms, every row ${round(summarize(ms.everyRow).median)} ms; paired ratio a/b ${round(ratio.median, 3)}, a/c ${round(ratioEveryRow.median, 3)}`);
    writeResult('idle', t0, result);
    return result;
  } finally {
    await db.close();
    await bare.end();
    await holder.close();
    await server.stop();
  }
}
