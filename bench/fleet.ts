import { createServer, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { execFileSync } from 'node:child_process';
import { rssBytes, startDaemonProcess } from './lib/daemon-process.js';
import { log, writeResult } from './lib/results.js';
import { startBenchServer, type BenchServer } from './lib/server.js';
import { round, summarize } from './lib/stats.js';

// 5. Fleet: 200 targets on a 10 s schedule, 20 of them blackholed (a local listener that accepts
// and never answers). Every live target's run must start within 1 s of its schedule, and a dead
// one must cost no more than its connect timeout. Measured per Node binary (BENCH_NODES adds
// more), without and with scheduleJitter: 2s, and against a baseline build when
// BENCH_BASELINE_CLI names its dist/pg-reaper/cli.js (the peak RSS before and after a change).

const TARGETS = 200;
const DEAD = 20;
const SERVERS = 3;
const CONNECT_TIMEOUT_S = 3;
const CYCLES = Number(process.env.BENCH_FLEET_CYCLES ?? 4);

async function blackhole(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

interface Variant {
  label: string;
  node: string;
  cli?: string;
  jitterSeconds: number;
}

async function measure(v: Variant, targets: string): Promise<Record<string, unknown>> {
  const jitter = v.jitterSeconds > 0 ? `scheduleJitter: ${v.jitterSeconds}s\n` : '';
  // debug: a dead target's failed runs after the first are logged at debug only
  const daemon = await startDaemonProcess(`schedule: "*/10 * * * * *"\nlogLevel: debug\n${jitter}http: { host: 127.0.0.1, port: 0 }\ntargets:\n${targets}\npolicies: [{ name: idle, maxIdle: 1h }]\n`, v.node, v.cli);
  // skip the first (partial) cycle, then collect CYCLES whole ones; sample RSS throughout
  const startedAt = Date.now();
  const firstTick = Math.ceil(startedAt / 10_000) * 10_000 + 10_000;
  const until = firstTick + CYCLES * 10_000 + CONNECT_TIMEOUT_S * 1000 + 1000;
  let peakRss = 0;
  while (Date.now() < until) {
    peakRss = Math.max(peakRss, rssBytes(daemon.pid).rss);
    await sleep(250);
  }
  await daemon.stop();
  const runs = daemon.lines
    .filter((l) => l.msg === 'run finished' || l.msg === 'run failed')
    .map((l) => {
      const end = Date.parse(String(l.time));
      const start = end - Number(l.durationSeconds) * 1000;
      // against the nearest trigger: croner may fire a millisecond early
      return { target: String(l.target), ok: l.msg === 'run finished', start, duration: Number(l.durationSeconds), lateness: (start - Math.round(start / 10_000) * 10_000) / 1000 };
    })
    .filter((r) => r.start >= firstTick && r.start < firstTick + CYCLES * 10_000);
  const live = runs.filter((r) => r.target.startsWith('live'));
  const dead = runs.filter((r) => r.target.startsWith('dead'));
  const liveLate = summarize(live.map((r) => r.lateness));
  const liveDuration = summarize(live.map((r) => r.duration));
  const deadDuration = summarize(dead.map((r) => r.duration));
  const result = {
    variant: v.label,
    node: execFileSync(v.node, ['--version'], { encoding: 'utf8' }).trim(),
    build: v.cli ? 'baseline' : 'this',
    scheduleJitterSeconds: v.jitterSeconds,
    peakRssMiB: round(peakRss / 2 ** 20, 1),
    liveRuns: live.length,
    liveFailed: live.filter((r) => !r.ok).length,
    deadRuns: dead.length,
    deadFailed: dead.filter((r) => !r.ok).length,
    // with jitter, lateness includes the intended random delay (up to scheduleJitter)
    liveStartLatenessSeconds: liveLate,
    liveDurationSeconds: liveDuration,
    deadDurationSeconds: deadDuration,
    met: live.every((r) => r.ok) && liveLate.max <= 1 + v.jitterSeconds && deadDuration.max <= CONNECT_TIMEOUT_S + 0.1 && live.length === (TARGETS - DEAD) * CYCLES,
  };
  log(`fleet ${v.label}: peak RSS ${result.peakRssMiB} MiB; ${live.length} live runs, start lateness p95 ${round(liveLate.p95, 3)} s, max ${round(liveLate.max, 3)} s; ${dead.length} dead runs, duration max ${round(deadDuration.max, 3)} s`);
  return result;
}

export async function benchFleet(): Promise<Record<string, unknown>> {
  const servers: BenchServer[] = [];
  const holes = await Promise.all(Array.from({ length: 4 }, blackhole));
  try {
    for (let i = 0; i < SERVERS; i++) servers.push(await startBenchServer(300));
    const targets = Array.from({ length: TARGETS }, (_, i) =>
      i < DEAD
        ? `  - { name: dead${i}, host: 127.0.0.1, port: ${holes[i % holes.length]!.port}, user: reaper, database: postgres, connectTimeout: ${CONNECT_TIMEOUT_S}s }`
        : `  - { name: live${i}, connectionString: "${servers[i % SERVERS]!.reaperUrl}", connectTimeout: ${CONNECT_TIMEOUT_S}s }`,
    ).join('\n');
    const nodes = [process.execPath, ...(process.env.BENCH_NODES ?? '').split(',').filter(Boolean)];
    const baseline = process.env.BENCH_BASELINE_CLI;
    const variants: Variant[] = nodes.flatMap((node) => {
      const v = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
      return [
        ...(baseline ? [{ label: `${v} baseline build`, node, cli: baseline, jitterSeconds: 0 }] : []),
        { label: `${v}`, node, jitterSeconds: 0 },
        { label: `${v} scheduleJitter 2s`, node, jitterSeconds: 2 },
      ];
    });
    const results = [];
    for (const v of variants) results.push(await measure(v, targets));
    const result = {
      postgres: servers[0]!.version,
      targets: TARGETS,
      dead: DEAD,
      cycles: CYCLES,
      connectTimeoutSeconds: CONNECT_TIMEOUT_S,
      goals: { liveStartWithinSeconds: 1, deadCostAtMostSeconds: CONNECT_TIMEOUT_S },
      variants: results,
      met: results.every((r) => r.met),
    };
    writeResult('fleet', 'npm run bench:fleet', result);
    return result;
  } finally {
    for (const s of servers) await s.stop();
    for (const h of holes) await h.close();
  }
}
