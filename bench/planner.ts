import { performance } from 'node:perf_hooks';
import { validateConfig } from '../src/config/load.js';
import { aggregatesOf, type Session, type Snapshot } from '../src/db/session.js';
import { plan } from '../src/plan/planner.js';
import { compilePolicies } from '../src/policy/compile.js';
import { settings } from './lib/options.js';
import { writeResult, log, type PartResult } from './lib/results.js';
import { round, summarize } from './lib/stats.js';
import { check } from './lib/verdict.js';

// 3. The pure planner: 10,000 sessions × 20 policies. Policies look like a real fleet's (globs on
// users and applications, a CIDR, exemptions); most sessions fall through every policy, the worst
// case for the loop.

const SESSIONS = 10_000;
const POLICIES = 20;
export const SETTINGS = { iterations: 200 };
const QUICK = { iterations: 20 };

function fixture(withRules: boolean): { snapshot: Snapshot; config: ReturnType<typeof validateConfig> } {
  const now = Date.UTC(2026, 10, 22, 12);
  let seed = 42;
  const rand = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
  const states = ['idle', 'idle', 'idle', 'active', 'idle in transaction', 'idle in transaction (aborted)'];
  const sessions: Session[] = Array.from({ length: SESSIONS }, (_, i) => {
    const age = rand() * 7200 * 1000;
    return {
      pid: 10_000 + i,
      user: `team${i % 40}_svc`,
      database: `db${i % 7}`,
      application: `service-${i % 50}-worker`,
      clientAddr: `10.${i % 4}.${(i >> 8) % 256}.${i % 256}`,
      local: false,
      state: states[i % states.length]!,
      backendStartMs: now - age - 60_000,
      xactStartMs: now - age,
      queryStartMs: now - age,
      stateChangeMs: now - age,
      backendStart: `bs${i}`,
      stateChange: `sc${i}`,
      queryStart: `qs${i}`,
      xactStart: `xs${i}`,
      superuser: false,
      canSignal: true,
      blockedBy: null as number[] | null,
      waitStartMs: null as number | null,
      listener: withRules && i % 97 === 0,
      maintenance: null,
      queryId: null,
    };
  });
  if (withRules) {
    // 2 % of the sessions wait on a lock held by an earlier session, some in chains
    for (let i = 50; i < sessions.length; i += 50) {
      sessions[i] = { ...sessions[i]!, state: 'active', blockedBy: [10_000 + i - 7 - (i % 3)], waitStartMs: now - rand() * 120_000 };
    }
  }
  const policies = Array.from({ length: POLICIES }, (_, p) => {
    const scope = {
      name: `policy-${p}`,
      match: { users: [`team${p}_*`, `team${p + 20}_*`], databases: p % 2 ? ['db1', 'db3'] : [], clientAddresses: ['10.0.0.0/8'] },
      exempt: { applications: ['pg_dump*', `service-${p}-*`] },
    };
    // with the rules: two cancel policies that escalate, blockers everywhere, kept idle pools,
    // and policies that act only under connection pressure
    if (withRules && p >= POLICIES - 2) return { ...scope, maxQueryDuration: '30m', action: 'cancel', terminateAfter: '1m' };
    return {
      ...scope,
      ...(withRules ? { maxBlocking: '30s' } : {}),
      ...(withRules && p % 4 === 0 ? { keepIdle: 4 } : {}),
      ...(withRules && p % 5 === 1 ? { when: { connectionsAbove: '80%' } } : {}),
      maxIdle: `${10 + p}m`,
      maxIdleInTransaction: '2m',
      maxQueryDuration: '30m',
      maxConnectionAge: '12h',
    };
  });
  const config = validateConfig({ exempt: { users: ['postgres'] }, targets: [{ name: 't', host: 'db' }], policies });
  return { snapshot: { nowMs: now, selfPid: 1, privileges: { superuser: false, signalBackend: true, readAllStats: true }, server: { version: '18.4', versionNum: 180004, user: 'reaper' }, clientSlots: 97, sessions, ...aggregatesOf(sessions, now) }, config };
}

function measure(withRules: boolean, iterations: number): { ms: ReturnType<typeof summarize>; decisions: number; nsPerSessionPolicy: number } {
  const { snapshot, config } = fixture(withRules);
  const policies = compilePolicies(config, 't');
  const limits = { target: 't', applicationName: 'pg-reaper', maxActionsPerRun: 500 };
  let decisions = 0;
  for (let i = 0; i < 20; i++) decisions = plan(snapshot, policies, limits).length;
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    plan(snapshot, policies, limits);
    times.push(performance.now() - t0);
  }
  const ms = summarize(times);
  return { ms, decisions, nsPerSessionPolicy: round((ms.median * 1e6) / (SESSIONS * POLICIES), 1) };
}

export async function benchPlanner(): Promise<Record<string, unknown>> {
  const t0 = Date.now();
  const s = settings('planner', SETTINGS, QUICK);
  const plain = measure(false, s.iterations);
  const rules = measure(true, s.iterations);
  const result: PartResult = {
    describes:
      `The pure planner on ${SESSIONS} sessions × ${POLICIES} policies (globs, a CIDR, exemptions), ${s.iterations} iterations after 20 of warm-up, in this process. ` +
      'With the rules: every policy has maxBlocking, every fourth keepIdle, every fifth a when, two cancel policies terminateAfter; 2 % of the sessions wait on locks (some in chains) and 1 % are listeners. Thresholds only: the same without those rules.',
    settings: s,
    sessions: SESSIONS,
    policies: POLICIES,
    // the headline: with maxBlocking, keepIdle, when, terminateAfter and listeners in play
    decisions: rules.decisions,
    ms: rules.ms,
    nsPerSessionPolicy: rules.nsPerSessionPolicy,
    withoutRules: plain,
    checks: [
      check(`plan of ${SESSIONS} × ${POLICIES} with the rules, median`, rules.ms.median, '<=', 20, 'ms', 'issue 3'),
      check(`plan of ${SESSIONS} × ${POLICIES}, thresholds only, median`, plain.ms.median, '<=', 20, 'ms', 'issue 3'),
    ],
  };
  log(`planner: ${round(rules.ms.median)} ms median with the rules (${rules.nsPerSessionPolicy} ns per session per policy, ${rules.decisions} decisions); ${round(plain.ms.median)} ms without`);
  writeResult('planner', t0, result);
  return result;
}
