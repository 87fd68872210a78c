import type { Session, Snapshot } from '../db/session.js';
import type { CompiledPolicy, Thresholds } from '../policy/compile.js';

// The pure heart of a run: snapshot + policies + limits → decisions. No I/O and no clock but the
// server's, so every rule is testable with a fixed snapshot.

export const REASONS = ['idle', 'idle_in_transaction', 'query_duration', 'transaction_duration', 'connection_age'] as const;
export type Reason = (typeof REASONS)[number];
export type Action = 'terminate' | 'cancel';

export interface Decision {
  target: string;
  policy: string;
  reason: Reason;
  action: Action;
  dryRun: boolean;
  session: Session;
  /** How long the session has been in the condition, in seconds. */
  seconds: number;
  thresholdSeconds: number;
  /** Over maxActionsPerRun (policy or target): reported as skipped_cap, not signalled. */
  capped: boolean;
}

export interface Limits {
  target: string;
  /** Our own application_name: those sessions are never in scope, whichever replica owns them. */
  applicationName: string;
  maxActionsPerRun?: number | undefined;
}

interface Violation {
  reason: Reason;
  seconds: number;
  thresholdSeconds: number;
}

const IDLE_IN_TX = new Set(['idle in transaction', 'idle in transaction (aborted)']);

/** The first reason that holds, in the documented order, or undefined. */
export function violation(s: Session, t: Thresholds, nowMs: number): Violation | undefined {
  const over = (reason: Reason, since: number | null, limit: number | undefined): Violation | undefined => {
    if (limit === undefined || since === null) return undefined;
    const ms = nowMs - since;
    return ms > limit ? { reason, seconds: ms / 1000, thresholdSeconds: limit / 1000 } : undefined;
  };
  return (
    (s.state === 'idle' ? over('idle', s.stateChangeMs, t.maxIdle) : undefined) ??
    (s.state !== null && IDLE_IN_TX.has(s.state) ? over('idle_in_transaction', s.stateChangeMs, t.maxIdleInTransaction) : undefined) ??
    (s.state === 'active' ? over('query_duration', s.queryStartMs, t.maxQueryDuration) : undefined) ??
    over('transaction_duration', s.xactStartMs, t.maxTransactionDuration) ??
    over('connection_age', s.backendStartMs, t.maxConnectionAge)
  );
}

export function plan(snapshot: Snapshot, policies: readonly CompiledPolicy[], limits: Limits): Decision[] {
  const decisions: Decision[] = [];
  for (const session of snapshot.sessions) {
    // Without visibility (no pg_read_all_stats) a session cannot be judged.
    if (session.backendStart === null || session.application === limits.applicationName) continue;
    for (const policy of policies) {
      if (!policy.inScope(session)) continue;
      const v = violation(session, policy.thresholds, snapshot.nowMs);
      if (!v) continue;
      decisions.push({ target: limits.target, policy: policy.name, action: policy.action, dryRun: policy.dryRun, session, capped: false, ...v });
      break;
    }
  }
  decisions.sort((a, b) => b.seconds - a.seconds || a.session.pid - b.session.pid);
  applyCaps(decisions, policies, limits.maxActionsPerRun);
  return decisions;
}

// Oldest first: the caps keep the sessions that have broken a policy the longest. Sessions we may
// not signal take no slot, since nothing will be done to them.
function applyCaps(decisions: Decision[], policies: readonly CompiledPolicy[], targetCap: number | undefined): void {
  const policyCap = new Map(policies.map((p) => [p.name, p.maxActionsPerRun]));
  const perPolicy = new Map<string, number>();
  let total = 0;
  for (const d of decisions) {
    if (!d.session.canSignal) continue;
    const used = perPolicy.get(d.policy) ?? 0;
    const cap = policyCap.get(d.policy);
    if ((cap !== undefined && used >= cap) || (targetCap !== undefined && total >= targetCap)) {
      d.capped = true;
      continue;
    }
    perPolicy.set(d.policy, used + 1);
    total++;
  }
}
