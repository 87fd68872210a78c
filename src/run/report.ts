import { stateLabel, STATE_LABELS, type Privileges, type Snapshot } from '../db/session.js';
import type { Logger } from '../log/logger.js';
import { countAction, dropRunSeries, targetSeries, type Metrics } from '../metrics/metrics.js';
import { formatDuration } from '../config/duration.js';
import { PROTECTION_KINDS } from '../plan/protect.js';
import { entryOf } from '../reasons/table.js';
import { UNITS } from '../reasons/units.js';
import type { BudgetState } from './budget.js';
import type { ActionResult } from './outcome.js';
import type { RunReport } from './run-target.js';

// Turns a finished run into log lines and metric updates. Logging and metrics happen here and
// nowhere else, so `once`, the daemon and the tests report a run the same way.

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

/** Warnings about missing privileges, each ending with the GRANT that fixes it: logged once per target and change. */
export function privilegeWarnings(p: Privileges, role: string): string[] {
  if (p.superuser) return [];
  const out: string[] = [];
  if (!p.readAllStats) out.push(`cannot see other roles' sessions in pg_stat_activity (state and times are hidden, so they are never judged): run GRANT pg_read_all_stats TO ${quoteIdent(role)};`);
  if (!p.signalBackend) out.push(`can only signal sessions of roles it has the privileges of: run GRANT pg_signal_backend TO ${quoteIdent(role)};`);
  return out;
}

/**
 * A role name as an SQL identifier, always in double quotes: a quoted name is right whatever it
 * is (capitals, dashes, a keyword such as "user"), where deciding when quotes may be left out
 * would need the server's list of keywords.
 */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** pg_reaper_target_info's labels for a snapshot. */
export function targetInfoLabels(target: string, snap: Snapshot): Record<string, string> {
  const p = snap.privileges;
  return { target, server_version: snap.server.version, superuser: String(p.superuser), read_all_stats: String(p.superuser || p.readAllStats), signal_backend: String(p.superuser || p.signalBackend) };
}

export function recordRun(m: Metrics, report: RunReport): void {
  const target = report.target;
  m.runs.inc({ target, result: report.standby ? 'standby' : report.ok ? 'success' : 'failure' });
  m.runDuration.observe({ target }, report.durationSeconds);
  m.lastRun.set({ target }, report.finishedAtMs / 1000);
  if (report.ok) m.lastSuccess.set({ target }, report.finishedAtMs / 1000);
  const snap = report.snapshot;
  // a replica standing by reached the server too
  m.targetUp.set({ target }, snap || report.standby ? 1 : 0);
  for (const r of report.results) {
    if (r.repeated) continue;
    const d = r.decision;
    countAction(m, { target, policy: d.policy, reason: d.reason, action: d.action, outcome: r.outcome });
  }
  const t = targetSeries(m, target);
  t.acted = snap !== undefined;
  // what the run read on the target: only from the replica that leads it (see metrics.ts)
  if (!snap) {
    dropRunSeries(m, target);
    return;
  }
  const info = targetInfoLabels(target, snap);
  if (!t.info || JSON.stringify(t.info) !== JSON.stringify(info)) {
    if (t.info) m.targetInfo.remove(t.info);
    m.targetInfo.set(info, 1);
    t.info = info;
  }

  // from the server's aggregates: every client session, whether it came as a row or not
  const counts = new Map<string, number>(STATE_LABELS.map((s) => [s, 0]));
  const ages = new Map<string, number>(STATE_LABELS.map((s) => [s, 0]));
  for (const st of snap.states) {
    const state = stateLabel(st.state);
    counts.set(state, (counts.get(state) ?? 0) + st.count);
    ages.set(state, Math.max(ages.get(state) ?? 0, st.oldestMs / 1000));
  }
  for (const [state, n] of counts) m.sessions.set({ target, state }, n);
  for (const [state, age] of ages) m.maxStateAge.set({ target, state }, age);
  m.blockedSessions.set({ target }, snap.waiting);
  m.connections.set({ target }, snap.clients + 1);
  m.maxConnections.set({ target }, snap.clientSlots);

  // matched: every session that broke a policy, acted on or held (when: below its threshold);
  // (policy, reason) pairs of the config that matched nothing are 0, as are those of earlier runs
  const matched = new Map<string, number>();
  for (const key of t.matched) matched.set(key, 0);
  for (const labels of t.actions.values()) matched.set(`${labels.policy}\u0000${labels.reason}`, 0);
  for (const d of report.decisions ?? []) {
    const key = `${d.policy}\u0000${d.reason}`;
    matched.set(key, (matched.get(key) ?? 0) + 1);
  }
  for (const [key, n] of matched) {
    const [policy, reason] = key.split('\u0000') as [string, string];
    m.matched.set({ target, policy, reason }, n);
    t.matched.add(key);
  }
  for (const kind of PROTECTION_KINDS) m.sessionsProtected.set({ target, kind }, report.protected?.[kind] ?? 0);
  const exhausted = new Map((report.budget ?? []).map((b) => [b.policy, b.exhausted]));
  for (const policy of t.budgets) m.budgetExhausted.set({ target, policy }, exhausted.get(policy) ? 1 : 0);
  t.exporting = true;
}
