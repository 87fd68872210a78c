// What one snapshot of pg_stat_activity says, as plain data: the planner's whole input besides
// config. Times are epoch milliseconds on the server's clock.

export interface Session {
  pid: number;
  user: string | null;
  database: string | null;
  application: string;
  /** Client IP; null for Unix-socket sessions (then `local` is true) or when not visible. */
  clientAddr: string | null;
  local: boolean;
  state: string | null;
  backendStartMs: number | null;
  xactStartMs: number | null;
  queryStartMs: number | null;
  stateChangeMs: number | null;
  /** Exact server text of the timestamps: the kill statement re-checks identity (backend_start)
   *  and the one the decision rests on, compared as the server wrote it. */
  backendStart: string | null;
  stateChange: string | null;
  queryStart: string | null;
  xactStart: string | null;
  /** The session's role is a superuser (or it has none). */
  superuser: boolean;
  /** Our role may signal it (superuser, pg_signal_backend or the role's privileges). */
  canSignal: boolean;
  /** Waiting on a lock: the pids that block it (pg_blocking_pids); null when not waiting. */
  blockedBy: number[] | null;
  /** When its lock wait began (epoch ms, server clock); null when not waiting. */
  waitStartMs: number | null;
  /** The lock mode it waits for (pg_locks.mode of its lock not granted); null when not waiting. Sessions built by hand may leave it out. */
  waitMode?: string | null;
  /** Its last statement was LISTEN: idle by design. */
  listener: boolean;
  /** Maintenance running now that leaves damage or lost work when killed (VACUUM, CREATE INDEX
   *  CONCURRENTLY, …, or a pg_repack session), as the server recognised it; null otherwise. */
  maintenance: string | null;
  /** pg_stat_activity.query_id of its last statement, as decimal text: null before 14 or unless compute_query_id. */
  queryId: string | null;
  /**
   * What it holds of the xmin horizon: backend_xid and backend_xmin as the server wrote them, and
   * their ages in transactions (age()); null when it has none. olderTransactionRuns: another
   * running transaction (another session's backend_xid, a prepared transaction) is as old as
   * its backend_xmin, so its snapshot is old because of that one. Always read by the snapshot;
   * sessions built by hand (tests, benchmarks) may leave them out.
   */
  backendXid?: string | null;
  backendXmin?: string | null;
  xidAge?: number | null;
  xminAge?: number | null;
  olderTransactionRuns?: boolean;
  query?: string | null;
}

export interface Privileges {
  superuser: boolean;
  signalBackend: boolean;
  readAllStats: boolean;
}

export interface ServerInfo {
  /** server_version, e.g. "18.4". */
  version: string;
  versionNum: number;
  /** The role we are connected as. */
  user: string;
}

export interface Snapshot {
  /** clock_timestamp() of the server when the snapshot was read. */
  nowMs: number;
  selfPid: number;
  privileges: Privileges;
  server: ServerInfo;
  /** max_connections − superuser_reserved_connections − reserved_connections (16+). */
  clientSlots: number;
  /** Every client session is in `sessions`; false when the server sent only those a policy could act on. */
  complete: boolean;
  /** Client sessions on the server but our own (visible or not), whether in `sessions` or not. */
  clients: number;
  /** Client sessions waiting on a lock. */
  waiting: number;
  /** Per state (null: not visible to our role): how many, and the oldest in it (ms since state_change). */
  states: { state: string | null; count: number; oldestMs: number }[];
  /** The oldest xmin horizon each kind of holder keeps, in transactions (age()); 0 when none holds one. */
  horizon: Record<HorizonHolder, number>;
  sessions: Session[];
}

/** What holds back the xmin horizon (vacuum): client sessions, prepared transactions, replication slots, standbys' feedback. */
export const HORIZON_HOLDERS = ['session', 'prepared_transaction', 'replication_slot', 'standby'] as const;
export type HorizonHolder = (typeof HORIZON_HOLDERS)[number];

/** Metric label for a pg_stat_activity state: "idle in transaction (aborted)" → "idle_in_transaction_aborted". */
export function stateLabel(state: string | null): string {
  if (state === null) return 'unknown';
  const label = state.replace(/[()]/g, '').trim().replace(/\s+/g, '_');
  // a bounded label set, so every series can be zeroed and removed: a state a newer server adds
  // is counted as "other" until it is listed
  return (STATE_LABELS as readonly string[]).includes(label) ? label : 'other';
}

/** starting: PostgreSQL 18 shows a backend that is still authenticating. */
export const STATE_LABELS = ['active', 'idle', 'idle_in_transaction', 'idle_in_transaction_aborted', 'fastpath_function_call', 'disabled', 'starting', 'other', 'unknown'] as const;

/** The server-side aggregates of a snapshot, computed from a complete list of sessions (tests, benchmarks). */
export function aggregatesOf(sessions: readonly Session[], nowMs: number): Pick<Snapshot, 'complete' | 'clients' | 'waiting' | 'states' | 'horizon'> {
  const by = new Map<string | null, { state: string | null; count: number; oldestMs: number }>();
  for (const s of sessions) {
    const state = s.backendStart === null ? null : s.state;
    const e = by.get(state) ?? { state, count: 0, oldestMs: 0 };
    e.count++;
    if (s.stateChangeMs !== null) e.oldestMs = Math.max(e.oldestMs, nowMs - s.stateChangeMs);
    by.set(state, e);
  }
  const session = Math.max(0, ...sessions.map((s) => Math.max(s.xidAge ?? 0, s.xminAge ?? 0)));
  const horizon = { session, prepared_transaction: 0, replication_slot: 0, standby: 0 };
  return { complete: true, clients: sessions.length, waiting: sessions.filter((s) => s.blockedBy !== null).length, states: [...by.values()], horizon };
}
