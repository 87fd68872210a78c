import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { isRunEnd, startDaemonProcess } from './lib/daemon-process.js';
import { startHolder } from './lib/holder.js';
import { options, settings } from './lib/options.js';
import { memory } from './lib/proc.js';
import { log, writeResult, type PartResult } from './lib/results.js';
import { startBenchServer } from './lib/server.js';
import { round, slope } from './lib/stats.js';
import { check } from './lib/verdict.js';

// 9. Soak: `pg-reaper run` for an hour (--minutes N for less) on a 1 s schedule against one
// server with churn: a base of idle sessions, a few sessions replaced every second, and a victim
// every 2 s that the daemon terminates. Every sampleSeconds the daemon runs two full garbage
// collections and reports the heap that survived (bench/lib/heap-probe.js, loaded with
// `node --expose-gc --import`; the program is not changed). The figure is the slope of that
// post-GC heap after the warm-up, in MiB per hour: a leak shows as a number.

const PROBE = pathToFileURL(join(import.meta.dirname, 'lib/heap-probe.js')).href;
const VICTIM_APP = 'bench-soak-victim';
const CHURN_APP = 'bench-soak-churn';
// "flat": less than 0.1 MiB per hour (2.4 MiB a day)
const FLAT_MIB_PER_HOUR = 0.1;

export async function benchSoak(): Promise<Record<string, unknown>> {
  const t0 = Date.now();
  const minutes = options().minutes ?? (options().quick ? 2 : 60);
  const s = settings(
    'soak',
    { minutes, warmupMinutes: Math.min(10, minutes / 3), sampleSeconds: 30, idleSessions: 50, churnSessions: 20, churnPerSecond: 2 },
    { sampleSeconds: 5, idleSessions: 10, churnSessions: 5 },
  );
  const server = await startBenchServer(s.idleSessions + s.churnSessions + 100);
  const holder = await startHolder();
  await holder.open(server.appUrl, s.idleSessions, 'bench-soak-idle');
  await holder.open(server.appUrl, s.churnSessions, CHURN_APP);
  const daemon = await startDaemonProcess(
    // budget: off: a victim every 2 s is 300 per 10 minutes, over the default budget of 100
    `schedule: "* * * * * *"\nhttp: { host: 127.0.0.1, port: 0 }\nbudget: off\ntargets: [{ name: main, connectionString: "${server.reaperUrl}" }]\npolicies:\n  - { name: victims, maxIdle: 1s, match: { applications: [${VICTIM_APP}] } }\n  - { name: idle, maxIdle: 1h }\n  - { name: tx, maxIdleInTransaction: 10m }\n`,
    { nodeArgs: ['--expose-gc', '--import', PROBE], fd3: true, keepLines: 200 },
  );
  const heapLines = createInterface({ input: daemon.fd3! })[Symbol.asyncIterator]();
  let runs = 0;
  let failedRuns = 0;
  let terminated = 0;
  daemon.onLine((l) => {
    if (isRunEnd(l)) {
      runs++;
      if (l.msg === 'run failed') failedRuns++;
    }
    if (String(l.msg).startsWith('terminated ')) terminated++;
  });
  let stop = false;
  let victims = 0;
  const churn = (async () => {
    let tick = 0;
    while (!stop) {
      await sleep(1000);
      await holder.closeSome(CHURN_APP, s.churnPerSecond);
      await holder.open(server.appUrl, s.churnPerSecond, CHURN_APP);
      if (tick++ % 2 === 0) {
        await holder.open(server.appUrl, 1, VICTIM_APP);
        victims++;
      }
    }
  })();
  const samples: { minutes: number; heapMiB: number; rssMiB: number; anonMiB: number }[] = [];
  try {
    const started = Date.now();
    const end = started + s.minutes * 60_000;
    for (let next = started; ; ) {
      process.kill(daemon.pid, 'SIGUSR2');
      const line = await heapLines.next();
      if (line.done) throw new Error('the daemon closed its heap probe pipe');
      const h = JSON.parse(line.value) as { heapUsed: number };
      const m = memory(daemon.pid);
      samples.push({ minutes: round((Date.now() - started) / 60_000, 3), heapMiB: round(h.heapUsed / 2 ** 20, 3), rssMiB: round(m.rss, 1), anonMiB: round(m.anon, 1) });
      const last = samples.at(-1)!;
      if (samples.length % 10 === 1) log(`soak ${last.minutes} min: post-GC heap ${last.heapMiB} MiB, RSS ${last.rssMiB} MiB; ${runs} runs, ${terminated}/${victims} victims terminated`);
      next += s.sampleSeconds * 1000;
      if (next > end) break;
      await sleep(next - Date.now());
    }
  } finally {
    stop = true;
    await churn.catch(() => undefined);
    await daemon.stop();
    await holder.close();
    await server.stop();
  }
  const after = samples.filter((x) => x.minutes >= s.warmupMinutes);
  const heap = slope(
    after.map((x) => x.minutes / 60),
    after.map((x) => x.heapMiB),
  );
  const rss = slope(
    after.map((x) => x.minutes / 60),
    after.map((x) => x.rssMiB),
  );
  const at = (min: number) => samples.reduce((best, x) => (Math.abs(x.minutes - min) < Math.abs(best.minutes - min) ? x : best), samples[0]!);
  const result: PartResult = {
    describes:
      `\`pg-reaper run\` as a child process (Node ${process.version}) for ${s.minutes} min on a 1 s schedule against one server holding ${s.idleSessions} idle sessions and ${s.churnSessions} that are replaced ${s.churnPerSecond} a second, with a victim opened every 2 s that a maxIdle: 1s policy terminates. ` +
      `Every ${s.sampleSeconds} s the daemon runs two full garbage collections and reports the heap that survived (a probe loaded with \`node --expose-gc --import\`; the program is unchanged, the forced collections are the probe's only effect). ` +
      `The slope is a least-squares fit of the post-GC heap over the samples after the first ${round(s.warmupMinutes, 2)} min, in MiB per hour, with its standard error.`,
    settings: s,
    postgres: server.version,
    node: process.version,
    runs,
    failedRuns,
    victimsOpened: victims,
    victimsTerminated: terminated,
    heapMiB: { first: samples[0]?.heapMiB, atWarmupEnd: at(s.warmupMinutes).heapMiB, last: samples.at(-1)?.heapMiB },
    heapSlopeMiBPerHour: { slope: round(heap.slope, 4), stderr: round(heap.stderr, 4), samples: heap.n },
    rssSlopeMiBPerHour: { slope: round(rss.slope, 3), stderr: round(rss.stderr, 3), samples: rss.n },
    samples,
    checks: [
      check(`post-GC heap slope after the first ${round(s.warmupMinutes, 2)} min (± ${round(heap.stderr, 4)} standard error)`, heap.slope, '<=', FLAT_MIB_PER_HOUR, 'MiB/h', 'issue 19', {
        note: `"flat after the first 10 minutes", read as less than ${FLAT_MIB_PER_HOUR} MiB per hour (${round(FLAT_MIB_PER_HOUR * 24, 1)} MiB a day)`,
      }),
      check('runs that failed during the soak', failedRuns, '<=', 0, '', 'issue 19'),
    ],
  };
  log(`soak: post-GC heap ${JSON.stringify(result.heapMiB)} MiB, slope ${round(heap.slope, 4)} ± ${round(heap.stderr, 4)} MiB/h after ${round(s.warmupMinutes, 2)} min; ${runs} runs, ${terminated} of ${victims} victims terminated`);
  writeResult('soak', t0, result);
  return result;
}
