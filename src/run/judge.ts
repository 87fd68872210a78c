import type { Snapshot } from '../db/session.js';
import { explain, type NotActedOn } from '../plan/explain.js';
import { plan, type Decision } from '../plan/planner.js';
import { BudgetLedger, budgetRules } from './budget.js';
import { judgeDry } from './executor.js';
import type { ActionResult } from './outcome.js';
import type { RunSettings } from './run-target.js';

// A run's decisions from a snapshot, without the database: the plan, the decisions to act on
// (held ones are not), and why every other session was not acted on when asked. The daemon's
// runs and offline judging (snapshot replay, policy tests) all come through here, so a rule
// has one implementation.

export interface Decided {
  /** Every decision of the plan, held ones (when) included. */
  decisions: Decision[];
  /** The decisions to act on: not held. */
  acting: Decision[];
  notActedOn?: NotActedOn[];
}

/** `ledger`: the target's budgets between runs; a fresh one (every budget with its full room) offline. */
export function decide(snapshot: Snapshot, settings: RunSettings, ledger = new BudgetLedger(), explainAll = settings.explain): Decided {
  const decisions = plan(snapshot, settings.policies, {
    target: settings.target,
    applicationName: settings.applicationName,
    maxActionsPerRun: settings.maxActionsPerRun,
    exemptListeners: settings.exemptListeners,
    protect: settings.protect,
    budget: ledger.room(snapshot.nowMs, budgetRules(settings.budget, settings.policies)),
  });
  const acting = decisions.filter((d) => !d.held);
  const notActedOn = explainAll ? explain(snapshot, settings.policies, settings.applicationName, decisions, settings.exemptListeners, settings.protect) : undefined;
  return { decisions, acting, ...(notActedOn ? { notActedOn } : {}) };
}

/**
 * Offline: the run's decisions, each with its outcome as a dry run has it (the executor's rule).
 * The budgets are those of a daemon that just started: full.
 */
export function judgeOffline(snapshot: Snapshot, settings: RunSettings, explainAll = settings.explain): Decided & { results: ActionResult[] } {
  const decided = decide(snapshot, settings, new BudgetLedger(), explainAll);
  return { ...decided, results: judgeDry(decided.acting, settings.applicationName) };
}
