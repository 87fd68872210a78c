import { log } from './lib/results.js';

// npm run bench [part...]: parts reap, idle, planner, footprint, fleet, latency, cpu, startup (default: all),
// then BENCHMARKS.md is rewritten from bench/results/*.json.

const PARTS: Record<string, () => Promise<unknown>> = {
  planner: async () => (await import('./planner.js')).benchPlanner(),
  idle: async () => (await import('./idle.js')).benchIdle(),
  reap: async () => (await import('./reap.js')).benchReap(),
  latency: async () => (await import('./latency.js')).benchLatency(),
  footprint: async () => (await import('./footprint.js')).benchFootprint(),
  fleet: async () => (await import('./fleet.js')).benchFleet(),
  cpu: async () => (await import('./cpu.js')).benchCpu(),
  startup: async () => (await import('./startup.js')).benchStartup(),
};

const asked = process.argv.slice(2);
const unknown = asked.filter((p) => p !== 'report' && !(p in PARTS));
if (unknown.length) {
  process.stderr.write(`unknown part(s) ${unknown.join(', ')}; expected ${Object.keys(PARTS).join(', ')} or report\n`);
  process.exit(2);
}
const parts = asked.length ? asked.filter((p) => p !== 'report') : Object.keys(PARTS);
for (const part of parts) {
  log(`--- ${part}`);
  const result = await PARTS[part]!();
  process.stdout.write(JSON.stringify({ part, result }) + '\n');
}
const { writeReport } = await import('./report.js');
log(`wrote ${writeReport()}`);
process.exit(0);
