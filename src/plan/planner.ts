import type { Session, Snapshot } from '../db/session.js';
import { limitsOf, type CompiledPolicy, type Thresholds } from '../policy/compile.js';
import { MAX_INDEXED_POLICIES, ScopeIndex } from '../policy/scope-index.js';
import { ENTRIES, reasonIndex, type Reason } from '../reasons/table.js';
import { UNITS } from '../reasons/units.js';
import { BudgetRoom, type RoomLeft } from './budget-room.js';
import { keptIdle } from './keep-idle.js';
import { PROTECT_ALL, protectionOf, type Protect } from './protect.js';

// The pure heart of a run: snapshot + policies + limits → decisions. No I/O and no clock but the
// server's, so every rule is testable with a fixed snapshot. What each threshold reason means
// comes from the table of reasons (src/reasons/); the rules that span sessions or policies
// (keepIdle, terminateAfter, when, caps, listeners) are here.

export type Action = 'terminate' | 'cancel';

export interface Decision {
  target: string;
  policy: string;
  reason: Reason;
  action: Action;
  dryRun: boolean;
  session: Session;
  /** The evidence and the threshold it crossed, in the reason's unit (its table entry's `unit`). */
  age: number;
  threshold: number;
  /** How long the session has been in the condition, in seconds: oldest offenders go first. */
  seconds: number;
  /** Over maxActionsPerRun (policy or target): reported as skipped_cap, not signalled. */
  capped: boolean;
  /** A cancel policy's query still running past maxQueryDuration + terminateAfter: terminated instead. */
  escalated?: boolean;
  /** What the reason adds to the decision's log line (blocking: blockedSessions, blockedSeconds). */
  details?: Record<string, number>;
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

const IDLE = reasonIndex('idle');
const QUERY_DURATION = reasonIndex('query_duration');
const R = ENTRIES.length;
/** Reasons exemptListeners spares a listener from. */
const SPARES_LISTENERS = Uint8Array.from(ENTRIES, (e) => (e.sparesListeners ? 1 : 0));

/** Each reason's snapshot-wide facts (lock chains), worked out once, for the reasons some policy has. */
export function reasonContexts(snapshot: Snapshot, policies: readonly CompiledPolicy[]): unknown[] {
  return ENTRIES.map((e, r) => (e.context && policies.some((p) => p.limits[r]! !== Infinity) ? e.context(snapshot) : undefined));
}

/** Options of a policy by position in the table, for a policy built from thresholds alone. */
const NO_OPTIONS: readonly undefined[] = ENTRIES.map(() => undefined);

/**
 * The first of the policy's reasons (positions `reasons`, thresholds `limits`, `options`) whose
 * age is over its threshold and that no rule and no option spares, or -1. Runs for every session
 * and policy in scope: comparisons only, until a session is past a threshold.
 */
function firstReason(ages: Float64Array, reasons: Uint8Array, limits: Float64Array, options: readonly (Readonly<Record<string, unknown>> | undefined)[], s: Session, contexts: readonly unknown[], spared: boolean, keptIdle: boolean): number {
  for (let j = 0; j < reasons.length; j++) {
    const r = reasons[j]!;
    if (!(ages[r]! > limits[r]!)) continue;
    if (spared && SPARES_LISTENERS[r] === 1) continue;
    if (keptIdle && r === IDLE) continue;
    const refuses = ENTRIES[r]!.refuses;
    if (refuses !== undefined && refuses(s, contexts[r], options[r] ?? {}) !== undefined) continue;
    return r;
  }
  return -1;
}

/** A reason's unit base by position (durations: 1000 ms a second). */
const BASE = Float64Array.from(ENTRIES, (e) => UNITS[e.unit].base);

interface Evidence {
  reason: Reason;
  age: number;
  threshold: number;
  seconds: number;
  details?: Record<string, number>;
}

/** Writes reason r's evidence into `into`: property by property, no spread (it runs for every decision). */
function withEvidence<T extends object>(into: T, r: number, s: Session, nowMs: number, ages: Float64Array, limits: Float64Array, contexts: readonly unknown[]): T & Evidence {
  const e = ENTRIES[r]!;
  const o = into as T & Evidence;
  const age = ages[r]! / BASE[r]!;
  o.reason = e.reason;
  o.age = age;
  o.threshold = limits[r]! / BASE[r]!;
  o.seconds = e.seconds === undefined ? age : e.seconds(s, nowMs);
  if (e.details !== undefined) o.details = e.details(s, contexts[r]);
  return o;
}

/** The ages of the reasons some policy has (positions `used`); the others are never read. */
function readAges(into: Float64Array, s: Session, nowMs: number, used: Uint8Array, contexts: readonly unknown[]): void {
  for (let k = 0; k < used.length; k++) {
    const r = used[k]!;
    into[r] = ENTRIES[r]!.age(s, nowMs, contexts[r]);
  }
}

/** The first reason that holds with its evidence, or undefined (the why-not lines). */
export function violation(s: Session, t: Thresholds, nowMs: number, contexts: readonly unknown[] = [], options: readonly (Readonly<Record<string, unknown>> | undefined)[] = NO_OPTIONS): Evidence | undefined {
  const limits = limitsOf(t);
  const used = Uint8Array.from(ENTRIES.keys()).filter((r) => limits[r] !== Infinity && (ENTRIES[r]!.context === undefined || contexts[r] !== undefined));
  const ages = new Float64Array(R).fill(NaN);
  readAges(ages, s, nowMs, used, contexts);
  const r = firstReason(ages, Uint8Array.from(ENTRIES.keys()), limits, options, s, contexts, false, false);
  return r < 0 ? undefined : withEvidence({}, r, s, nowMs, ages, limits, contexts);
}

export function plan(snapshot: Snapshot, policies: readonly CompiledPolicy[], limits: Limits): Decision[] {
  const decisions: Decision[] = [];
  const index = policies.length <= MAX_INDEXED_POLICIES ? new ScopeIndex(policies) : undefined;
  const exemptListeners = limits.exemptListeners ?? true;
  // the reasons some policy has: the others' ages are never read
  const used = Uint8Array.from(ENTRIES.keys()).filter((r) => policies.some((p) => p.limits[r]! !== Infinity));
  // the facts that look at more than one session, worked out once per plan
  const contexts = reasonContexts(snapshot, policies);
  const kept = policies.map((p) => (p.keepIdle !== undefined ? keptIdle(snapshot, p, limits.applicationName) : undefined));
  const protect = limits.protect ?? PROTECT_ALL;
  const ages = new Float64Array(R).fill(NaN);
  for (const session of snapshot.sessions) {
    // Without visibility (no pg_read_all_stats) a session cannot be judged.
    if (session.backendStart === null || session.application === limits.applicationName) continue;
    if (protectionOf(session, protect) !== undefined) continue;
    const scope = index?.scopeOf(session);
    if (scope === 0) continue;
    readAges(ages, session, snapshot.nowMs, used, contexts);
    const spared = exemptListeners && session.listener;
    for (let i = 0; i < policies.length; i++) {
      const policy = policies[i]!;
      if (scope !== undefined ? ((scope >>> i) & 1) === 0 : !policy.inScope(session)) continue;
      const keptHere = kept[i]?.has(session.pid) ?? false;
      const r = firstReason(ages, policy.reasons, policy.limits, policy.options, session, contexts, spared, keptHere);
      if (r < 0) {
        // a session this policy keeps (keepIdle) is decided by it, like one it holds (when):
        // later policies never see it, so a catch-all below cannot kill what a pool policy kept
        if (keptHere) break;
        continue;
      }
      const d: Decision = withEvidence({ target: limits.target, policy: policy.name, action: policy.action, dryRun: policy.dryRun, session, capped: false } as Decision, r, session, snapshot.nowMs, ages, policy.limits, contexts);
      // escalation without memory: the same query (query_start) still running past the cancel's
      // deadline says the cancel did not work
      if (r === QUERY_DURATION && policy.terminateAfter !== undefined && ages[r]! > policy.limits[r]! + policy.terminateAfter) {
        d.action = 'terminate';
        d.escalated = true;
        d.threshold = (policy.limits[r]! + policy.terminateAfter) / 1000;
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
