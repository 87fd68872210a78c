import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { baseline } from './lib/baseline.js';
import { isRunEnd, startDaemonProcess } from './lib/daemon-process.js';
import { startHolder } from './lib/holder.js';
import { nodes, type NodeBinary } from './lib/nodes.js';
import { settings } from './lib/options.js';
import { memory, processCpuNs, type Memory } from './lib/proc.js';
import { log, thisBuild, writeResult, type PartResult } from './lib/results.js';
import { startBenchServer, type BenchServer } from './lib/server.js';
import { round, summarize } from './lib/stats.js';
import { check, type Check } from './lib/verdict.js';

// 4. Footprint of `pg-reaper run`: memory and CPU with 1 target on a 1 s schedule (200 idle
// sessions on its server that no policy matches), and with 200 targets spread over a few real
// servers on a 10 s schedule. On Node 20 and Node 24, each beside a bare `node` that stays up
// (the floor), and beside a baseline build with --baseline. Memory from /proc/PID/smaps_rollup:
// resident (VmRSS), private (Anonymous: heap, stacks, malloc; Private_Dirty beside it) and
// file-backed pages (mostly the node binary's code, shared and reclaimable). CPU from the
// scheduler's nanosecond counters of every thread (/proc/PID/task/*/schedstat).

export const SETTINGS = { seconds: 60 };
const QUICK = { seconds: 8 };
const SERVERS = 4;
const SESSIONS_PER_SERVER = 200;
const MB = 1e6 / 2 ** 20;

interface Sampled {
  rssMiB: { peak: number; median: number; last: number };
  anonMiB: { peak: number; median: number; last: number };
  privateDirtyMiB: { peak: number; last: number };
  fileMiB: { peak: number; last: number };
  cpuPercent: number;
  cpuMsPerRun: number;
  seconds: number;
  runs: number;
  failedRuns: number;
  exitCode: number | null;
}

const peakMedianLast = (xs: number[]) => ({ peak: round(Math.max(...xs), 1), median: round(summarize(xs).median, 1), last: round(xs.at(-1)!, 1) });

async function measure(name: string, configYaml: string, node: string, seconds: number, cli?: string): Promise<Sampled> {
  const daemon = await startDaemonProcess(configYaml, { node, ...(cli ? { cli } : {}) });
  const samples: Memory[] = [];
  const cpu0 = processCpuNs(daemon.pid);
  const runs0 = daemon.lines.filter(isRunEnd).length;
  const t0 = Date.now();
  while (Date.now() - t0 < seconds * 1000) {
    await sleep(500);
    samples.push(memory(daemon.pid));
  }
  const cpuNs = processCpuNs(daemon.pid) - cpu0;
  const elapsed = (Date.now() - t0) / 1000;
  const runs = daemon.lines.filter(isRunEnd).slice(runs0);
  const failed = runs.filter((l) => l.msg === 'run failed').length;
  const code = await daemon.stop();
  const r: Sampled = {
    rssMiB: peakMedianLast(samples.map((m) => m.rss)),
    anonMiB: peakMedianLast(samples.map((m) => m.anon)),
    privateDirtyMiB: { peak: round(Math.max(...samples.map((m) => m.privateDirty)), 1), last: round(samples.at(-1)!.privateDirty, 1) },
    fileMiB: { peak: round(Math.max(...samples.map((m) => m.file)), 1), last: round(samples.at(-1)!.file, 1) },
    cpuPercent: round((cpuNs / 1e9 / elapsed) * 100, 3),
    cpuMsPerRun: runs.length ? round(cpuNs / 1e6 / runs.length, 3) : NaN,
    seconds: round(elapsed, 1),
    runs: runs.length,
    failedRuns: failed,
    exitCode: code,
  };
  log(`footprint ${name}: peak RSS ${r.rssMiB.peak} MiB (private ${r.anonMiB.peak}, file-backed ${r.fileMiB.peak}), CPU ${r.cpuPercent} %, ${runs.length} runs (${failed} failed)`);
  return r;
}

/** A bare Node process that stays up: the floor under any daemon's memory. */
async function bareNode(node: string): Promise<{ rssMiB: number; anonMiB: number; privateDirtyMiB: number }> {
  const child = spawn(node, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await sleep(3000);
  const m = memory(child.pid!);
  child.kill();
  await exited;
  return { rssMiB: round(m.rss, 1), anonMiB: round(m.anon, 1), privateDirtyMiB: round(m.privateDirty, 1) };
}

const target = (name: string, s: BenchServer) => `  - { name: ${name}, connectionString: "${s.reaperUrl}" }`;
const RSS_GOAL: Record<string, number> = { '20': 50, '24': 55 };

export async function benchFootprint(): Promise<Record<string, unknown>> {
  const t0 = Date.now();
  const s = settings('footprint', SETTINGS, QUICK);
  const servers: BenchServer[] = [];
  const holder = await startHolder();
  try {
    for (let i = 0; i < SERVERS; i++) {
      const srv = await startBenchServer(SESSIONS_PER_SERVER + 100);
      servers.push(srv);
      await holder.open(srv.appUrl, SESSIONS_PER_SERVER, 'bench-footprint');
    }
    const policies = `policies:
  - { name: idle, maxIdle: 1h }
  - { name: tx, maxIdleInTransaction: 10m }
  - { name: q, maxQueryDuration: 15m, action: cancel }
`;
    const fleet = Array.from({ length: 200 }, (_, i) => target(`t${i}`, servers[i % SERVERS]!)).join('\n');
    const byNode: Record<string, any>[] = []; // eslint-disable-line @typescript-eslint/no-explicit-any
    const base = baseline();
    const checks: Check[] = [];
    const changes: Record<string, unknown>[] = [];
    for (const { path: node, version } of nodes() as NodeBinary[]) {
      const bare = await bareNode(node);
      log(`footprint ${version} bare node: RSS ${bare.rssMiB} MiB (private ${bare.anonMiB})`);
      for (const [build, cli] of [['this', undefined], ...(base ? [['baseline', base.cli]] : [])] as [string, string | undefined][]) {
        const one = await measure(`${version} ${build} 1 target, 1 s`, `schedule: "* * * * * *"\nhttp: { host: 127.0.0.1, port: 0 }\ntargets:\n${target('t0', servers[0]!)}\n${policies}`, node, s.seconds, cli);
        const many = await measure(`${version} ${build} 200 targets, 10 s`, `schedule: "*/10 * * * * *"\nhttp: { host: 127.0.0.1, port: 0 }\ntargets:\n${fleet}\n${policies}`, node, s.seconds, cli);
        const privateAboveBare = round(one.anonMiB.peak - bare.anonMiB, 1);
        byNode.push({ node: version, build, bareNode: bare, oneTarget: { schedule: '* * * * * *', ...one, privateAboveBareMiB: privateAboveBare }, twoHundredTargets: { schedule: '*/10 * * * * *', ...many } });
        if (build !== 'this') continue;
        const major = version.slice(1).split('.')[0]!;
        if (RSS_GOAL[major] !== undefined) checks.push(check(`Node ${major}, 1 target: peak resident (RSS)`, one.rssMiB.peak, '<=', RSS_GOAL[major]!, 'MiB', 'issues 10 and 19'));
        checks.push(check(`Node ${major}, 1 target: peak private (anonymous)`, one.anonMiB.peak, '<=', 15, 'MiB', 'issue 10'));
        checks.push(check(`Node ${major}, 1 target: private above a bare node (${one.anonMiB.peak} − ${bare.anonMiB})`, privateAboveBare, '<=', 8, 'MiB', 'issue 19'));
        checks.push(check(`Node ${major}, 200 targets: peak resident (RSS); goal 150 MB`, many.rssMiB.peak, '<=', round(150 * MB, 1), 'MiB', 'issue 3'));
        checks.push(check(`Node ${major}, 1 and 200 targets: runs that failed`, one.failedRuns + many.failedRuns, '<=', 0, '', 'issue 3'));
      }
      const after = byNode.find((b) => b.node === version && b.build === 'this');
      const before = byNode.find((b) => b.node === version && b.build === 'baseline');
      if (after && before) {
        changes.push(
          { figure: `footprint ${version}, 1 target: peak RSS`, before: before.oneTarget.rssMiB.peak, after: after.oneTarget.rssMiB.peak, unit: 'MiB' },
          { figure: `footprint ${version}, 1 target: peak private`, before: before.oneTarget.anonMiB.peak, after: after.oneTarget.anonMiB.peak, unit: 'MiB' },
          { figure: `footprint ${version}, 1 target: CPU per run`, before: before.oneTarget.cpuMsPerRun, after: after.oneTarget.cpuMsPerRun, unit: 'ms' },
          { figure: `footprint ${version}, 200 targets: peak RSS`, before: before.twoHundredTargets.rssMiB.peak, after: after.twoHundredTargets.rssMiB.peak, unit: 'MiB' },
        );
      }
    }
    const result: PartResult = {
      describes:
        `\`pg-reaper run\` as a child process with the flags of its shebang, sampled every 0.5 s for ${s.seconds} s per case; ${SERVERS} real servers with ${SESSIONS_PER_SERVER} idle sessions each (no policy matches them). ` +
        'Resident is VmRSS; private is smaps_rollup Anonymous (heap, stacks, malloc arenas; Private_Dirty in the result file); file-backed pages are mostly the node binary\'s own code, shared with other processes and reclaimable. ' +
        'CPU is the sum of every thread\'s scheduler time (/proc/PID/task/*/schedstat, ns) over the window. "bare node" is `node -e "setInterval(() => {}, 1000)"` after 3 s: the floor.' +
        (base ? ` The baseline build (${base.build.label}) runs the same configs beside this one.` : ''),
      settings: s,
      postgres: servers[0]!.version,
      servers: SERVERS,
      sessionsPerServer: SESSIONS_PER_SERVER,
      seconds: s.seconds,
      byNode,
      ...(base ? { baselineBuild: base.build } : {}),
      thisBuild: thisBuild().label,
      changes,
      checks,
    };
    writeResult('footprint', t0, result);
    return result;
  } finally {
    await holder.close();
    for (const srv of servers) await srv.stop();
  }
}
