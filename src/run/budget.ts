import type { Budget } from '../config/schema.js';
import type { RoomLeft } from '../plan/budget-room.js';
import type { ActionResult } from './outcome.js';

// The budgets between runs: when each target's terminations and cancellations happened (on the
// server's clock, as the snapshot read it), per budget, over a sliding window. The run loop keeps
// one ledger per target, in memory: a restart starts it empty, and so does the replica that
// takes over a target. The planner gets only the room left (RoomLeft); this decides nothing.

export interface BudgetRules {
  /** The target's own budget (the top-level `budget`); null: off. */
  target: Budget | null;
  /** Each policy that has a budget of its own. */
  policies: ReadonlyMap<string, Budget>;
}

export interface BudgetState {
  /** '' for the target's own budget, else the policy's name (the metric's policy label). */
  policy: string;
  maxActions: number;
  windowMs: number;
  /** Actions in the window, this run's included. */
  used: number;
  /** Decisions this budget refused in this run (skipped_budget). */
  skipped: number;
  /** It refused a decision, and its window has not freed room since. */
  exhausted: boolean;
  /** This run tripped it or found room in it again: logged once, not at every run. */
  change?: 'tripped' | 'reset';
  /** When used up: ms until the oldest action leaves the window. */
  freesInMs?: number;
}

/** What a signal was sent for: only these use budget. */
const SPENT = new Set(['terminated', 'signalled', 'cancelled']);

export class BudgetLedger {
  /** Per budget ('' or a policy name): when its actions happened, oldest first. */
  private readonly spent = new Map<string, number[]>();
  private readonly exhausted = new Set<string>();

  /** What each budget still allows at `nowMs` (server clock). */
  room(nowMs: number, rules: BudgetRules): RoomLeft {
    const policies = new Map<string, number>();
    for (const [name, rule] of rules.policies) policies.set(name, rule.maxActions - this.inWindow(name, rule, nowMs).length);
    return { ...(rules.target ? { target: rules.target.maxActions - this.inWindow('', rules.target, nowMs).length } : {}), policies };
  }

  /** Records the run's signals (at `nowMs`, the run's server clock) and where each budget stands. */
  settle(nowMs: number, rules: BudgetRules, results: readonly ActionResult[]): BudgetState[] {
    const scopes = new Map<string, Budget>([...(rules.target ? [['', rules.target] as const] : []), ...rules.policies]);
    const skipped = new Map<string, number>();
    for (const r of results) {
      const d = r.decision;
      if (r.outcome === 'skipped_budget') {
        const scope = d.overBudget === 'policy' ? d.policy : '';
        skipped.set(scope, (skipped.get(scope) ?? 0) + 1);
      } else if (SPENT.has(r.outcome) && !d.dryRun) {
        for (const scope of ['', d.policy]) if (scopes.has(scope)) this.list(scope).push(nowMs);
      }
    }
    // a budget removed by a reload is forgotten
    for (const scope of [...this.spent.keys()]) if (!scopes.has(scope)) this.spent.delete(scope);
    for (const scope of [...this.exhausted]) if (!scopes.has(scope)) this.exhausted.delete(scope);

    const states: BudgetState[] = [];
    for (const [scope, rule] of scopes) {
      const inWindow = this.inWindow(scope, rule, nowMs);
      this.spent.set(scope, inWindow);
      const refused = skipped.get(scope) ?? 0;
      const was = this.exhausted.has(scope);
      const used = inWindow.length;
      const exhausted = refused > 0 || (was && used >= rule.maxActions);
      if (exhausted) this.exhausted.add(scope);
      else this.exhausted.delete(scope);
      states.push({
        policy: scope,
        maxActions: rule.maxActions,
        windowMs: rule.window,
        used,
        skipped: refused,
        exhausted,
        ...(exhausted !== was ? { change: exhausted ? ('tripped' as const) : ('reset' as const) } : {}),
        ...(used >= rule.maxActions && used > 0 ? { freesInMs: inWindow[used - rule.maxActions]! + rule.window - nowMs } : {}),
      });
    }
    return states;
  }

  private list(scope: string): number[] {
    let l = this.spent.get(scope);
    if (!l) this.spent.set(scope, (l = []));
    return l;
  }

  /** The budget's actions still in its window at `nowMs`: those less than `window` ago. */
  private inWindow(scope: string, rule: Budget, nowMs: number): number[] {
    return (this.spent.get(scope) ?? []).filter((at) => at > nowMs - rule.window);
  }
}

/** The budgets that apply to a target's runs. */
export function budgetRules(target: Budget | null, policies: readonly { name: string; budget: Budget | undefined }[]): BudgetRules {
  return { target, policies: new Map(policies.flatMap((p) => (p.budget ? [[p.name, p.budget] as const] : []))) };
}
