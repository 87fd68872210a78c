import type { AuditMetrics, AuditResult } from '../audit/writer.js';
import { collectProcessMetrics, Counter, Gauge, Histogram, Registry } from './prom.js';
import { HORIZON_HOLDERS, STATE_LABELS } from '../db/session.js';
import type { Budget } from '../config/schema.js';
import type { CompiledPolicy } from '../policy/compile.js';
import { PROTECTION_KINDS } from '../plan/protect.js';
import { outcomesOf } from '../run/outcome.js';
import { ENTRIES, type Reason } from '../reasons/table.js';

// Every metric pg-reaper exports, named once. Labels are bounded: target and policy come from
// the config, state/reason/action/outcome from fixed lists. Never a pid, user, query or error.
//
// Two kinds of per-target series:
// - the replica's own: runs, durations, target_up, leader, actions, the schedule. Every replica
//   exports them; sums over replicas are right (a standby's run is a `standby` run).
// - what the last run read on the target (sessions, ages, connections, lock waits, matches,
//   protected sessions, budgets, target_info): only the replica that leads the target exports them, so that sum by (state)
//   over two replicas counts each session once. A replica that stands by, whose run failed, or
//   whose hold on the target's lock is no longer confirmed (checked at every scrape) exports none.

export const RUN_RESULTS = ['success', 'failure', 'overlap', 'standby'] as const;
export type RunResultLabel = (typeof RUN_RESULTS)[number];

type Labels = Record<string, string>;

export interface Metrics {
  registry: Registry;
  targetUp: Gauge<'target'>;
  leader: Gauge<'target'>;
  blockedSessions: Gauge<'target'>;
  connections: Gauge<'target'>;
  maxConnections: Gauge<'target'>;
  targetInfo: Gauge<'target' | 'server_version' | 'superuser' | 'read_all_stats' | 'signal_backend'>;
  runs: Counter<'target' | 'result'>;
  runDuration: Histogram<'target'>;
  lastRun: Gauge<'target'>;
  lastSuccess: Gauge<'target'>;
  scheduleInterval: Gauge<'target'>;
  sessions: Gauge<'target' | 'state'>;
  maxStateAge: Gauge<'target' | 'state'>;
  xminAge: Gauge<'target' | 'holder'>;
  matched: Gauge<'target' | 'policy' | 'reason'>;
  actions: Counter<'target' | 'policy' | 'reason' | 'action' | 'outcome'>;
  configReload: Gauge;
  configReloadTime: Gauge;
  sessionsProtected: Gauge<'target' | 'kind'>;
  budgetExhausted: Gauge<'target' | 'policy'>;
  /** Every target of the config in use, with what its series need remembered. */
  targets: Map<string, TargetSeries>;
  auditRows: Counter<'result'>;
  auditQueue: Gauge;
  auditUp: Gauge;
}

export interface TargetSeries {
  /** The actions_total series made so far: key → labels. */
  actions: Map<string, Labels>;
  /** (policy, reason) keys of matched_sessions set so far. */
  matched: Set<string>;
  /** The target_info labels set, to replace them when they change. */
  info?: Labels | undefined;
  /** The policy labels of budget_exhausted ('' for the target's own budget) of the config in use. */
  budgets: Set<string>;
  /** With coordination: whether this replica holds the target's lock now (read at each scrape). */
  lease?: (() => boolean) | undefined;
  /** Whether the last run read the target: leadership without a lease. */
  acted: boolean;
  /** pg_reaper_schedule_interval_seconds of the target's schedule. */
  scheduleInterval?: (() => number | undefined) | undefined;
  /** The last run's series are exported now. */
  exporting: boolean;
}

export const AUDIT_RESULTS: readonly AuditResult[] = ['written', 'dropped', 'failed'];

export function createMetrics(version: string, opts: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (opts.defaultMetrics !== false) collectProcessMetrics(registry);
  const registers = [registry];
  new Gauge({ name: 'pg_reaper_build_info', help: 'pg-reaper version; always 1.', labelNames: ['version'], registers }).set({ version }, 1);
  // what the last run read: dropped at scrape time for targets this replica does not lead
  const lastRun = { registers, collect: () => pruneNotLeading(m) };
  const m: Metrics = {
    registry,
    targetUp: new Gauge({ name: 'pg_reaper_target_up', help: '1 when the last run read pg_stat_activity on the target, or stood by, else 0.', labelNames: ['target'], registers }),
    targetInfo: new Gauge({
      name: 'pg_reaper_target_info',
      help: 'What the reaper can do on the target, as read at its last run; always 1. Only on the replica that leads the target.',
      labelNames: ['target', 'server_version', 'superuser', 'read_all_stats', 'signal_backend'],
      ...lastRun,
    }),
    blockedSessions: new Gauge({ name: 'pg_reaper_blocked_sessions', help: 'Client sessions waiting on a lock at the last run. Only on the replica that leads the target.', labelNames: ['target'], ...lastRun }),
    connections: new Gauge({ name: 'pg_reaper_connections', help: 'Client connections (every client backend, ours included) at the last run. Only on the replica that leads the target.', labelNames: ['target'], ...lastRun }),
    maxConnections: new Gauge({ name: 'pg_reaper_max_connections', help: 'Client slots: max_connections minus superuser_reserved_connections and reserved_connections (16+). Only on the replica that leads the target.', labelNames: ['target'], ...lastRun }),
    leader: new Gauge({
      name: 'pg_reaper_leader',
      help: '1 while this replica leads the target (with coordination: its hold on the lock was confirmed within the lease), else 0.',
      labelNames: ['target'],
      registers,
      collect() {
        for (const [target, t] of m.targets) this.set({ target }, leads(t) ? 1 : 0);
      },
    }),
    runs: new Counter({ name: 'pg_reaper_runs_total', help: 'Runs by result: success, failure, overlap (skipped: the previous run was still going), standby (another replica holds the lock).', labelNames: ['target', 'result'], registers }),
    runDuration: new Histogram({
      name: 'pg_reaper_run_duration_seconds',
      help: 'Duration of a run: snapshot, plan, signals and exit confirmation.',
      labelNames: ['target'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    lastRun: new Gauge({ name: 'pg_reaper_last_run_timestamp_seconds', help: 'Unix time the last run finished, success or not.', labelNames: ['target'], registers }),
    lastSuccess: new Gauge({ name: 'pg_reaper_last_success_timestamp_seconds', help: 'Unix time the last successful run finished.', labelNames: ['target'], registers }),
    scheduleInterval: new Gauge({
      name: 'pg_reaper_schedule_interval_seconds',
      help: "The longest time between two triggers of the target's schedule: a run later than a few of these is late.",
      labelNames: ['target'],
      registers,
      // worked out from the schedule at the first scrape, not at start
      collect() {
        for (const [target, t] of m.targets) {
          const seconds = t.scheduleInterval?.();
          if (seconds === undefined) this.remove({ target });
          else this.set({ target }, seconds);
        }
      },
    }),
    sessions: new Gauge({ name: 'pg_reaper_sessions', help: 'Client sessions seen by the last run, by state (unknown: not visible to our role). Only on the replica that leads the target.', labelNames: ['target', 'state'], ...lastRun }),
    xminAge: new Gauge({
      name: 'pg_reaper_xmin_age',
      help: 'Age in transactions of the oldest xmin horizon each kind of holder keeps at the last run (session, prepared_transaction, replication_slot, standby): vacuum cannot remove rows younger than it. 0 when none holds one. Only on the replica that leads the target.',
      labelNames: ['target', 'holder'],
      ...lastRun,
    }),
    maxStateAge: new Gauge({ name: 'pg_reaper_max_state_age_seconds', help: 'Longest time any client session has been in its current state, by state, at the last run. Only on the replica that leads the target.', labelNames: ['target', 'state'], ...lastRun }),
    matched: new Gauge({ name: 'pg_reaper_matched_sessions', help: 'Sessions that broke a policy at the last run, by the policy and reason that acted. Only on the replica that leads the target.', labelNames: ['target', 'policy', 'reason'], ...lastRun }),
    configReload: new Gauge({ name: 'pg_reaper_config_last_reload_successful', help: '1 when the last config (re)load was applied, 0 when it was rejected and the previous config kept running.', registers }),
    configReloadTime: new Gauge({ name: 'pg_reaper_config_last_reload_success_timestamp_seconds', help: 'Unix time of the last config load that was applied.', registers }),
    targets: new Map(),
    actions: new Counter({ name: 'pg_reaper_actions_total', help: 'Actions decided, by outcome (terminated, signalled, cancelled, would_terminate, would_cancel, skipped_changed, skipped_cap, skipped_budget, denied, failed).', labelNames: ['target', 'policy', 'reason', 'action', 'outcome'], registers }),
    sessionsProtected: new Gauge({ name: 'pg_reaper_sessions_protected', help: 'Client sessions no policy acts on at the last run, by kind: backup (a backup, dump or copy tool by its application_name) or maintenance (VACUUM, CREATE INDEX CONCURRENTLY, ... running now, or pg_repack). Only on the replica that leads the target.', labelNames: ['target', 'kind'], ...lastRun }),
    budgetExhausted: new Gauge({ name: 'pg_reaper_budget_exhausted', help: '1 while a budget has refused actions (skipped_budget) and its window has not freed room since; policy "" for the target\'s own budget. Only on the replica that leads the target.', labelNames: ['target', 'policy'], ...lastRun }),
    // registered while audit is on (auditMetrics): an unlabelled gauge always reads 0, and a
    // daemon without audit must not look like one whose audit is down
    auditRows: new Counter({ name: 'pg_reaper_audit_rows_total', help: 'Audit rows by result: written (the audit table has them), dropped (the queue was full, or still queued at stop), failed (refused by the server for a value in them).', labelNames: ['result'], registers: [] }),
    auditQueue: new Gauge({ name: 'pg_reaper_audit_queue_rows', help: 'Audit rows waiting to be written.', registers: [] }),
    auditUp: new Gauge({ name: 'pg_reaper_audit_up', help: '1 when the last write (or check) of the audit table succeeded, 0 while it fails.', registers: [] }),
  };
  return m;
}

/** Does this replica lead the target now? With a lease, as the lease says at this moment; else whether its last run read the target. */
const leads = (t: TargetSeries) => (t.lease ? t.lease() : t.acted);

function pruneNotLeading(m: Metrics): void {
  for (const [target, t] of m.targets) if (t.exporting && !leads(t)) dropRunSeries(m, target);
}

/**
 * A target's series when a config is (re)loaded: every counter that alerts and the dashboard read
 * with increase() exists at 0 (a series born at 1 has no increase, so the first kill would be
 * invisible): every run result, and every outcome each policy can produce for each of its
 * reasons and actions. Series of policies (or reasons, actions, outcomes) the new config no longer
 * has are dropped; so are the last run's series, which the new config's first run sets again.
 */
export function initTargetSeries(m: Metrics, target: string, policies: readonly CompiledPolicy[], opts: { scheduleInterval?: () => number | undefined; leading?: (() => boolean) | undefined } = {}): void {
  m.targetUp.set({ target }, 0);
  for (const result of RUN_RESULTS) m.runs.inc({ target, result }, 0);
  dropRunSeries(m, target);
  const before = m.targets.get(target)?.actions ?? new Map<string, Labels>();
  const now = new Map<string, Labels>();
  m.targets.set(target, { actions: now, matched: new Set(), budgets: new Set(), lease: opts.leading, scheduleInterval: opts.scheduleInterval, acted: false, exporting: false });

  for (const p of policies) {
    for (const reason of reasonsOf(p)) {
      for (const action of actionsOf(p)) {
        for (const outcome of outcomesOf(action, p.dryRun)) {
          const labels = { target, policy: p.name, reason, action, outcome };
          now.set(actionKey(labels), labels);
          m.actions.inc(labels, 0);
        }
      }
    }
  }
  for (const [key, labels] of before) if (!now.has(key)) m.actions.remove(labels);
}

/** The target's record (made empty for a target that initTargetSeries has not seen, as in benchmarks). */
export function targetSeries(m: Metrics, target: string): TargetSeries {
  let t = m.targets.get(target);
  if (!t) m.targets.set(target, (t = { actions: new Map(), matched: new Set(), budgets: new Set(), acted: false, exporting: false }));
  return t;
}

/** The budgets of a target in the config in use (after initTargetSeries): their budget_exhausted series come with its runs. */
export function initSafetySeries(m: Metrics, target: string, budget: Budget | null, policies: readonly CompiledPolicy[]): void {
  targetSeries(m, target).budgets = new Set([...(budget ? [''] : []), ...policies.filter((p) => p.budget).map((p) => p.name)]);
}

/** Counts one decision's outcome (its series exists already unless the config could not foresee it). */
export function countAction(m: Metrics, labels: { target: string; policy: string; reason: string; action: string; outcome: string }): void {
  m.actions.inc(labels);
  targetSeries(m, labels.target).actions.set(actionKey(labels), labels);
}

const actionKey = (l: Labels) => `${l.policy}\u0000${l.reason}\u0000${l.action}\u0000${l.outcome}`;

/** Drops what the last run read on the target: only the replica that leads it exports that. */
export function dropRunSeries(m: Metrics, target: string): void {
  const t = m.targets.get(target);
  if (!t) return;
  t.exporting = false;
  for (const g of [m.blockedSessions, m.connections, m.maxConnections]) g.remove({ target });
  for (const state of STATE_LABELS) {
    m.sessions.remove({ target, state });
    m.maxStateAge.remove({ target, state });
  }
  for (const holder of HORIZON_HOLDERS) m.xminAge.remove({ target, holder });
  for (const key of t.matched) {
    const [policy, reason] = key.split('\u0000') as [string, string];
    m.matched.remove({ target, policy, reason });
  }
  t.matched.clear();
  if (t.info) m.targetInfo.remove(t.info);
  t.info = undefined;
  for (const kind of PROTECTION_KINDS) m.sessionsProtected.remove({ target, kind });
  for (const policy of t.budgets) m.budgetExhausted.remove({ target, policy });
}

/** Forget a target removed by a reload, so it does not linger as a stale or "down" series. */
export function dropTargetSeries(m: Metrics, target: string): void {
  dropRunSeries(m, target);
  for (const g of [m.targetUp, m.leader, m.lastRun, m.lastSuccess, m.scheduleInterval]) g.remove({ target });
  for (const labels of m.targets.get(target)?.actions.values() ?? []) m.actions.remove(labels);
  m.targets.delete(target);
  m.runDuration.remove({ target });
  for (const result of RUN_RESULTS) m.runs.remove({ target, result });
}

/** The actions a policy can take: a cancel policy with terminateAfter also terminates. */
export function actionsOf(p: CompiledPolicy): ('terminate' | 'cancel')[] {
  return p.action === 'cancel' && p.terminateAfter !== undefined ? ['cancel', 'terminate'] : [p.action];
}

export function reasonsOf(p: CompiledPolicy): Reason[] {
  return Array.from(p.reasons, (r) => ENTRIES[r]!.reason);
}

/** With audit on: its series exist from the first scrape (rows_total at 0, so increase() sees the first drop). */
export function auditMetrics(m: Metrics): AuditMetrics {
  for (const metric of [m.auditRows, m.auditQueue, m.auditUp]) {
    if (!m.registry.getSingleMetric((metric as unknown as { name: string }).name)) m.registry.registerMetric(metric);
  }
  for (const result of AUDIT_RESULTS) m.auditRows.inc({ result }, 0);
  return {
    rows: (result, n) => m.auditRows.inc({ result }, n),
    queued: (n) => m.auditQueue.set(n),
    up: (up) => m.auditUp.set(up ? 1 : 0),
  };
}

/** Audit turned off by a reload: its series go (turned on again, the counter goes on from where it was). */
export function dropAuditSeries(m: Metrics): void {
  for (const name of ['pg_reaper_audit_rows_total', 'pg_reaper_audit_queue_rows', 'pg_reaper_audit_up']) m.registry.removeSingleMetric(name);
}
