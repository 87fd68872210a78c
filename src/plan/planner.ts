import type { Session, Snapshot } from '../db/session.js';
import type { CompiledPolicy, Thresholds } from '../policy/compile.js';
import { MAX_INDEXED_POLICIES, ScopeIndex } from '../policy/scope-index.js';
import { blockingRoots, type Blocking } from './blocking.js';
import { BudgetRoom, type RoomLeft } from './budget-room.js';
import { keptIdle } from './keep-idle.js';
import { PROTECT_ALL, protectionOf, type Protect } from './protect.js';

// The pure heart of a run: snapshot + policies + limits → decisions. No I/O and no clock but the
// server's, so every rule is testable with a fixed snapshot.

export const REASONS = ['blocking', 'idle', 'idle_in_transaction', 'query_duration', 'transaction_duration', 'connection_age'] as const;
export type Reason = (typeof REASONS)[number];
export type Action = 'terminate' | 'cancel';

export interface Decision {
  target: string;
  policy: string;
  reason: Reason;
  action: Action;
  dryRun: boolean;
  session: Session;
  /** How long the session has been in the condition, in seconds (blocking: the longest wait on it). */
  seconds: number;
  thresholdSeconds: number;
  /** Over maxActionsPerRun (policy or target): reported as skipped_cap, not signalled. */
  capped: boolean;
  /** A cancel policy's query still running past maxQueryDuration + terminateAfter: terminated instead. */
  escalated?: boolean;
  /** blocking: how many sessions wait on it, directly or through others. */
  blockedSessions?: number;
  /** A match of a policy with `when` while connections are not above its threshold: not acted on. */
  held?: boolean;
  /** The budget that refused it (the target's or its policy's): reported as skipped_budget. */
  overBudget?: 'target' | 'policy';
}

export interface Limits {
  target: string;
  /** Our own application_name: those sessions are never in scope, whichever replica owns them. */
  applicationName: string;
  maxActionsPerRun?: number | undefined;
  /** Spare sessions whose last statement was LISTEN from idle and connection_age (default true). */
  exemptListeners?: boolean;
  /** Backups and maintenance no policy acts on (default: both). */
  protect?: Protect;
  /** Actions the budgets' windows still allow (default: no budget). Dry runs use none. */
  budget?: RoomLeft | undefined;
}

interface Violation {
  reason: Reason;
  seconds: number;
  thresholdSeconds: number;
}

// How long a session has been in each condition, computed once per session (NaN where the
// timestamp is NULL or the condition does not apply, so no comparison holds), and the state as a
// small number.
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
  /** The longest wait on this session, when it blocks others and waits on nothing itself. */
  blocking: number;
  /** A listener that exemptListeners spares from idle and connection_age. */
  spared: boolean;
}

function agesOf(s: Session, nowMs: number, blocking: Blocking | undefined, exemptListeners: boolean): Ages {
  const st = s.state;
  const kind = st === 'idle' ? Kind.Idle : st === 'idle in transaction' || st === 'idle in transaction (aborted)' ? Kind.IdleInTransaction : st === 'active' ? Kind.Active : Kind.Other;
  return {
    kind,
    state: s.stateChangeMs === null ? NaN : nowMs - s.stateChangeMs,
    query: s.queryStartMs === null ? NaN : nowMs - s.queryStartMs,
    xact: s.xactStartMs === null ? NaN : nowMs - s.xactStartMs,
    connection: s.backendStartMs === null ? NaN : nowMs - s.backendStartMs,
    blocking: blocking?.longestMs ?? NaN,
    spared: exemptListeners && s.listener,
  };
}

/** Thresholds in ms, Infinity where the policy has none. */
interface Limits6 {
  blocking: number;
  idle: number;
  idleInTransaction: number;
  query: number;
  transaction: number;
  connection: number;
}

/** The first reason that holds, in the documented order. Runs for every session and policy: comparisons only. */
function reasonOf(a: Ages, t: Limits6, keepIdle: boolean): Reason | undefined {
  if (a.blocking > t.blocking) return 'blocking';
  if (a.kind === Kind.Idle) {
    if (a.state > t.idle && !a.spared && !keepIdle) return 'idle';
  } else if (a.kind === Kind.IdleInTransaction) {
    if (a.state > t.idleInTransaction) return 'idle_in_transaction';
  } else if (a.kind === Kind.Active) {
    if (a.query > t.query) return 'query_duration';
  }
  if (a.xact > t.transaction) return 'transaction_duration';
  if (a.connection > t.connection && !a.spared) return 'connection_age';
  return undefined;
}

const limitsCache = new WeakMap<Thresholds, Limits6>();
function limitsOf(t: Thresholds): Limits6 {
  let l = limitsCache.get(t);
  if (!l) {
    l = {
      blocking: t.maxBlocking ?? Infinity,
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

function evidence(reason: Reason, a: Ages, t: Limits6): Violation {
  const [ms, limit] =
    reason === 'blocking' ? [a.blocking, t.blocking]
    : reason === 'idle' ? [a.state, t.idle]
    : reason === 'idle_in_transaction' ? [a.state, t.idleInTransaction]
    : reason === 'query_duration' ? [a.query, t.query]
    : reason === 'transaction_duration' ? [a.xact, t.transaction]
    : [a.connection, t.connection];
  return { reason, seconds: ms / 1000, thresholdSeconds: limit / 1000 };
}

/** The first reason that holds with its evidence (seconds in the condition, threshold), or undefined. */
export function violation(s: Session, t: Thresholds, nowMs: number): Violation | undefined {
  const a = agesOf(s, nowMs, undefined, false);
  const limits = limitsOf(t);
  const reason = reasonOf(a, limits, false);
  return reason === undefined ? undefined : evidence(reason, a, limits);
}

export function plan(snapshot: Snapshot, policies: readonly CompiledPolicy[], limits: Limits): Decision[] {
  const decisions: Decision[] = [];
  const policyLimits = policies.map((p) => limitsOf(p.thresholds));
  const index = policies.length <= MAX_INDEXED_POLICIES ? new ScopeIndex(policies) : undefined;
  const exemptListeners = limits.exemptListeners ?? true;
  // the rules that look at more than one session, worked out once per plan
  const roots = policies.some((p) => p.thresholds.maxBlocking !== undefined) ? blockingRoots(snapshot) : undefined;
  const kept = policies.map((p) => (p.keepIdle !== undefined ? keptIdle(snapshot, p, limits.applicationName) : undefined));
  const protect = limits.protect ?? PROTECT_ALL;
  for (const session of snapshot.sessions) {
    // Without visibility (no pg_read_all_stats) a session cannot be judged.
    if (session.backendStart === null || session.application === limits.applicationName) continue;
    if (protectionOf(session, protect) !== undefined) continue;
    const blocking = roots?.get(session.pid);
    const ages = agesOf(session, snapshot.nowMs, blocking, exemptListeners);
    const scope = index?.scopeOf(session);
    if (scope === 0) continue;
    for (let i = 0; i < policies.length; i++) {
      const policy = policies[i]!;
      if (scope !== undefined ? ((scope >>> i) & 1) === 0 : !policy.inScope(session)) continue;
      const l = policyLimits[i]!;
      const keptHere = kept[i]?.has(session.pid) ?? false;
      const reason = reasonOf(ages, l, keptHere);
      if (reason === undefined) {
        // a session this policy keeps (keepIdle) is decided by it, like one it holds (when):
        // later policies never see it, so a catch-all below cannot kill what a pool policy kept
        if (keptHere) break;
        continue;
      }
      const d: Decision = { target: limits.target, policy: policy.name, action: policy.action, dryRun: policy.dryRun, session, capped: false, ...evidence(reason, ages, l) };
      if (reason === 'blocking') d.blockedSessions = blocking!.sessions;
      // escalation without memory: the same query (query_start) still running past the cancel's
      // deadline says the cancel did not work
      if (reason === 'query_duration' && policy.terminateAfter !== undefined && ages.query > l.query + policy.terminateAfter) {
        d.action = 'terminate';
        d.escalated = true;
        d.thresholdSeconds = (l.query + policy.terminateAfter) / 1000;
      }
      decisions.push(d);
      break;
    }
  }
  decisions.sort((a, b) => b.seconds - a.seconds || a.session.pid - b.session.pid);
  applyLimits(decisions, policies, snapshot, limits.maxActionsPerRun, limits.budget);
  return decisions;
}

// Budgets, caps and pressure, oldest first. The budgets (the room left in the policy's and the
// target's) and the caps (the policy's maxActionsPerRun, then the target's) apply first to the
// decisions of policies without `when`. Then the matches of policies with
// `when: { connectionsAbove }`, oldest first, within what the budgets and caps leave: each acts
// while the server's client connections (every client backend, ours included), less the
// terminations that will really be signalled in this run, are above its threshold, and is held
// (matched, not acted on, taking no slot and no budget) once they are not. Only what will be
// signalled frees a connection: not a decision that is over a budget, capped, held, dry-run or
// that we may not signal.
function applyLimits(decisions: Decision[], policies: readonly CompiledPolicy[], snapshot: Snapshot, targetCap: number | undefined, room: RoomLeft | undefined): void {
  const slots = new Slots(policies, targetCap, room);
  const above = new Map(policies.filter((p) => p.connectionsAbove !== undefined).map((p) => [p.name, p.connectionsAbove!]));
  let connections = snapshot.clients + 1;
  for (const d of decisions) {
    if (above.has(d.policy)) continue;
    slots.take(d);
    if (frees(d)) connections--;
  }
  if (above.size === 0) return;
  for (const d of decisions) {
    const when = above.get(d.policy);
    if (when === undefined) continue;
    const threshold = 'percent' in when ? (when.percent / 100) * snapshot.clientSlots : when.count;
    if (connections <= threshold) {
      d.held = true;
      continue;
    }
    slots.take(d);
    if (frees(d)) connections--;
  }
}

/** A decision that will be signalled as a termination: the only kind that frees a connection. */
function frees(d: Decision): boolean {
  return d.action === 'terminate' && d.session.canSignal && !d.dryRun && !d.capped && !d.held && d.overBudget === undefined;
}

// The budgets' room and the caps' counters, taken oldest offender first. Sessions we may not
// signal take no slot and no budget, since nothing will be done to them; a decision over a budget
// (checked first) takes no slot, and what a cap refuses uses no budget. Dry runs use no budget.
class Slots {
  private readonly policyCap: Map<string, number | undefined>;
  private readonly perPolicy = new Map<string, number>();
  private readonly budget: BudgetRoom;
  private total = 0;

  constructor(
    policies: readonly CompiledPolicy[],
    private readonly targetCap: number | undefined,
    room: RoomLeft | undefined,
  ) {
    this.policyCap = new Map(policies.map((p) => [p.name, p.maxActionsPerRun]));
    this.budget = new BudgetRoom(room);
  }

  /** Gives the decision a slot, or marks it over a budget or capped. */
  take(d: Decision): void {
    if (!d.session.canSignal) return;
    const over = d.dryRun ? undefined : this.budget.over(d.policy);
    if (over !== undefined) {
      d.overBudget = over;
      return;
    }
    const used = this.perPolicy.get(d.policy) ?? 0;
    const cap = this.policyCap.get(d.policy);
    if ((cap !== undefined && used >= cap) || (this.targetCap !== undefined && this.total >= this.targetCap)) {
      d.capped = true;
      return;
    }
    this.perPolicy.set(d.policy, used + 1);
    this.total++;
    if (!d.dryRun) this.budget.take(d.policy);
  }
}
