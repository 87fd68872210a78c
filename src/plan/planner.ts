import type { Session, Snapshot } from '../db/session.js';
import type { CompiledPolicy, Thresholds } from '../policy/compile.js';
import { MAX_INDEXED_POLICIES, ScopeIndex } from '../policy/scope-index.js';

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

// How long a session has been in each condition, computed once per session (NaN where the
// timestamp is NULL, so no comparison holds), and the state as a small number.
const enum Kind {
  Idle,
  IdleInTransaction,
  Active,
  Other,
}

interface Ages {
  kind: Kind;
  state: number;
  query: number;
  xact: number;
  connection: number;
}

function agesOf(s: Session, nowMs: number): Ages {
  const st = s.state;
  const kind = st === 'idle' ? Kind.Idle : st === 'idle in transaction' || st === 'idle in transaction (aborted)' ? Kind.IdleInTransaction : st === 'active' ? Kind.Active : Kind.Other;
  return {
    kind,
    state: s.stateChangeMs === null ? NaN : nowMs - s.stateChangeMs,
    query: s.queryStartMs === null ? NaN : nowMs - s.queryStartMs,
    xact: s.xactStartMs === null ? NaN : nowMs - s.xactStartMs,
    connection: s.backendStartMs === null ? NaN : nowMs - s.backendStartMs,
  };
}

/** The first reason that holds, in the documented order. Runs for every session and policy: comparisons only. */
function reasonOf(a: Ages, t: Limits5): Reason | undefined {
  if (a.kind === Kind.Idle) {
    if (a.state > t.idle) return 'idle';
  } else if (a.kind === Kind.IdleInTransaction) {
    if (a.state > t.idleInTransaction) return 'idle_in_transaction';
  } else if (a.kind === Kind.Active) {
    if (a.query > t.query) return 'query_duration';
  }
  if (a.xact > t.transaction) return 'transaction_duration';
  if (a.connection > t.connection) return 'connection_age';
  return undefined;
}

/** Thresholds in ms, Infinity where the policy has none. */
interface Limits5 {
  idle: number;
  idleInTransaction: number;
  query: number;
  transaction: number;
  connection: number;
}

const limitsCache = new WeakMap<Thresholds, Limits5>();
function limitsOf(t: Thresholds): Limits5 {
  let l = limitsCache.get(t);
  if (!l) {
    l = {
      idle: t.maxIdle ?? Infinity,
      idleInTransaction: t.maxIdleInTransaction ?? Infinity,
      query: t.maxQueryDuration ?? Infinity,
      transaction: t.maxTransactionDuration ?? Infinity,
      connection: t.maxConnectionAge ?? Infinity,
    };
    limitsCache.set(t, l);
  }
  return l;
}

function evidence(reason: Reason, a: Ages, t: Limits5): Violation {
  const [ms, limit] =
    reason === 'idle' ? [a.state, t.idle]
    : reason === 'idle_in_transaction' ? [a.state, t.idleInTransaction]
    : reason === 'query_duration' ? [a.query, t.query]
    : reason === 'transaction_duration' ? [a.xact, t.transaction]
    : [a.connection, t.connection];
  return { reason, seconds: ms / 1000, thresholdSeconds: limit / 1000 };
}

/** The first reason that holds with its evidence (seconds in the condition, threshold), or undefined. */
export function violation(s: Session, t: Thresholds, nowMs: number): Violation | undefined {
  const a = agesOf(s, nowMs);
  const limits = limitsOf(t);
  const reason = reasonOf(a, limits);
  return reason === undefined ? undefined : evidence(reason, a, limits);
}

export function plan(snapshot: Snapshot, policies: readonly CompiledPolicy[], limits: Limits): Decision[] {
  const decisions: Decision[] = [];
  const policyLimits = policies.map((p) => limitsOf(p.thresholds));
  const index = policies.length <= MAX_INDEXED_POLICIES ? new ScopeIndex(policies) : undefined;
  for (const session of snapshot.sessions) {
    // Without visibility (no pg_read_all_stats) a session cannot be judged.
    if (session.backendStart === null || session.application === limits.applicationName) continue;
    const ages = agesOf(session, snapshot.nowMs);
    const scope = index?.scopeOf(session);
    if (scope === 0) continue;
    for (let i = 0; i < policies.length; i++) {
      const policy = policies[i]!;
      if (scope !== undefined ? ((scope >>> i) & 1) === 0 : !policy.inScope(session)) continue;
      const reason = reasonOf(ages, policyLimits[i]!);
      if (reason === undefined) continue;
      decisions.push({ target: limits.target, policy: policy.name, action: policy.action, dryRun: policy.dryRun, session, capped: false, ...evidence(reason, ages, policyLimits[i]!) });
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
