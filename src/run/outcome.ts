import type { Action, Decision } from '../plan/planner.js';

export const OUTCOMES = ['terminated', 'signalled', 'cancelled', 'would_terminate', 'would_cancel', 'skipped_changed', 'skipped_cap', 'skipped_budget', 'denied', 'failed'] as const;
export type Outcome = (typeof OUTCOMES)[number];

/**
 * The outcomes of an offline judgment (snapshot replay, policy tests): a dry run's, and
 * skipped_budget for what a policy that acts would find over its budget in one run.
 */
export const OFFLINE_OUTCOMES = ['would_terminate', 'would_cancel', 'skipped_cap', 'skipped_budget', 'denied'] as const satisfies readonly Outcome[];

export interface ActionResult {
  decision: Decision;
  outcome: Outcome;
  /** Error text for `failed` (logged, never a metric label). */
  error?: string;
  /** `denied` again for a session already reported denied at an earlier run: logged at debug, not counted. */
  repeated?: boolean;
}

// Which decisions an outcome can come of: those of one action only (a cancel is never
// `terminated`), and those of a dry run only (`would_*`) or of a real signal only. An outcome not
// listed here, such as a skip decided before anything is signalled (`skipped_cap`, `denied`), can
// come of any decision: a new outcome added to OUTCOMES is then counted for every policy.
const ONLY: Partial<Record<Outcome, { action?: Action; dryRun: boolean }>> = {
  terminated: { action: 'terminate', dryRun: false },
  signalled: { action: 'terminate', dryRun: false },
  cancelled: { action: 'cancel', dryRun: false },
  would_terminate: { action: 'terminate', dryRun: true },
  would_cancel: { action: 'cancel', dryRun: true },
  skipped_changed: { dryRun: false },
  // a dry run uses no budget
  skipped_budget: { dryRun: false },
  failed: { dryRun: false },
};

/** The outcomes a decision with this action can end in, in a dry-run policy or not. */
export function outcomesOf(action: Action, dryRun: boolean): Outcome[] {
  return OUTCOMES.filter((o) => {
    const only = ONLY[o];
    return only === undefined || ((only.action === undefined || only.action === action) && only.dryRun === dryRun);
  });
}
