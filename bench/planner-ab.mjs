// Same-process A/B of two builds' planners on the planner benchmark's fixture (10,000 sessions x 20
// policies): node bench/planner-ab.mjs OLD_ROOT NEW_ROOT, each a checkout with `npm run build` done
// (it imports their dist/src). Prints each side's median plan and the median of the paired ratios
// NEW/OLD; loading both in one process takes the drift between processes out of the comparison.
import { performance } from 'node:perf_hooks';
const [A, B] = process.argv.slice(2);
const load = async (root) => ({
  cfg: await import(`${root}/dist/src/config/load.js`),
  ses: await import(`${root}/dist/src/db/session.js`),
  plan: await import(`${root}/dist/src/plan/planner.js`),
  comp: await import(`${root}/dist/src/policy/compile.js`),
});
const SESSIONS = 10000, POLICIES = 20;
function fixture(m, withRules) {
  const now = Date.UTC(2026, 10, 22, 12);
  let seed = 42;
  const rand = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
  const states = ['idle', 'idle', 'idle', 'active', 'idle in transaction', 'idle in transaction (aborted)'];
  const sessions = Array.from({ length: SESSIONS }, (_, i) => { const age = rand() * 7200 * 1000; return { pid: 10000 + i, user: `team${i % 40}_svc`, database: `db${i % 7}`, application: `service-${i % 50}-worker`, clientAddr: `10.${i % 4}.${(i >> 8) % 256}.${i % 256}`, local: false, state: states[i % states.length], backendStartMs: now - age - 60000, xactStartMs: now - age, queryStartMs: now - age, stateChangeMs: now - age, backendStart: `bs${i}`, stateChange: `sc${i}`, queryStart: `qs${i}`, xactStart: `xs${i}`, superuser: false, canSignal: true, blockedBy: null, waitStartMs: null, waitMode: null, listener: withRules && i % 97 === 0, maintenance: null, queryId: null, backendXid: null, backendXmin: null, xidAge: null, xminAge: null, olderTransactionRuns: false }; });
  if (withRules) for (let i = 50; i < sessions.length; i += 50) sessions[i] = { ...sessions[i], state: 'active', blockedBy: [10000 + i - 7 - (i % 3)], waitStartMs: now - rand() * 120000 };
  const policies = Array.from({ length: POLICIES }, (_, p) => { const scope = { name: `policy-${p}`, match: { users: [`team${p}_*`, `team${p + 20}_*`], databases: p % 2 ? ['db1', 'db3'] : [], clientAddresses: ['10.0.0.0/8'] }, exempt: { applications: ['pg_dump*', `service-${p}-*`] } };
    if (withRules && p >= POLICIES - 2) return { ...scope, maxQueryDuration: '30m', action: 'cancel', terminateAfter: '1m' };
    return { ...scope, ...(withRules ? { maxBlocking: '30s' } : {}), ...(withRules && p % 4 === 0 ? { keepIdle: 4 } : {}), ...(withRules && p % 5 === 1 ? { when: { connectionsAbove: '80%' } } : {}), maxIdle: `${10 + p}m`, maxIdleInTransaction: '2m', maxQueryDuration: '30m', maxConnectionAge: '12h' }; });
  const config = m.cfg.validateConfig({ exempt: { users: ['postgres'] }, targets: [{ name: 't', host: 'db' }], policies });
  const snapshot = { nowMs: now, selfPid: 1, privileges: { superuser: false, signalBackend: true, readAllStats: true }, server: { version: '18.4', versionNum: 180004, user: 'reaper' }, clientSlots: 97, sessions, ...m.ses.aggregatesOf(sessions, now) };
  const policiesC = m.comp.compilePolicies(config, 't');
  const limits = { target: 't', applicationName: 'pg-reaper', maxActionsPerRun: 500 };
  return () => m.plan.plan(snapshot, policiesC, limits).length;
}
const mods = [await load(A), await load(B)];
for (const withRules of [false, true]) {
  const fns = mods.map((m) => fixture(m, withRules));
  console.log(withRules ? 'with rules' : 'thresholds only', 'decisions', fns.map((f) => f()));
  for (let i = 0; i < 30; i++) fns.forEach((f) => f());
  const ratios = [], t = [[], []];
  for (let i = 0; i < 150; i++) {
    const d = [0, 1].map((k) => { const t0 = performance.now(); fns[k](); return performance.now() - t0; });
    t[0].push(d[0]); t[1].push(d[1]); ratios.push(d[1] / d[0]);
  }
  const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  console.log(' A', med(t[0]).toFixed(2), 'ms  B', med(t[1]).toFixed(2), 'ms  ratio B/A', med(ratios).toFixed(3));
}
