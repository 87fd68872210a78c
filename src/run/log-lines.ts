import { formatDuration } from '../config/duration.js';
import type { Logger } from '../log/logger.js';
import { entryOf } from '../reasons/table.js';
import { UNITS } from '../reasons/units.js';
import type { BudgetState } from './budget.js';
import type { ActionResult } from './outcome.js';
import type { RunReport } from './run-target.js';

// A finished run as log lines: one per action, the budgets that tripped or found room, the
// why-not lines at debug, the run's summary. Runs are logged here and nowhere else, so `once`,
// the daemon and the tests log them the same way (their metrics: run-metrics.ts).

const round = (n: number) => Math.round(n * 1000) / 1000;

/** The fields of one action's log line (also `once --json` output). */
export function actionFields(r: ActionResult, logQueryText: boolean): Record<string, unknown> {
  const d = r.decision;
  const s = d.session;
  const unit = UNITS[entryOf(d.reason).unit];
  return {
    target: d.target,
    policy: d.policy,
    reason: d.reason,
    action: d.action,
    outcome: r.outcome,
    dryRun: d.dryRun,
    pid: s.pid,
    user: s.user,
    database: s.database,
    application: s.application,
    clientAddr: s.local ? 'local' : s.clientAddr,
    state: s.state,
    // the evidence of `reason`, named for its unit: seconds (idle time, query, transaction or
    // connection age, longest lock wait), transactions (xmin_age)
    [unit.field]: round(d.age),
    [unit.thresholdField]: round(d.threshold),
    ...(d.escalated ? { escalated: true } : {}),
    ...(d.details ? Object.fromEntries(Object.entries(d.details).map(([k, v]) => [k, round(v)])) : {}),
    ...(r.error ? { error: r.error } : {}),
    ...(logQueryText && s.query !== undefined ? { query: s.query } : {}),
  };
}

/** Outcomes of a run, those reported at an earlier run (repeated) left out. */
export function outcomeCounts(results: readonly ActionResult[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of results) if (!r.repeated) counts[r.outcome] = (counts[r.outcome] ?? 0) + 1;
  return counts;
}

/** The run's log lines. `quietFailure`: a failed run's line goes to debug (its target is already reported down). */
export function logRun(logger: Logger, report: RunReport, logQueryText: boolean, quietFailure = false): void {
  for (const r of report.results) {
    // a session denied at an earlier run too: said once at warn, then only at debug
    const level = r.repeated ? 'debug' : r.outcome === 'denied' || r.outcome === 'failed' ? 'warn' : 'info';
    logger[level]({ ...actionFields(r, logQueryText), ...(r.repeated ? { repeated: true } : {}) }, `${r.outcome} ${r.decision.reason} session${r.repeated ? ' (as at an earlier run)' : ''}`);
  }
  for (const b of report.budget ?? []) if (b.change) logger.warn(budgetFields(report.target, b), budgetMessage(b));
  for (const n of report.notActedOn ?? []) {
    const s = n.session;
    logger.debug({ target: report.target, pid: s.pid, user: s.user, database: s.database, application: s.application, state: s.state, why: n.why }, 'not acted on');
  }
  if (logger.isLevelEnabled('trace')) {
    const t = report.timings;
    logger.trace({ target: report.target, snapshotMs: round(t.snapshotMs), planMs: round(t.planMs), executeMs: round(t.executeMs) }, 'run timings');
  }
  const summary = {
    target: report.target,
    result: report.ok ? 'success' : 'failure',
    durationSeconds: round(report.durationSeconds),
    sessions: report.snapshot?.clients,
    actions: outcomeCounts(report.results),
    ...(report.error ? { error: report.error } : {}),
  };
  if (report.standby) logger.debug({ target: report.target }, 'standing by: another replica holds the lock');
  else if (report.ok) logger.info(summary, 'run finished');
  else if (quietFailure && !report.snapshot) logger.debug(summary, 'run failed');
  else logger.error(summary, 'run failed');
}

/** A budget that tripped or found room again: one line each time, not at every run. */
export function budgetFields(target: string, b: BudgetState): Record<string, unknown> {
  return {
    target,
    ...(b.policy ? { policy: b.policy } : {}),
    budget: b.policy ? 'policy' : 'target',
    maxActions: b.maxActions,
    windowSeconds: b.windowMs / 1000,
    used: b.used,
    ...(b.change === 'tripped' ? { skipped: b.skipped } : {}),
    ...(b.freesInMs !== undefined ? { freesInSeconds: round(b.freesInMs / 1000) } : {}),
  };
}

function budgetMessage(b: BudgetState): string {
  const which = b.policy ? `policy ${b.policy}'s budget` : "the target's budget";
  const rule = `${b.maxActions} per ${formatDuration(b.windowMs)}`;
  return b.change === 'tripped'
    ? `budget exhausted: ${which} (${rule}) is used up; further decisions are skipped_budget until its window frees room`
    : `budget has room again: ${which} (${rule}) acts again`;
}
