import type { Decision } from '../plan/planner.js';

export const OUTCOMES = ['terminated', 'signalled', 'cancelled', 'would_terminate', 'would_cancel', 'skipped_changed', 'skipped_cap', 'skipped_budget', 'denied', 'failed'] as const;
export type Outcome = (typeof OUTCOMES)[number];

export interface ActionResult {
  decision: Decision;
  outcome: Outcome;
  /** Error text for `failed` (logged, never a metric label). */
  error?: string;
}
