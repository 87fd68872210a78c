import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { startDaemonProcess } from './lib/daemon-process.js';
import { startHolder } from './lib/holder.js';
import { settings } from './lib/options.js';
import { log, writeResult, type PartResult } from './lib/results.js';
import { startBenchServer } from './lib/server.js';
import { round, summarize } from './lib/stats.js';
import { check } from './lib/verdict.js';

// 6. Detection latency: `pg-reaper run` on a 1 s schedule; sessions opened at random moments
// cross maxIdle; latency = when the client saw its session end − when it crossed the threshold
// (state_change + maxIdle, on the server's clock, which is this machine's clock).

export const SETTINGS = { sessions: 50 };
const QUICK = { sessions: 10 };
const MAX_IDLE_MS = 2000;

export async function benchLatency(): Promise<Record<string, unknown>> {
  const t0 = Date.now();
  const s = settings('latency', SETTINGS, QUICK);
  const SESSIONS = s.sessions;
  const server = await startBenchServer(SESSIONS + 50);
  const holder = await startHolder();
  const admin = new pg.Client(server.url);
  await admin.connect();
  const daemon = await startDaemonProcess(`schedule: "* * * * * *"
http: { host: 127.0.0.1, port: 0 }
targets: [{ name: bench, connectionString: "${server.reaperUrl}" }]
policies: [{ name: idle, maxIdle: ${MAX_IDLE_MS}ms, match: { applications: [bench-latency] } }]
`);
  try {
    const crossing = new Map<number, number>();
    let seed = 7;
    const rand = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < SESSIONS; i++) {
      await sleep(50 + rand() * 400); // spread the crossings over the schedule's second
      const { pids } = await holder.open(server.appUrl, 1, 'bench-latency');
      const row = (await admin.query<{ ms: number }>('SELECT extract(epoch FROM state_change)::float8 * 1000 AS ms FROM pg_stat_activity WHERE pid = $1', [pids[0]])).rows[0];
      if (!row) throw new Error(`session ${pids[0]} vanished before it could be measured`);
      crossing.set(pids[0]!, row.ms + MAX_IDLE_MS);
    }
    const deadline = Date.now() + MAX_IDLE_MS + 10_000;
    while ([...crossing.keys()].some((pid) => !holder.gone.has(pid)) && Date.now() < deadline) await sleep(100);
    const latencies = [...crossing].map(([pid, at]) => (holder.gone.get(pid) ?? NaN) - at);
    if (latencies.some(Number.isNaN)) throw new Error('not every session was reaped');
    const l = summarize(latencies);
    const result: PartResult = {
      describes: `\`pg-reaper run\` as a child process on a 1 s schedule, maxIdle ${MAX_IDLE_MS} ms; ${SESSIONS} sessions opened at random moments; latency = when the client saw its session end − when it crossed maxIdle (its state_change + maxIdle on the server's clock, which is this machine's).`,
      settings: s,
      postgres: server.version,
      sessions: SESSIONS,
      schedule: '* * * * * *',
      maxIdleMs: MAX_IDLE_MS,
      latencyMs: l,
      checks: [check(`detection latency p95 over ${SESSIONS} sessions`, l.p95, '<=', 1500, 'ms', 'issue 3')],
    };
    log(`latency: p50 ${round(l.median)} ms, p95 ${round(l.p95)} ms, max ${round(l.max)} ms`);
    writeResult('latency', t0, result);
    return result;
  } finally {
    await daemon.stop();
    await admin.end();
    await holder.close();
    await server.stop();
  }
}
