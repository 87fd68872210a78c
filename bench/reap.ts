import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { CLI, nodeFlags } from './lib/daemon-process.js';
import { startHolder } from './lib/holder.js';
import { REPO, settings } from './lib/options.js';
import { bareSql, naiveLoop, openReaperDb, pgReaperRun, reapConfig, THRESHOLD_MS, timed, VICTIM_APP } from './lib/reap-variants.js';
import { log, writeResult, type PartResult } from './lib/results.js';
import { startBenchServer } from './lib/server.js';
import { pairedRatio, round, summarize } from './lib/stats.js';
import { check, type Check } from './lib/verdict.js';

// 1. Reap cost: N idle sessions over the threshold, time from the start of a run until every
// victim's backend is confirmed gone. pg-reaper vs the bare one-statement SQL, side by side,
// alternating, in process and as a CLI; the naive per-pid loop once for contrast.

export const SETTINGS = { sizes: '500,1000,2000', reps: 5, naive: 1 };
const QUICK = { sizes: '50,100', reps: 2, naive: 0 };
const BARE_CLI = join(import.meta.dirname, 'bare-reap-cli.js');

function runProcess(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'ignore'] });
    child.on('exit', (code) => (code === 0 ? resolve(0) : reject(new Error(`${args.join(' ')} exited ${code}`))));
  });
}

export async function benchReap(): Promise<Record<string, unknown>> {
  const t0 = Date.now();
  const s = settings('reap', SETTINGS, QUICK);
  const sizesWanted = String(s.sizes).split(',').map(Number);
  const server = await startBenchServer(Math.max(...sizesWanted) + 100);
  const holder = await startHolder();
  const config = reapConfig(server.reaperUrl);
  const dir = mkdtempSync(join(tmpdir(), 'pg-reaper-bench-'));
  const configFile = join(dir, 'reap.yaml');
  writeFileSync(configFile, `terminateTimeout: 60s\nbudget: off\ntargets: [{ name: bench, connectionString: "${server.reaperUrl}" }]\npolicies: [{ name: idle, maxIdle: ${THRESHOLD_MS}ms, match: { applications: [${VICTIM_APP}] } }]\n`);
  const reaperCli = [...nodeFlags(), CLI, 'once', '-c', configFile];
  const bareCli = [BARE_CLI, server.reaperUrl];
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
  const checks: Check[] = [];
  try {
    for (const n of sizesWanted) {
      const t: Record<string, number[]> = { reaper: [], bare: [], reaperCli: [], bareCli: [] };
      for (let rep = 0; rep < s.reps; rep++) {
        const order = rep % 2 === 0 ? ['reaper', 'bare'] : ['bare', 'reaper'];
        for (const v of order) t[v]!.push(await measure(n, v === 'reaper' ? () => pgReaperRun(config, db) : () => bareSql(bare)));
        const cliOrder = rep % 2 === 0 ? ['reaperCli', 'bareCli'] : ['bareCli', 'reaperCli'];
        for (const v of cliOrder) t[v]!.push(await measure(n, () => runProcess(v === 'reaperCli' ? reaperCli : bareCli)));
        log(`reap N=${n} rep ${rep + 1}/${s.reps}: reaper ${round(t.reaper!.at(-1)!)} ms, bare ${round(t.bare!.at(-1)!)} ms, reaper CLI ${round(t.reaperCli!.at(-1)!)} ms, bare CLI ${round(t.bareCli!.at(-1)!)} ms`);
      }
      const naive = s.naive ? await measure(n, () => naiveLoop(bare)) : undefined;
      if (naive !== undefined) log(`reap N=${n}: naive loop ${round(naive)} ms`);
      const inProcess = pairedRatio(t.reaper!, t.bare!);
      const cli = pairedRatio(t.reaperCli!, t.bareCli!);
      sizes.push({
        sessions: n,
        ms: Object.fromEntries(Object.entries(t).map(([k, v]) => [k, summarize(v)])),
        naiveLoopMs: naive,
        ratioInProcess: inProcess,
        ratioCli: cli,
      });
      checks.push(check(`(a)/(b) in process, ${n} sessions (median of paired ratios)`, inProcess.median, '<=', 1.25, '×', 'issue 3'));
      checks.push(check(`(a)/(b) as CLIs, ${n} sessions (median of paired ratios)`, cli.median, '<=', 1.25, '×', 'issue 3'));
    }
  } finally {
    await db.close();
    await bare.end();
    await admin.end();
    await holder.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const rel = (p: string) => relative(REPO, p);
  const result: PartResult = {
    describes:
      `Idle sessions over a ${THRESHOLD_MS} ms threshold; time from the start of a run until every victim's backend is confirmed gone. ${s.reps} repetitions per variant, alternating. ` +
      `(a) pg-reaper's run (snapshot, plan, guarded batch signal, exit confirmation, log lines and metrics), in process on an open connection, and as \`${['node', ...reaperCli.map((a) => (a === configFile ? 'reap.yaml' : a.startsWith('/') ? rel(a) : a))].join(' ')}\`; ` +
      `(b) the bare \`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE …\` plus the same confirmation loop, in process on an open connection, and as \`node ${rel(BARE_CLI)} URL\`; ` +
      `(c) a loop of \`pg_terminate_backend(pid, 5000)\`${s.naive ? ', once' : ': not run'}. The CLIs are timed from spawn to exit (connecting included).`,
    settings: s,
    postgres: server.version,
    thresholdMs: THRESHOLD_MS,
    sizes,
    checks,
  };
  writeResult('reap', t0, result);
  return result;
}
