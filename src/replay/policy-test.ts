import type { Config } from '../config/schema.js';
import { compilePolicies } from '../policy/compile.js';
import { entryOf } from '../reasons/table.js';
import { UNITS } from '../reasons/units.js';
import { judgeOffline } from '../run/judge.js';
import { settingsFor } from '../run/run-target.js';
import { replayedSnapshot } from './snapshot-file.js';
import type { Expectation, PolicyTest } from './test-file.js';

// One policy test: its sessions judged by the daemon's own planner and the executor's dry-run
// rule, then compared pid by pid with what the test expects.

/** The test's clock: ages are before it, so any fixed time does. */
export const TEST_CLOCK_MS = Date.UTC(2026, 0, 1);

/** What a session got. */
export interface Got {
  action: 'terminate' | 'cancel' | 'none';
  policy?: string;
  reason?: string;
  outcome?: string;
  /** "idle 12m > 10m", for a decision. */
  evidence?: string;
  /** debug's why-not line, for a session not acted on. */
  why?: string;
}

export interface Mismatch {
  pid: number;
  /** undefined: not listed, so none was expected. */
  expected: Expectation | undefined;
  got: Got;
}

export interface TestResult {
  name: string;
  mismatches: Mismatch[];
}

export function runPolicyTest(test: PolicyTest, config: Config): TestResult {
  // The policies as the daemon acts with them: the global dryRun (the switch of a rollout) is
  // left out, so turning it off changes no test; a policy's own dryRun stays. Each decision is
  // then judged as a dry run would have it.
  const acting = { ...config, dryRun: false };
  const policies = compilePolicies(acting, test.target);
  const snapshot = replayedSnapshot(test.sessions, test.server, TEST_CLOCK_MS);
  const judged = judgeOffline(snapshot, settingsFor(acting, test.target, policies), true);

  const got = new Map<number, Got>();
  for (const r of judged.results) {
    const d = r.decision;
    const unit = UNITS[entryOf(d.reason).unit];
    const evidence = `${d.reason} ${unit.format(d.age)} > ${unit.format(d.threshold)}${d.escalated ? ', escalated' : ''}`;
    got.set(d.session.pid, { action: d.action, policy: d.policy, reason: d.reason, outcome: r.outcome, evidence });
  }
  for (const n of judged.notActedOn ?? []) got.set(n.session.pid, { action: 'none', why: n.why });
  const gotOf = (pid: number): Got => got.get(pid) ?? { action: 'none' };

  const mismatches: Mismatch[] = [];
  const listed = new Set(test.expect.map((e) => e.pid));
  for (const e of test.expect) {
    const g = gotOf(e.pid);
    const differs = g.action !== e.action || (e.policy !== undefined && g.policy !== e.policy) || (e.reason !== undefined && g.reason !== e.reason) || (e.outcome !== undefined && g.outcome !== e.outcome);
    if (differs) mismatches.push({ pid: e.pid, expected: e, got: g });
  }
  if (!test.othersAny) {
    for (const s of test.sessions) {
      if (listed.has(s.pid)) continue;
      const g = gotOf(s.pid);
      if (g.action !== 'none') mismatches.push({ pid: s.pid, expected: undefined, got: g });
    }
  }
  mismatches.sort((a, b) => a.pid - b.pid);
  return { name: test.name, mismatches };
}

/** What a test expects of a pid, in the words of the output. */
export function describeExpected(e: Expectation | undefined): string {
  if (e === undefined) return 'none (not listed in expect)';
  if (e.action === 'none') return 'none';
  return `${e.action}${e.policy !== undefined ? ` by ${e.policy}` : ''}${e.reason !== undefined ? ` for ${e.reason}` : ''}${e.outcome !== undefined ? `, ${e.outcome}` : ''}`;
}

export function describeGot(g: Got): string {
  if (g.action === 'none') return 'none';
  return `${g.action} by ${g.policy} for ${g.evidence}, ${g.outcome}`;
}
