import { entryOf } from '../reasons/table.js';
import type { RunReport } from '../run/run-target.js';
import { newIds } from './uuid.js';

// A run's actions as audit rows: one per result, whatever its outcome. The field names are the
// JSON fields of the INSERT (src/audit/table.ts).

export interface AuditRow {
  id: string;
  /** The target server's clock at the run's snapshot, in epoch microseconds. */
  at_us: number;
  replica: string;
  target: string;
  policy: string;
  reason: string;
  action: string;
  outcome: string;
  dry_run: boolean;
  pid: number;
  /** As the target server reported it, in epoch microseconds. */
  backend_start_us: number | null;
  usename: string | null;
  datname: string | null;
  application_name: string;
  client_addr: string | null;
  state: string | null;
  seconds: number;
  /** The evidence in its unit: threshold_seconds for the reasons measured in time, transactions and threshold_transactions for those measured in transactions. */
  threshold_seconds: number | null;
  transactions: number | null;
  threshold_transactions: number | null;
  query_id: string | null;
  query: string | null;
  escalated: boolean;
  blocked_sessions: number | null;
  details: Record<string, number> | null;
  error: string | null;
}

export interface RowContext {
  /** The process that acted: POD_NAME, else the host name. */
  replica: string;
  logQueryText: boolean;
  /** Ids for n rows (UUIDv7 by default). */
  ids?: (n: number) => string[];
}

/**
 * The server reports times to the microsecond; the snapshot carries them as float8 epoch ms,
 * which holds them to well under half a microsecond for any date this century: rounding gives
 * the exact microsecond back.
 */
const micros = (ms: number) => Math.round(ms * 1000);

export function auditRows(report: RunReport, ctx: RowContext): AuditRow[] {
  const snap = report.snapshot;
  if (!snap || report.results.length === 0) return [];
  const ids = (ctx.ids ?? ((n) => newIds(n, report.finishedAtMs)))(report.results.length);
  const at = micros(snap.nowMs);
  return report.results.map((r, i): AuditRow => {
    const d = r.decision;
    const s = d.session;
    const inSeconds = entryOf(d.reason).unit === 'seconds';
    return {
      id: ids[i]!,
      at_us: at,
      replica: ctx.replica,
      target: d.target,
      policy: d.policy,
      reason: d.reason,
      action: d.action,
      outcome: r.outcome,
      dry_run: d.dryRun,
      pid: s.pid,
      backend_start_us: s.backendStartMs === null ? null : micros(s.backendStartMs),
      usename: s.user,
      datname: s.database,
      application_name: s.application,
      client_addr: s.local ? 'local' : s.clientAddr,
      state: s.state,
      seconds: d.seconds,
      threshold_seconds: inSeconds ? d.threshold : null,
      transactions: inSeconds ? null : d.age,
      threshold_transactions: inSeconds ? null : d.threshold,
      query_id: s.queryId,
      query: ctx.logQueryText && typeof s.query === 'string' ? s.query : null,
      escalated: d.escalated === true,
      blocked_sessions: d.details?.blockedSessions ?? null,
      details: d.details ?? null,
      error: r.error ?? null,
    };
  });
}

/** The name of this process in audit rows: the pod's name in Kubernetes, else the host's. */
export function replicaName(env: NodeJS.ProcessEnv, hostname: () => string): string {
  return env.POD_NAME?.trim() || hostname();
}
