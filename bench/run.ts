import { removeBaseline } from './lib/baseline.js';
import { parseOptions } from './lib/options.js';
import { log, startRun } from './lib/results.js';

// node dist/bench/run.js [part...] [--quick] [--minutes N] [--set PART.KEY=V] [--node24 PATH]
//   [--baseline REF | --baseline-cli PATH] [--out DIR]
// Runs the parts (default: all of them, soak included), then rewrites the report from the result
// files: BENCHMARKS.md for bench/results. `report` alone only rewrites the report; `report
// --strict` fails when its sections are not one run of one build. See lib/options.ts.

const PARTS: Record<string, () => Promise<unknown>> = {
  planner: async () => (await import('./planner.js')).benchPlanner(),
  idle: async () => (await import('./idle.js')).benchIdle(),
  reap: async () => (await import('./reap.js')).benchReap(),
  latency: async () => (await import('./latency.js')).benchLatency(),
  footprint: async () => (await import('./footprint.js')).benchFootprint(),
  fleet: async () => (await import('./fleet.js')).benchFleet(),
  cpu: async () => (await import('./cpu.js')).benchCpu(),
  startup: async () => (await import('./startup.js')).benchStartup(),
  soak: async () => (await import('./soak.js')).benchSoak(),
};

let o;
try {
  o = parseOptions(process.argv.slice(2), Object.keys(PARTS));
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(2);
}
const reportOnly = o.parts.length > 0 && o.parts.every((p) => p === 'report');
const parts = reportOnly ? [] : o.all ? Object.keys(PARTS) : o.parts.filter((p) => p !== 'report');
// a part that fails is reported and the others still run: its section then shows as missing or
// from another run, and the exit code says so
const failed: string[] = [];
try {
  if (parts.length) {
    const run = startRun(parts);
    log(`run ${run.id}: ${parts.join(', ')}${o.quick ? ' (--quick: a smoke run, not figures to publish)' : ''}; results in ${o.out}`);
  }
  for (const part of parts) {
    log(`--- ${part}`);
    const t0 = Date.now();
    try {
      await PARTS[part]!();
      log(`--- ${part} took ${Math.round((Date.now() - t0) / 1000)} s`);
    } catch (err) {
      failed.push(part);
      process.stderr.write(`[bench] ${part} failed: ${(err as Error).stack ?? String(err)}\n`);
    }
  }
} finally {
  removeBaseline();
}
const { writeReport } = await import('./report.js');
const report = writeReport(o.out);
log(`wrote ${report.file}${report.mixed ? `; not one run of one build: ${report.mixed.split(' | ').length} section(s) flagged` : ''}`);
if (failed.length) log(`failed: ${failed.join(', ')}`);
process.exit(failed.length ? 1 : o.strict && report.mixed ? 3 : 0);
