import { collectProcessMetrics, Counter, Gauge, Histogram, Registry } from './prom.js';
import { STATE_LABELS } from '../db/session.js';
import type { Budget } from '../config/schema.js';
import type { CompiledPolicy } from '../policy/compile.js';
import { REASONS, type Reason } from '../plan/planner.js';
import { PROTECTION_KINDS } from '../plan/protect.js';

// Every metric pg-reaper exports, named once. Labels are bounded: target and policy come from
// the config, state/reason/action/outcome from fixed lists. Never a pid, user, query or error.

export const RUN_RESULTS = ['success', 'failure', 'overlap', 'standby'] as const;
export type RunResultLabel = (typeof RUN_RESULTS)[number];

export interface Metrics {
  registry: Registry;
  targetUp: Gauge<'target'>;
  leader: Gauge<'target'>;
  blockedSessions: Gauge<'target'>;
  connections: Gauge<'target'>;
  maxConnections: Gauge<'target'>;
  targetInfo: Gauge<'target' | 'server_version' | 'superuser' | 'read_all_stats' | 'signal_backend'>;
  /** The target_info labels set per target, to replace them when they change. */
  infoSeen: Map<string, Record<string, string>>;
  runs: Counter<'target' | 'result'>;
  runDuration: Histogram<'target'>;
  lastRun: Gauge<'target'>;
  lastSuccess: Gauge<'target'>;
  sessions: Gauge<'target' | 'state'>;
  maxStateAge: Gauge<'target' | 'state'>;
  matched: Gauge<'target' | 'policy' | 'reason'>;
  actions: Counter<'target' | 'policy' | 'reason' | 'action' | 'outcome'>;
  configReload: Gauge;
  configReloadTime: Gauge;
  /** (policy, reason) keys of matched_sessions set so far, per target. */
  matchedSeen: Map<string, Set<string>>;
  sessionsProtected: Gauge<'target' | 'kind'>;
  budgetExhausted: Gauge<'target' | 'policy'>;
  /** The policy labels of budget_exhausted per target ('' for the target's own budget). */
  budgetSeen: Map<string, Set<string>>;
}

export function createMetrics(version: string, opts: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (opts.defaultMetrics !== false) collectProcessMetrics(registry);
  const registers = [registry];
  new Gauge({ name: 'pg_reaper_build_info', help: 'pg-reaper version; always 1.', labelNames: ['version'], registers }).set({ version }, 1);
  return {
    registry,
    targetUp: new Gauge({ name: 'pg_reaper_target_up', help: '1 when the last run read pg_stat_activity on the target, else 0.', labelNames: ['target'], registers }),
    targetInfo: new Gauge({
      name: 'pg_reaper_target_info',
      help: 'What the reaper can do on the target, as read at its last successful run; always 1.',
      labelNames: ['target', 'server_version', 'superuser', 'read_all_stats', 'signal_backend'],
      registers,
    }),
    infoSeen: new Map(),
    blockedSessions: new Gauge({ name: 'pg_reaper_blocked_sessions', help: 'Client sessions waiting on a lock at the last run.', labelNames: ['target'], registers }),
    connections: new Gauge({ name: 'pg_reaper_connections', help: 'Client connections (every client backend, ours included) at the last run.', labelNames: ['target'], registers }),
    maxConnections: new Gauge({ name: 'pg_reaper_max_connections', help: 'Client slots: max_connections minus superuser_reserved_connections and reserved_connections (16+).', labelNames: ['target'], registers }),
    leader: new Gauge({ name: 'pg_reaper_leader', help: '1 when this replica acted on the target at its last run (with coordination: it holds the lock), 0 when it stood by or failed.', labelNames: ['target'], registers }),
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
    sessions: new Gauge({ name: 'pg_reaper_sessions', help: 'Client sessions seen by the last run, by state (unknown: not visible to our role).', labelNames: ['target', 'state'], registers }),
    maxStateAge: new Gauge({ name: 'pg_reaper_max_state_age_seconds', help: 'Longest time any client session has been in its current state, by state, at the last run.', labelNames: ['target', 'state'], registers }),
    matched: new Gauge({ name: 'pg_reaper_matched_sessions', help: 'Sessions that broke a policy at the last run, by the policy and reason that acted.', labelNames: ['target', 'policy', 'reason'], registers }),
    configReload: new Gauge({ name: 'pg_reaper_config_last_reload_successful', help: '1 when the last config (re)load was applied, 0 when it was rejected and the previous config kept running.', registers }),
    configReloadTime: new Gauge({ name: 'pg_reaper_config_last_reload_success_timestamp_seconds', help: 'Unix time of the last config load that was applied.', registers }),
    matchedSeen: new Map(),
    actions: new Counter({ name: 'pg_reaper_actions_total', help: 'Actions decided, by outcome (terminated, signalled, cancelled, would_terminate, would_cancel, skipped_changed, skipped_cap, skipped_budget, denied, failed).', labelNames: ['target', 'policy', 'reason', 'action', 'outcome'], registers }),
    sessionsProtected: new Gauge({ name: 'pg_reaper_sessions_protected', help: 'Client sessions no policy acts on at the last run, by kind: backup (a backup, dump or copy tool by its application_name) or maintenance (VACUUM, CREATE INDEX CONCURRENTLY, ... running now, or pg_repack).', labelNames: ['target', 'kind'], registers }),
    budgetExhausted: new Gauge({ name: 'pg_reaper_budget_exhausted', help: '1 while a budget has refused actions (skipped_budget) and its window has not freed room since; policy "" for the target\'s own budget.', labelNames: ['target', 'policy'], registers }),
    budgetSeen: new Map(),
  };
}

/** Zero series for every target, state and (policy, reason) up front, so alerts see them before the first event. */
export function initTargetSeries(m: Metrics, target: string, policies: readonly CompiledPolicy[]): void {
  m.targetUp.set({ target }, 0);
  m.leader.set({ target }, 0);
  for (const result of RUN_RESULTS) m.runs.inc({ target, result }, 0);
  for (const state of STATE_LABELS) {
    m.sessions.set({ target, state }, 0);
    m.maxStateAge.set({ target, state }, 0);
  }
  const seen = m.matchedSeen.get(target) ?? new Set<string>();
  m.matchedSeen.set(target, seen);
  for (const p of policies) {
    for (const reason of reasonsOf(p)) {
      m.matched.set({ target, policy: p.name, reason }, 0);
      seen.add(`${p.name}\u0000${reason}`);
      // alerts on increase() of these must see the first one: a series born at 1 has no increase
      for (const action of actionsOf(p)) for (const outcome of ALERTED_OUTCOMES) m.actions.inc({ target, policy: p.name, reason, action, outcome }, 0);
    }
  }
}

/**
 * Zero series for the protected sessions and the budgets of a target, when a config is applied.
 * A budget that stays keeps its value (it may be exhausted); one that a reload removed goes.
 */
export function initSafetySeries(m: Metrics, target: string, budget: Budget | null, policies: readonly CompiledPolicy[]): void {
  for (const kind of PROTECTION_KINDS) m.sessionsProtected.set({ target, kind }, 0);
  const seen = m.budgetSeen.get(target) ?? new Set<string>();
  const now = new Set([...(budget ? [''] : []), ...policies.filter((p) => p.budget).map((p) => p.name)]);
  for (const policy of seen) if (!now.has(policy)) m.budgetExhausted.remove({ target, policy });
  for (const policy of now) if (!seen.has(policy)) m.budgetExhausted.set({ target, policy }, 0);
  m.budgetSeen.set(target, now);
}

/** Outcomes the alert rules watch with increase(): their series exist at 0 from the first scrape. */
export const ALERTED_OUTCOMES = ['failed', 'denied'] as const;

/** Forget a target removed by a reload, so it does not linger as a stale or "down" series. */
export async function dropTargetSeries(m: Metrics, target: string): Promise<void> {
  for (const g of [m.targetUp, m.leader, m.lastRun, m.lastSuccess, m.blockedSessions, m.connections, m.maxConnections]) g.remove({ target });
  const info = m.infoSeen.get(target);
  if (info) m.targetInfo.remove(info);
  m.infoSeen.delete(target);
  for (const v of (await m.actions.get()).values) if (v.labels.target === target) m.actions.remove(v.labels as Record<string, string>);
  m.runDuration.remove({ target });
  for (const result of RUN_RESULTS) m.runs.remove({ target, result });
  for (const state of STATE_LABELS) {
    m.sessions.remove({ target, state });
    m.maxStateAge.remove({ target, state });
  }
  for (const key of m.matchedSeen.get(target) ?? []) {
    const [policy, reason] = key.split('\u0000') as [string, string];
    m.matched.remove({ target, policy, reason });
  }
  m.matchedSeen.delete(target);
  for (const kind of PROTECTION_KINDS) m.sessionsProtected.remove({ target, kind });
  for (const policy of m.budgetSeen.get(target) ?? []) m.budgetExhausted.remove({ target, policy });
  m.budgetSeen.delete(target);
}

/** The actions a policy can take: a cancel policy with terminateAfter also terminates. */
export function actionsOf(p: CompiledPolicy): ('terminate' | 'cancel')[] {
  return p.action === 'cancel' && p.terminateAfter !== undefined ? ['cancel', 'terminate'] : [p.action];
}

export function reasonsOf(p: CompiledPolicy): Reason[] {
  const t = p.thresholds;
  const has: Record<Reason, boolean> = {
    blocking: t.maxBlocking !== undefined,
    idle: t.maxIdle !== undefined,
    idle_in_transaction: t.maxIdleInTransaction !== undefined,
    query_duration: t.maxQueryDuration !== undefined,
    transaction_duration: t.maxTransactionDuration !== undefined,
    connection_age: t.maxConnectionAge !== undefined,
  };
  return REASONS.filter((r) => has[r]);
}
