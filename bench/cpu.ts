import pg from 'pg';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { cpuSeconds, startDaemonProcess } from './lib/daemon-process.js';
import { startHolder } from './lib/holder.js';
import { log, writeResult } from './lib/results.js';
import { startBenchServer } from './lib/server.js';
import { round } from './lib/stats.js';

// 7. CPU per run: `pg-reaper run` on one target at a 1 s schedule with 200 and then 5,000 idle
// sessions that no policy matches; user+sys CPU of the daemon over BENCH_CPU_SECONDS (60) divided
// by its runs. Beside it, in the same window, the CPU of the server backend that serves our
// snapshot against the backend of a bare `SELECT pid, state, state_change FROM
// pg_stat_activity` issued once a second on a connection of its own. BENCH_BASELINE_CLI measures
// another build (dist/pg-reaper/cli.js) the same way.

const SECONDS = Number(process.env.BENCH_CPU_SECONDS ?? 60);

/** CPU seconds of a server backend (the server runs on this machine). */
const backendCpu = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
};

async function measure(label: string, reaperUrl: string, adminUrl: string, cli?: string): Promise<Record<string, unknown>> {
  const daemon = await startDaemonProcess(
    `schedule: "* * * * * *"\nhttp: { host: 127.0.0.1, port: 0 }\ntargets: [{ name: main, connectionString: "${reaperUrl}" }]\npolicies:\n  - { name: idle, maxIdle: 1h }\n  - { name: tx, maxIdleInTransaction: 10m }\n  - { name: q, maxQueryDuration: 15m, action: cancel }\n`,
    process.execPath,
    cli,
  );
  await daemon.waitFor((l) => l.msg === 'run finished');
  const admin = new pg.Client({ connectionString: adminUrl, application_name: 'bench-bare' });
  await admin.connect();
  const bare = new pg.Client({ connectionString: reaperUrl, application_name: 'bench-bare-select' });
  await bare.connect();
  const ours = (await admin.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = 'pg-reaper'")).rows[0]!.pid;
  const barePid = (bare as unknown as { processID: number }).processID;
  const runs0 = daemon.lines.filter((l) => l.msg === 'run finished').length;
  const [cpu0, ours0, bare0] = [cpuSeconds(daemon.pid), backendCpu(ours), backendCpu(barePid)];
  const t0 = Date.now();
  let bareQueries = 0;
  while (Date.now() - t0 < SECONDS * 1000) {
    await bare.query('SELECT pid, state, state_change FROM pg_stat_activity');
    bareQueries++;
    await sleep(1000 - ((Date.now() - t0) % 1000));
  }
  const runs = daemon.lines.filter((l) => l.msg === 'run finished').length - runs0;
  const cpu = cpuSeconds(daemon.pid) - cpu0;
  const oursCpu = backendCpu(ours) - ours0;
  const bareCpu = backendCpu(barePid) - bare0;
  await bare.end();
  await admin.end();
  await daemon.stop();
  const result = {
    label,
    build: cli ? 'baseline' : 'this',
    runs,
    daemonCpuMsPerRun: round((cpu * 1000) / runs, 2),
    backendCpuMsPerRun: round((oursCpu * 1000) / runs, 2),
    bareSelectBackendCpuMsPerQuery: round((bareCpu * 1000) / bareQueries, 2),
    backendRatio: bareCpu > 0 ? round(oursCpu / runs / (bareCpu / bareQueries), 2) : null,
  };
  log(`cpu ${label}: daemon ${result.daemonCpuMsPerRun} ms/run over ${runs} runs; backend ${result.backendCpuMsPerRun} ms/run vs bare SELECT ${result.bareSelectBackendCpuMsPerQuery} ms (ratio ${result.backendRatio})`);
  return result;
}

export async function benchCpu(): Promise<Record<string, unknown>> {
  const server = await startBenchServer(5300);
  const holder = await startHolder();
  const baseline = process.env.BENCH_BASELINE_CLI;
  try {
    const cases: Record<string, unknown>[] = [];
    for (const sessions of [200, 5000]) {
      const have = sessions === 200 ? 0 : 200;
      await holder.open(server.appUrl, sessions - have, 'bench-cpu');
      if (baseline) cases.push({ sessions, ...(await measure(`${sessions} sessions, baseline build`, server.reaperUrl, server.url, baseline)) });
      cases.push({ sessions, ...(await measure(`${sessions} sessions`, server.reaperUrl, server.url)) });
    }
    const at200 = cases.find((c) => c.sessions === 200 && c.build === 'this')!;
    const result = {
      postgres: server.version,
      seconds: SECONDS,
      cases,
      goals: { daemonCpuMsPerRunAt200: 2.5, backendRatio: 1.3 },
      met: (at200.daemonCpuMsPerRun as number) <= 2.5 && cases.filter((c) => c.build === 'this').every((c) => (c.backendRatio as number) <= 1.3),
    };
    writeResult('cpu', 'npm run bench:cpu', result);
    return result;
  } finally {
    await holder.close();
    await server.stop();
  }
}
