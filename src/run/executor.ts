import type { Db } from '../db/db.js';
import { remainingBackends, signalBackends, type Victim } from '../db/signal.js';
import type { Action, Decision } from '../plan/planner.js';
import { entryOf } from '../reasons/table.js';
import { describeError } from '../util/errors.js';
import type { ActionResult, Outcome } from './outcome.js';

// The one place that signals backends. It owns dry-run, caps, budgets and privileges as
// outcomes, the race guard (in the SQL), error isolation per victim and the confirmation of exits.

export interface ExecuteDeps {
  db: Db;
  applicationName: string;
  terminateTimeoutMs: number;
  sleep: (ms: number) => Promise<void>;
  /** Monotonic milliseconds, for the confirmation deadline. */
  now: () => number;
}

export async function execute(decisions: readonly Decision[], deps: ExecuteDeps): Promise<ActionResult[]> {
  const results = new Map<Decision, ActionResult>();
  const live: Record<Action, Decision[]> = { terminate: [], cancel: [] };
  for (const d of decisions) {
    const outcome = settledOutcome(d, deps.applicationName);
    if (outcome) results.set(d, { decision: d, outcome });
    else live[d.action].push(d);
  }

  const signalled: Decision[] = [];
  for (const action of ['cancel', 'terminate'] as const) {
    for (const r of await signal(action, live[action], deps)) {
      if (r.outcome === 'signalled' && action === 'terminate') signalled.push(r.decision);
      else results.set(r.decision, r);
    }
  }
  for (const r of await confirmExits(signalled, deps)) results.set(r.decision, r);
  return decisions.map((d) => results.get(d)!);
}

/**
 * What a decision comes to without a signal: denied (we may not signal it), skipped_budget,
 * skipped_cap, a dry run's would_terminate / would_cancel, or skipped_changed (not a candidate);
 * undefined when it is to be signalled.
 */
export function settledOutcome(d: Decision, applicationName: string): Outcome | undefined {
  if (!d.session.canSignal) return 'denied';
  if (d.overBudget !== undefined) return 'skipped_budget';
  if (d.capped) return 'skipped_cap';
  if (d.dryRun) return d.action === 'terminate' ? 'would_terminate' : 'would_cancel';
  if (d.session.backendStart === null || d.session.application === applicationName) return 'skipped_changed';
  return undefined;
}

/**
 * Offline judging (snapshot replay, policy tests): every decision as a dry run has it, nothing
 * signalled. Decisions of policies that would act for real are judged as dry runs of themselves.
 */
export function judgeDry(decisions: readonly Decision[], applicationName: string): ActionResult[] {
  return decisions.map((d) => {
    const dry = d.dryRun ? d : { ...d, dryRun: true };
    return { decision: dry, outcome: settledOutcome(dry, applicationName)! };
  });
}

// What the kill statement re-checks for a decision: identity, and the fact its reason rests on.
export function victim(d: Decision): Victim {
  const s = d.session;
  return { pid: s.pid, backendStart: s.backendStart!, reason: d.reason, state: s.state, fact: entryOf(d.reason).guard.fact(s) };
}

async function signal(action: Action, batch: Decision[], deps: ExecuteDeps): Promise<ActionResult[]> {
  if (batch.length === 0) return [];
  try {
    const answers = await signalBackends(deps.db, action, batch.map(victim), deps.applicationName);
    return batch.map((d) => toResult(d, answers.get(d.session.pid) ?? null));
  } catch {
    // One victim's error (say a role made superuser since the snapshot) must not cost the
    // others: retry one statement per victim, each guarded the same way.
    const out: ActionResult[] = [];
    for (const d of batch) {
      try {
        const answers = await signalBackends(deps.db, action, [victim(d)], deps.applicationName);
        out.push(toResult(d, answers.get(d.session.pid) ?? null));
      } catch (err) {
        out.push({ decision: d, outcome: 'failed', error: describeError(err) });
      }
    }
    return out;
  }
}

function toResult(d: Decision, signalled: boolean | null): ActionResult {
  if (signalled !== true) return { decision: d, outcome: 'skipped_changed' };
  return { decision: d, outcome: d.action === 'terminate' ? 'signalled' : 'cancelled' };
}

// One query per poll for the whole batch, backing off from 10 ms to 200 ms, until every backend
// is gone or terminateTimeout passes. Still there at the deadline: `signalled`.
async function confirmExits(batch: Decision[], deps: ExecuteDeps): Promise<ActionResult[]> {
  if (batch.length === 0) return [];
  const deadline = deps.now() + deps.terminateTimeoutMs;
  let waiting = batch;
  let pause = 10;
  let lastError: string | undefined;
  const done: ActionResult[] = [];
  for (;;) {
    try {
      const remaining = await remainingBackends(deps.db, waiting.map(victim));
      for (const d of waiting) if (!remaining.has(d.session.pid)) done.push({ decision: d, outcome: 'terminated' });
      waiting = waiting.filter((d) => remaining.has(d.session.pid));
      lastError = undefined;
    } catch (err) {
      lastError = describeError(err);
    }
    if (waiting.length === 0 || deps.now() >= deadline) break;
    await deps.sleep(Math.min(pause, Math.max(0, deadline - deps.now())));
    pause = Math.min(pause * 2, 200);
  }
  return [...done, ...waiting.map((d): ActionResult => ({ decision: d, outcome: 'signalled', ...(lastError ? { error: lastError } : {}) }))];
}
