import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { nodeFlags } from './lib/daemon-process.js';
import { startHolder } from './lib/holder.js';
import { bareSql, naiveLoop, openReaperDb, pgReaperRun, reapConfig, THRESHOLD_MS, timed, VICTIM_APP } from './lib/reap-variants.js';
import { log, writeResult } from './lib/results.js';
import { startBenchServer } from './lib/server.js';
import { round, summarize, type Summary } from './lib/stats.js';

// 1. Reap cost: N idle sessions over the threshold, time from the start of a run until every
// victim's backend is confirmed gone. pg-reaper vs the bare one-statement SQL, side by side,
// alternating, in process and as a CLI; the naive per-pid loop once for contrast.

const SIZES = (process.env.BENCH_SIZES ?? '500,1000,2000').split(',').map(Number);
const REPS = Number(process.env.BENCH_REPS ?? 5);
const NAIVE = process.env.BENCH_NAIVE !== '0';
const CLI = join(import.meta.dirname, '../src/cli.js');
const BARE_CLI = join(import.meta.dirname, 'bare-reap-cli.js');

function runProcess(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'ignore'] });
    child.on('exit', (code) => (code === 0 ? resolve(0) : reject(new Error(`${args.join(' ')} exited ${code}`))));
  });
}

export async function benchReap(): Promise<Record<string, unknown>> {
  const server = await startBenchServer(Math.max(...SIZES) + 100);
  const holder = await startHolder();
  const config = reapConfig(server.reaperUrl);
  const dir = mkdtempSync(join(tmpdir(), 'pg-reaper-bench-'));
  const configFile = join(dir, 'reap.yaml');
  writeFileSync(configFile, `terminateTimeout: 60s\ntargets: [{ name: bench, connectionString: "${server.reaperUrl}" }]\npolicies: [{ name: idle, maxIdle: ${THRESHOLD_MS}ms, match: { applications: [${VICTIM_APP}] } }]\n`);
  const db = openReaperDb(config);
  const bare = new pg.Client({ connectionString: server.reaperUrl, application_name: 'bench-bare' });
  await bare.connect();
  const admin = new pg.Client(server.url);
  await admin.connect();

  // one measurement: fresh victims, aged past the threshold, then the variant
  const measure = async (n: number, variant: () => Promise<unknown>): Promise<number> => {
    const { pids } = await holder.open(server.appUrl, n, VICTIM_APP);
    await sleep(THRESHOLD_MS + 100);
    await db.query('SELECT 1');
    await bare.query('SELECT 1');
    const { ms } = await timed(variant);
    const left = (await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ANY($1)', [pids])).rows[0].n as number;
    if (left !== 0) throw new Error(`${left} victims still alive after the variant`);
    await holder.drop();
    return ms;
  };

  const sizes: Record<string, unknown>[] = [];
  try {
    for (const n of SIZES) {
      const t: Record<string, number[]> = { reaper: [], bare: [], reaperCli: [], bareCli: [] };
      for (let rep = 0; rep < REPS; rep++) {
        const order = rep % 2 === 0 ? ['reaper', 'bare'] : ['bare', 'reaper'];
        for (const v of order) t[v]!.push(await measure(n, v === 'reaper' ? () => pgReaperRun(config, db) : () => bareSql(bare)));
        const cliOrder = rep % 2 === 0 ? ['reaperCli', 'bareCli'] : ['bareCli', 'reaperCli'];
        for (const v of cliOrder) {
          t[v]!.push(await measure(n, () => runProcess(v === 'reaperCli' ? [...nodeFlags(), CLI, 'once', '-c', configFile] : [BARE_CLI, server.reaperUrl])));
        }
        log(`reap N=${n} rep ${rep + 1}/${REPS}: reaper ${round(t.reaper!.at(-1)!)} ms, bare ${round(t.bare!.at(-1)!)} ms, reaper CLI ${round(t.reaperCli!.at(-1)!)} ms, bare CLI ${round(t.bareCli!.at(-1)!)} ms`);
      }
      const s = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, summarize(v)])) as Record<string, Summary>;
      const naive = NAIVE ? await measure(n, () => naiveLoop(bare)) : undefined;
      if (naive !== undefined) log(`reap N=${n}: naive loop ${round(naive)} ms`);
      sizes.push({
        sessions: n,
        ms: s,
        naiveLoopMs: naive,
        ratioInProcess: round(s.reaper!.median / s.bare!.median, 3),
        ratioCli: round(s.reaperCli!.median / s.bareCli!.median, 3),
        // the spread of the ratio: each repetition's pair
        ratioInProcessPerRep: t.reaper!.map((r, i) => round(r / t.bare![i]!, 3)),
      });
    }
  } finally {
    await db.close();
    await bare.end();
    await admin.end();
    await holder.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const result = { postgres: server.version, reps: REPS, thresholdMs: THRESHOLD_MS, goal: 'pg-reaper <= 1.25 x bare SQL (medians)', sizes };
  writeResult('reap', 'npm run bench:reap', result);
  return result;
}
