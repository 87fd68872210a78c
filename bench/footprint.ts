import { execFileSync, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { cpuSeconds, rssBytes, startDaemonProcess } from './lib/daemon-process.js';
import { startHolder } from './lib/holder.js';
import { log, writeResult } from './lib/results.js';
import { startBenchServer, type BenchServer } from './lib/server.js';
import { round, summarize } from './lib/stats.js';

// 4. Footprint of `pg-reaper run`: RSS and CPU with 1 target on a 1 s schedule, and with 200
// targets spread over a few real servers on a 10 s schedule. Each server holds some idle
// sessions, so every run reads a real snapshot; one policy reaps nothing (all under threshold).
// Beside them, a bare `node -e` that stays up (the floor), and with BENCH_BASELINE_CLI another
// build's dist/pg-reaper/cli.js (before and after, same run).

const SECONDS = Number(process.env.BENCH_FOOTPRINT_SECONDS ?? 60);
const SERVERS = 4;
const SESSIONS_PER_SERVER = 100;

async function measure(name: string, configYaml: string, node: string, cli?: string): Promise<Record<string, unknown>> {
  const daemon = await startDaemonProcess(configYaml, node, cli);
  const rss: number[] = [];
  const anon: number[] = [];
  const file: number[] = [];
  const cpu0 = cpuSeconds(daemon.pid);
  const t0 = Date.now();
  while (Date.now() - t0 < SECONDS * 1000) {
    await sleep(500);
    const m = rssBytes(daemon.pid);
    rss.push(m.rss / 2 ** 20);
    anon.push(m.anon / 2 ** 20);
    file.push(m.file / 2 ** 20);
  }
  const cpu = cpuSeconds(daemon.pid) - cpu0;
  const elapsed = (Date.now() - t0) / 1000;
  const runs = daemon.lines.filter((l) => l.msg === 'run finished' || l.msg === 'run failed');
  const failed = runs.filter((l) => l.msg === 'run failed').length;
  const code = await daemon.stop();
  const s = summarize(rss);
  const result = {
    rssMiB: { peak: round(s.max, 1), median: round(s.median, 1), last: round(rss.at(-1)!, 1) },
    rssAnonMiB: { peak: round(Math.max(...anon), 1), last: round(anon.at(-1)!, 1) },
    rssFileMiB: { peak: round(Math.max(...file), 1), last: round(file.at(-1)!, 1) }, cpuPercent: round((cpu / elapsed) * 100, 2), seconds: round(elapsed, 1), runs: runs.length, failedRuns: failed, exitCode: code };
  log(`footprint ${name}: peak RSS ${result.rssMiB.peak} MiB (private ${result.rssAnonMiB.peak}, file-backed ${result.rssFileMiB.peak}), CPU ${result.cpuPercent}%, ${runs.length} runs (${failed} failed)`);
  return result;
}

/** A bare Node process that stays up: the floor under any daemon's RSS. */
async function bareNode(node: string): Promise<{ rssMiB: number; rssAnonMiB: number }> {
  const child = spawn(node, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  await sleep(2000);
  const m = rssBytes(child.pid!);
  child.kill();
  return { rssMiB: round(m.rss / 2 ** 20, 1), rssAnonMiB: round(m.anon / 2 ** 20, 1) };
}

const target = (name: string, s: BenchServer) => `  - { name: ${name}, connectionString: "${s.reaperUrl}" }`;

export async function benchFootprint(): Promise<Record<string, unknown>> {
  const servers: BenchServer[] = [];
  const holder = await startHolder();
  try {
    for (let i = 0; i < SERVERS; i++) {
      const s = await startBenchServer(300);
      servers.push(s);
      await holder.open(s.appUrl, SESSIONS_PER_SERVER, 'bench-footprint');
    }
    const policies = `policies:
  - { name: idle, maxIdle: 1h }
  - { name: tx, maxIdleInTransaction: 10m }
  - { name: q, maxQueryDuration: 15m, action: cancel }
`;
    // BENCH_NODES: more Node binaries to measure beside this one (say the image's Node 24)
    const binaries = [process.execPath, ...(process.env.BENCH_NODES ?? '').split(',').filter(Boolean)];
    const fleet = Array.from({ length: 200 }, (_, i) => target(`t${i}`, servers[i % SERVERS]!)).join('\n');
    const byNode = [];
    const baseline = process.env.BENCH_BASELINE_CLI;
    for (const node of binaries) {
      const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
      const bare = await bareNode(node);
      log(`footprint ${version} bare node: RSS ${bare.rssMiB} MiB (private ${bare.rssAnonMiB})`);
      for (const [build, cli] of [['this', undefined], ...(baseline ? [['baseline', baseline]] : [])] as [string, string | undefined][]) {
        const one = await measure(`${version} ${build} 1 target, 1 s`, `schedule: "* * * * * *"\nhttp: { host: 127.0.0.1, port: 0 }\ntargets:\n${target('t0', servers[0]!)}\n${policies}`, node, cli);
        const many = await measure(`${version} ${build} 200 targets, 10 s`, `schedule: "*/10 * * * * *"\nhttp: { host: 127.0.0.1, port: 0 }\ntargets:\n${fleet}\n${policies}`, node, cli);
        byNode.push({ node: version, build, bareNode: bare, oneTarget: { schedule: '* * * * * *', ...one, goal: 'RSS <= 55 MiB on Node 24, <= 50 MiB on Node 20; private <= 15 MiB' }, twoHundredTargets: { schedule: '*/10 * * * * *', ...many, goal: 'RSS <= 150 MB' } });
      }
    }
    const result = {
      postgres: servers[0]!.version,
      servers: SERVERS,
      sessionsPerServer: SESSIONS_PER_SERVER,
      seconds: SECONDS,
      byNode,
    };
    writeResult('footprint', 'npm run bench:footprint', result);
    return result;
  } finally {
    await holder.close();
    for (const s of servers) await s.stop();
  }
}
