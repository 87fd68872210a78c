import { HORIZON_HOLDERS, stateLabel, STATE_LABELS, type Snapshot } from '../db/session.js';
import { countAction, dropRunSeries, targetSeries, type Metrics } from '../metrics/metrics.js';
import { PROTECTION_KINDS } from '../plan/protect.js';
import type { RunReport } from './run-target.js';

// A finished run as metric updates. Metrics are set here and nowhere else, so `once`, the daemon
// and the tests record a run the same way (its log lines: log-lines.ts).

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
  for (const holder of HORIZON_HOLDERS) m.xminAge.set({ target, holder }, snap.horizon[holder]);
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
