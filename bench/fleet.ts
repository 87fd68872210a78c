import { createServer, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { baseline } from './lib/baseline.js';
import { isRunEnd, startDaemonProcess } from './lib/daemon-process.js';
import { nodes } from './lib/nodes.js';
import { settings } from './lib/options.js';
import { memory } from './lib/proc.js';
import { log, thisBuild, writeResult, type PartResult } from './lib/results.js';
import { startBenchServer, type BenchServer } from './lib/server.js';
import { round, summarize } from './lib/stats.js';
import { check, type Check } from './lib/verdict.js';

// 5. Fleet: 200 targets on a 10 s schedule, 20 of them blackholed (a local listener that accepts
// and never answers). Every live target's run must start within 1 s of its schedule, and a dead
// one must cost no more than its connect timeout. Measured on Node 20 and 24, without and with
// scheduleJitter: 2s, and a baseline build beside this one with --baseline.

const TARGETS = 200;
const DEAD = 20;
const SERVERS = 3;
const CONNECT_TIMEOUT_S = 3;
// a dead target's run ends when its connect timer fires; the tolerance is the run's own
// bookkeeping after that (closing the socket, logging), printed beside the goal
const DEAD_TOLERANCE_S = 0.1;
export const SETTINGS = { cycles: 4 };
const QUICK = { cycles: 1 };

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
  version: string;
  cli?: string;
  jitterSeconds: number;
}

async function measure(v: Variant, targets: string, CYCLES: number): Promise<Record<string, unknown>> {
  const jitter = v.jitterSeconds > 0 ? `scheduleJitter: ${v.jitterSeconds}s\n` : '';
  // debug: a dead target's failed runs after the first are logged at debug only
  const daemon = await startDaemonProcess(`schedule: "*/10 * * * * *"\nlogLevel: debug\n${jitter}http: { host: 127.0.0.1, port: 0 }\ntargets:\n${targets}\npolicies: [{ name: idle, maxIdle: 1h }]\n`, { node: v.node, ...(v.cli ? { cli: v.cli } : {}) });
  // skip the first (partial) cycle, then collect CYCLES whole ones; sample RSS throughout
  const startedAt = Date.now();
  const firstTick = Math.ceil(startedAt / 10_000) * 10_000 + 10_000;
  const until = firstTick + CYCLES * 10_000 + CONNECT_TIMEOUT_S * 1000 + 1000;
  let peakRss = 0;
  while (Date.now() < until) {
    peakRss = Math.max(peakRss, memory(daemon.pid).rss);
    await sleep(250);
  }
  await daemon.stop();
  const runs = daemon.lines
    .filter(isRunEnd)
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
    node: v.version,
    build: v.cli ? 'baseline' : 'this',
    scheduleJitterSeconds: v.jitterSeconds,
    peakRssMiB: round(peakRss, 1),
    liveRuns: live.length,
    liveFailed: live.filter((r) => !r.ok).length,
    deadRuns: dead.length,
    deadFailed: dead.filter((r) => !r.ok).length,
    // with jitter, lateness includes the intended random delay (up to scheduleJitter)
    liveStartLatenessSeconds: liveLate,
    liveDurationSeconds: liveDuration,
    deadDurationSeconds: deadDuration,
    expectedLiveRuns: (TARGETS - DEAD) * CYCLES,
  };
  log(`fleet ${v.label}: peak RSS ${result.peakRssMiB} MiB; ${live.length} live runs, start lateness p95 ${round(liveLate.p95, 3)} s, max ${round(liveLate.max, 3)} s; ${dead.length} dead runs, duration max ${round(deadDuration.max, 3)} s`);
  return result;
}

export async function benchFleet(): Promise<Record<string, unknown>> {
  const t0 = Date.now();
  const s = settings('fleet', SETTINGS, QUICK);
  const servers: BenchServer[] = [];
  const holes = await Promise.all(Array.from({ length: 4 }, blackhole));
  try {
    for (let i = 0; i < SERVERS; i++) servers.push(await startBenchServer(300));
    const targets = Array.from({ length: TARGETS }, (_, i) =>
      i < DEAD
        ? `  - { name: dead${i}, host: 127.0.0.1, port: ${holes[i % holes.length]!.port}, user: reaper, database: postgres, connectTimeout: ${CONNECT_TIMEOUT_S}s }`
        : `  - { name: live${i}, connectionString: "${servers[i % SERVERS]!.reaperUrl}", connectTimeout: ${CONNECT_TIMEOUT_S}s }`,
    ).join('\n');
    const base = baseline();
    const variants: Variant[] = nodes().flatMap(({ path: node, version }) => [
      ...(base ? [{ label: `${version} baseline build`, node, version, cli: base.cli, jitterSeconds: 0 }] : []),
      { label: version, node, version, jitterSeconds: 0 },
      { label: `${version} scheduleJitter 2s`, node, version, jitterSeconds: 2 },
    ]);
    const results: Record<string, any>[] = []; // eslint-disable-line @typescript-eslint/no-explicit-any
    for (const v of variants) results.push(await measure(v, targets, s.cycles));
    const checks: Check[] = [];
    const changes: Record<string, unknown>[] = [];
    for (const r of results.filter((x) => x.build === 'this')) {
      const j = r.scheduleJitterSeconds as number;
      checks.push(check(`${r.variant}: latest start of a live run after its trigger${j ? ' (the intended jitter allowed on top)' : ''}`, r.liveStartLatenessSeconds.max, '<=', 1 + j, 's', j ? 'issue 3, jitter: issue 8' : 'issue 3'));
      checks.push(check(`${r.variant}: longest run of a dead target`, r.deadDurationSeconds.max, '<=', CONNECT_TIMEOUT_S, 's', 'issue 3', { tolerance: DEAD_TOLERANCE_S, note: 'the connect timer fires at the timeout; the tolerance is the bookkeeping after it' }));
      checks.push(check(`${r.variant}: live runs that failed`, r.liveFailed, '<=', 0, '', 'issue 3'));
      checks.push(check(`${r.variant}: live runs started (of ${r.expectedLiveRuns} due)`, r.liveRuns, '>=', r.expectedLiveRuns, '', 'issue 3'));
      const before = results.find((x) => x.build === 'baseline' && x.node === r.node && j === 0);
      if (before) {
        changes.push(
          { figure: `fleet ${r.node}: peak RSS`, before: before.peakRssMiB, after: r.peakRssMiB, unit: 'MiB' },
          { figure: `fleet ${r.node}: start lateness p95`, before: round(before.liveStartLatenessSeconds.p95, 3), after: round(r.liveStartLatenessSeconds.p95, 3), unit: 's' },
        );
      }
    }
    const result: PartResult = {
      describes:
        `\`pg-reaper run\` as a child process with ${TARGETS} targets on a 10 s schedule over ${s.cycles} whole cycles (the first, partial one skipped), ${DEAD} of them blackholed (a listener that accepts and never answers), connectTimeout ${CONNECT_TIMEOUT_S} s, ${SERVERS} real servers behind the live ones; peak RSS sampled every 0.25 s. ` +
        `Lateness is a run's start against its trigger; with scheduleJitter it includes the intended random delay (up to 2 s).${base ? ` The baseline build (${base.build.label}) runs the same config beside this one.` : ''}`,
      settings: s,
      postgres: servers[0]!.version,
      targets: TARGETS,
      dead: DEAD,
      cycles: s.cycles,
      connectTimeoutSeconds: CONNECT_TIMEOUT_S,
      variants: results,
      ...(base ? { baselineBuild: base.build } : {}),
      thisBuild: thisBuild().label,
      changes,
      checks,
    };
    writeResult('fleet', t0, result);
    return result;
  } finally {
    for (const s of servers) await s.stop();
    for (const h of holes) await h.close();
  }
}
