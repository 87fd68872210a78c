import { ENTRIES } from '../reasons/table.js';
import type { Db } from './db.js';
import type { Session, Snapshot } from './session.js';

// One statement reads the server clock, the server version, our role and privileges, what the
// metrics need about every client backend but our own (counts and the oldest age per state,
// connections, lock waits, the oldest xmin horizon each kind of holder keeps: aggregated on the
// server), and a full row only for the sessions some
// policy could act on: those past the smallest threshold of each reason (its pre-filter clause
// in the table of reasons), every idle session when keepIdle needs whole pools, the sessions
// protected as backups or maintenance (so they are counted however young), and the sessions a
// run asks to watch. With no filter (debug's why-not lines, check --connect, pg-reaper snapshot,
// tests) every session comes as a row, those our role cannot see included.
// Without pg_read_all_stats other roles' rows show NULL in backend_type (and state and times):
// they are counted as state unknown and never judged. What such a row still shows is its role
// and its database: a client backend always has both, while background processes have no role
// (autovacuum, checkpointer) or no database (the logical replication launcher, which has the
// bootstrap superuser as its role, and physical walsenders). Ages are taken against clock_timestamp() of this same statement, never the
// daemon's clock. LEFT JOIN from the one-row `me` keeps the clock when no row qualifies.
// Parts of the statement that cost the server work at every run are left out of it when the
// target's policies do not read them (SnapshotParts; the complete snapshot has them all), and
// each reason's pre-filter clause is there only when a policy has the reason: each set of parts
// is a statement text of its own, prepared once per connection where the target allows.
// The statement's parameters, filtered: the rest below, then the smallest threshold of each
// reason some policy has, in the table's order. The complete snapshot has none.
const P = { allIdle: 1, backupNames: 2, backupPrefixes: 3, watch: 4, thresholds: 5 };

/** The optional parts of the statement, each read only by what needs it. */
export interface SnapshotParts {
  /** Who blocks each lock waiter (pg_blocking_pids), since when and for which mode (pg_locks): maxBlocking, maxLockWait. */
  lockGraph: boolean;
  /** Whether an idle session's last statement was LISTEN (exemptListeners). */
  listeners: boolean;
  /** Maintenance statements and pg_repack's sessions (protect.maintenance). */
  maintenance: boolean;
  /** Whether a transaction as old as a session's snapshot still runs (maxXminAge). */
  olderTransaction: boolean;
}
export const ALL_PARTS: SnapshotParts = { lockGraph: true, listeners: true, maintenance: true, olderTransaction: true };

interface Variant {
  withQuery: boolean;
  queryId: QueryIdForm;
  parts: SnapshotParts;
  /** Positions in the table of the reasons whose pre-filter clause is in; null: every session as a row. */
  reasons: readonly number[] | null;
}

// Maintenance that leaves damage or lost work when killed: the statement running now, after
// leading whitespace and comments (the query text stays on the server), and pg_repack's sessions
// by their name. Worked out in the row filter (for active sessions and pg_repack's only) and for
// the rows sent, never over every session.
const maintenanceKind = (c: string) => `CASE
           WHEN ${c}.application_name = 'pg_repack' THEN 'pg_repack'
           WHEN ${c}.state <> 'active' THEN NULL
           ELSE (SELECT CASE
             WHEN q.s ~* '^vacuum\\M' THEN 'VACUUM'
             WHEN q.s ~* '^analy[sz]e\\M' THEN 'ANALYZE'
             WHEN q.s ~* '^create\\s+(unique\\s+)?index\\s+concurrently\\M' THEN 'CREATE INDEX CONCURRENTLY'
             WHEN q.s ~* '^reindex\\s*(\\([^)]*\\mconcurrently\\M[^)]*\\)|(\\([^)]*\\)\\s*)?(index|table|schema|database|system)\\s+concurrently\\M)' THEN 'REINDEX CONCURRENTLY'
             WHEN q.s ~* '^cluster\\M' THEN 'CLUSTER'
             WHEN q.s ~* '^refresh\\s+materialized\\s+view\\s+concurrently\\M' THEN 'REFRESH MATERIALIZED VIEW CONCURRENTLY'
           END FROM (SELECT regexp_replace(${c}.query, '^(\\s|--[^\\n]*(\\n|$)|/\\*([^*]|\\*+[^*/])*\\*+/)*', '') AS s) q)
         END`;

const sql = ({ withQuery, queryId, parts: asked, reasons }: Variant) => {
  // a reason's pre-filter may read a part (the blocking one reads `waiters`)
  const parts = { ...asked };
  for (const r of reasons ?? []) for (const part of ENTRIES[r]!.snapshotParts ?? []) parts[part] = true;
  const query = withQuery || parts.listeners || parts.maintenance;
  return `
WITH me AS (
  SELECT clock_timestamp() AS now, pg_backend_pid() AS pid, r.rolsuper AS superuser, current_user AS usr,
         current_setting('server_version') AS server_version, current_setting('server_version_num')::int AS server_version_num,
         current_setting('max_connections')::int AS max_connections,
         current_setting('superuser_reserved_connections')::int AS superuser_reserved,
         coalesce(current_setting('reserved_connections', true)::int, 0) AS reserved,
         pg_has_role(current_user, 'pg_signal_backend', 'USAGE') AS signal_backend,
         pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS read_all_stats,
         -- how old the oldest running transaction is (a session's or a prepared one); 0: none runs
         age(pg_snapshot_xmin(pg_current_snapshot())::xid) AS running_age
    FROM pg_roles r WHERE r.rolname = current_user
),
-- the columns of pg_stat_activity that need no join (datname and usename: for the rows only)
clients AS (
  SELECT a.datid, a.pid, a.usesysid, a.application_name, a.client_addr, a.client_port, a.backend_start, a.xact_start,
         a.query_start, a.state_change, a.wait_event_type, a.state, a.backend_xid, a.backend_xmin, a.backend_type${query ? ', a.query' : ''}${queryId === 'column' ? ', a.query_id' : ''}
    FROM pg_stat_activity a, me
   WHERE (a.backend_type = 'client backend' OR (a.backend_type IS NULL AND a.usesysid IS NOT NULL AND a.datid IS NOT NULL)) AND a.pid <> me.pid
),${
    parts.lockGraph
      ? `
waiters AS (
  SELECT c.pid, pg_blocking_pids(c.pid) AS blocked_by FROM clients c WHERE c.wait_event_type = 'Lock'
),`
      : ''
  }
-- lock waiters are counted here whether or not the lock graph is read; a session holds the
-- horizon by its own transaction id, or by its snapshot when that is older than every running
-- transaction (else its snapshot is old because of that transaction, which is the holder)
states AS (
  SELECT json_agg(json_build_array(g.state, g.n, g.oldest_ms)) AS states, sum(g.n)::int AS clients,
         coalesce(sum(g.waiting), 0)::int AS waiting, coalesce(max(g.horizon), 0) AS session_horizon
    FROM (SELECT CASE WHEN c.backend_type IS NULL THEN NULL ELSE c.state END AS state, count(*)::int AS n,
                 coalesce(max(extract(epoch FROM me.now - c.state_change)::float8 * 1000), 0) AS oldest_ms,
                 count(*) FILTER (WHERE c.wait_event_type = 'Lock') AS waiting,
                 max(greatest(age(c.backend_xid), CASE WHEN age(c.backend_xmin) > me.running_age THEN age(c.backend_xmin) END)) AS horizon
            FROM clients c, me GROUP BY 1) g
),
-- the xmin horizon's other holders, never signalled: prepared transactions, replication slots
-- (xmin, catalog_xmin), and standbys' feedback (a walsender's backend_xmin, read per walsender
-- pid so that pg_stat_activity is not listed again)
horizon AS (
  SELECT coalesce((SELECT max(age(p.transaction)) FROM pg_prepared_xacts p), 0) AS prepared_transaction,
         coalesce((SELECT max(greatest(age(s.xmin), age(s.catalog_xmin))) FROM pg_replication_slots s), 0) AS replication_slot,
         coalesce((SELECT max(age(a.backend_xmin)) FROM pg_stat_get_wal_senders() w, LATERAL pg_stat_get_activity(w.pid) a), 0) AS standby
),
-- materialized: the joins below run for these rows only, not for every client
rows AS MATERIALIZED (
  SELECT c.* FROM clients c${
    reasons === null
      ? ''
      : `
   WHERE c.backend_type IS NOT NULL AND (
         ($${P.allIdle}::bool AND c.state = 'idle')
${reasons.map((r, i) => `      OR ${ENTRIES[r]!.prefilter(`$${P.thresholds + i}`)}`).join('\n')}
      -- protected sessions always come as rows, so that they are counted however old they are${parts.maintenance ? `\n      OR ((c.state = 'active' OR c.application_name = 'pg_repack') AND ${maintenanceKind('c')} IS NOT NULL)` : ''}
      OR c.application_name = ANY($${P.backupNames}::text[])
      OR EXISTS (SELECT 1 FROM unnest($${P.backupPrefixes}::text[]) p WHERE starts_with(c.application_name, p))
      OR c.pid = ANY($${P.watch}::int[]))`
  }
)
SELECT extract(epoch FROM me.now)::float8 * 1000 AS now_ms, me.pid AS self_pid,
       me.superuser AS self_superuser, me.signal_backend AS self_signal_backend, me.read_all_stats AS self_read_all_stats,
       me.usr AS self_user, me.server_version, me.server_version_num, me.max_connections, me.superuser_reserved, me.reserved,
       st.states, coalesce(st.clients, 0) AS clients, coalesce(st.waiting, 0) AS waiting,
       coalesce(st.session_horizon, 0) AS session_horizon, h.prepared_transaction, h.replication_slot, h.standby,
       a.pid, r.rolname AS "user", (SELECT d.datname FROM pg_database d WHERE d.oid = a.datid) AS database, a.application_name AS application,
       host(a.client_addr) AS client_addr, a.client_port = -1 AS local, a.state,
       extract(epoch FROM a.backend_start)::float8 * 1000 AS backend_start_ms,
       extract(epoch FROM a.xact_start)::float8 * 1000 AS xact_start_ms,
       extract(epoch FROM a.query_start)::float8 * 1000 AS query_start_ms,
       extract(epoch FROM a.state_change)::float8 * 1000 AS state_change_ms,
       a.backend_start::text AS backend_start, a.state_change::text AS state_change,
       a.query_start::text AS query_start, a.xact_start::text AS xact_start,
       coalesce(r.rolsuper, true) AS superuser,
       me.superuser OR (NOT coalesce(r.rolsuper, true)
         AND (me.signal_backend OR coalesce(pg_has_role(current_user, a.usesysid, 'USAGE'), false))) AS can_signal,${
           parts.lockGraph
             ? `
       -- lock waits: who blocks a waiter (pg_blocking_pids, called for waiters only: it takes the
       -- lock manager's shared state), and since when (pg_locks.waitstart from 14, read through
       -- to_jsonb so one statement serves 13 too; else the waiter's state_change)
       w.blocked_by,
       CASE WHEN w.pid IS NOT NULL THEN extract(epoch FROM coalesce(
         (SELECT min((to_jsonb(l) ->> 'waitstart')::timestamptz) FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted),
         a.state_change))::float8 * 1000 END AS wait_start_ms,
       CASE WHEN w.pid IS NOT NULL THEN (SELECT min(l.mode) FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted) END AS wait_mode,`
             : `
       NULL::int[] AS blocked_by, NULL::float8 AS wait_start_ms, NULL::text AS wait_mode,`
         }${
           parts.listeners
             ? `
       -- a listener: idle, and its last statement was LISTEN (leading whitespace and comments
       -- allowed); the query text itself stays on the server
       coalesce(a.state = 'idle' AND a.query ~* '^(\\s|--[^\\n]*\\n|/\\*([^*]|\\*+[^*/])*\\*+/)*listen\\M', false) AS listener,`
             : `
       false AS listener,`
         }
       ${parts.maintenance ? `CASE WHEN a.backend_type IS NOT NULL THEN ${maintenanceKind('a')} END` : 'NULL::text'} AS maintenance,
       ${QUERY_ID[queryId]} AS query_id,
       -- the xmin horizon: its transaction id and snapshot as the server wrote them, their ages in
       -- transactions, and whether another running transaction (from this statement's own
       -- snapshot: every session's xid and the prepared transactions) is as old as its snapshot
       a.backend_xid::text AS backend_xid, a.backend_xmin::text AS backend_xmin,
       age(a.backend_xid) AS xid_age, age(a.backend_xmin) AS xmin_age,
       ${
         parts.olderTransaction
           ? `EXISTS (SELECT 1 FROM pg_snapshot_xip(pg_current_snapshot()) x
                WHERE x::xid IS DISTINCT FROM a.backend_xid AND age(x::xid) >= age(a.backend_xmin))`
           : 'false'
       } AS older_transaction_runs
       ${withQuery ? ', a.query' : ''}
  FROM me CROSS JOIN states st CROSS JOIN horizon h
  LEFT JOIN (rows a LEFT JOIN pg_roles r ON r.oid = a.usesysid${parts.lockGraph ? ' LEFT JOIN waiters w ON w.pid = a.pid' : ''}) ON true`;
};

/**
 * pg_stat_activity.query_id exists from 14 (NULL unless compute_query_id is on). When the server's
 * version is known (from the previous snapshot) the column is read directly, or not at all on 13;
 * when it is not, through to_jsonb of the session's row (pg_stat_get_activity(pid), for the rows
 * only), which serves every version.
 */
export type QueryIdForm = 'column' | 'json' | 'none';
const QUERY_ID: Record<QueryIdForm, string> = { column: 'a.query_id::text', json: "(SELECT to_jsonb(x) ->> 'query_id' FROM pg_stat_get_activity(a.pid) x WHERE x.pid = a.pid)", none: 'NULL::text' };

/** A statement's text and the name it is prepared under (one name per text, in this process). */
interface Statement {
  text: string;
  name: string;
}
const STATEMENTS = new Map<string, Statement>();
const statement = (v: Variant): Statement => {
  const p = v.parts;
  const key = `${v.withQuery}/${v.queryId}/${+p.lockGraph}${+p.listeners}${+p.maintenance}${+p.olderTransaction}/${v.reasons?.join(',') ?? 'all'}`;
  let s = STATEMENTS.get(key);
  if (s === undefined) STATEMENTS.set(key, (s = { text: sql(v), name: `pg_reaper_snapshot_${STATEMENTS.size + 1}` }));
  return s;
};

/** How to read query_id from a server of this version (undefined: not known yet). */
export const queryIdForm = (versionNum: number | undefined): QueryIdForm => (versionNum === undefined ? 'json' : versionNum >= 140000 ? 'column' : 'none');

interface Row {
  now_ms: number;
  self_pid: number;
  self_superuser: boolean;
  self_signal_backend: boolean;
  self_read_all_stats: boolean;
  self_user: string;
  server_version: string;
  server_version_num: number;
  max_connections: number;
  superuser_reserved: number;
  reserved: number;
  states: [string | null, number, number][] | null;
  session_horizon: number;
  prepared_transaction: number;
  replication_slot: number;
  standby: number;
  clients: number;
  waiting: number;
  pid: number | null;
  user: string | null;
  database: string | null;
  application: string | null;
  client_addr: string | null;
  local: boolean | null;
  state: string | null;
  backend_start_ms: number | null;
  xact_start_ms: number | null;
  query_start_ms: number | null;
  state_change_ms: number | null;
  backend_start: string | null;
  state_change: string | null;
  query_start: string | null;
  xact_start: string | null;
  superuser: boolean;
  can_signal: boolean;
  blocked_by: number[] | null;
  wait_start_ms: number | null;
  wait_mode: string | null;
  listener: boolean;
  maintenance: string | null;
  query_id: string | null;
  backend_xid: string | null;
  backend_xmin: string | null;
  xid_age: number | null;
  xmin_age: number | null;
  older_transaction_runs: boolean;
  query?: string | null;
}

/**
 * Which sessions a run needs as rows (the rest are only counted): the smallest threshold of each
 * reason across the target's policies, by position in the table of reasons, in its compiled
 * unit (null: no policy has it), and every idle session (keepIdle).
 */
export interface SnapshotFilter {
  thresholds: readonly (number | null)[];
  allIdle: boolean;
  /** Sessions with these application_names, or names beginning with these prefixes (the backup
   *  tools that protect.backups spares), always come as rows, so that they are counted. */
  backupNames: readonly string[];
  backupPrefixes: readonly string[];
  /** The optional parts of the statement these policies and settings read. */
  parts: SnapshotParts;
}

/**
 * `maintenance` (default true): recognise maintenance statements (protect.maintenance), in the
 * complete snapshot (no filter: the filter says which parts it needs). `watch`: pids sent as rows
 * whatever the filter, to learn whether those sessions still live (the sessions already reported
 * as denied, which are not reported again while they do).
 */
export async function readSnapshot(db: Db, opts: { withQuery: boolean; filter?: SnapshotFilter | undefined; maintenance?: boolean; watch?: readonly number[] | undefined; serverVersionNum?: number | undefined }): Promise<Snapshot> {
  const f = opts.filter;
  const queryId = queryIdForm(opts.serverVersionNum);
  let st: Statement;
  let params: unknown[];
  if (f) {
    const reasons = [...ENTRIES.keys()].filter((r) => f.thresholds[r] !== null);
    st = statement({ withQuery: opts.withQuery, queryId, parts: f.parts, reasons });
    // in the order of P
    params = [f.allIdle, f.backupNames, f.backupPrefixes, opts.watch ?? [], ...reasons.map((r) => f.thresholds[r])];
  } else {
    st = statement({ withQuery: opts.withQuery, queryId, parts: { ...ALL_PARTS, maintenance: opts.maintenance ?? true }, reasons: null });
    params = [];
  }
  const rows = await db.query<Row>(st.text, params, { prepare: st.name });
  const first = rows[0];
  if (!first) throw new Error('snapshot query returned no row: is the connected role visible in pg_roles?');
  const sessions: Session[] = [];
  for (const r of rows) {
    if (r.pid === null) continue;
    sessions.push({
      pid: r.pid,
      user: r.user,
      database: r.database,
      application: r.application ?? '',
      clientAddr: r.client_addr,
      local: r.local === true,
      state: r.state,
      backendStartMs: r.backend_start_ms,
      xactStartMs: r.xact_start_ms,
      queryStartMs: r.query_start_ms,
      stateChangeMs: r.state_change_ms,
      backendStart: r.backend_start,
      stateChange: r.state_change,
      queryStart: r.query_start,
      xactStart: r.xact_start,
      superuser: r.superuser,
      canSignal: r.can_signal,
      blockedBy: r.blocked_by,
      waitStartMs: r.wait_start_ms,
      waitMode: r.wait_mode,
      listener: r.listener,
      maintenance: r.maintenance,
      queryId: r.query_id,
      backendXid: r.backend_xid,
      backendXmin: r.backend_xmin,
      xidAge: r.xid_age,
      xminAge: r.xmin_age,
      olderTransactionRuns: r.older_transaction_runs,
      ...(opts.withQuery ? { query: r.query ?? null } : {}),
    });
  }
  return {
    nowMs: first.now_ms,
    selfPid: first.self_pid,
    privileges: { superuser: first.self_superuser, signalBackend: first.self_signal_backend, readAllStats: first.self_read_all_stats },
    server: { version: first.server_version, versionNum: first.server_version_num, user: first.self_user },
    // client slots: what ordinary clients may use
    clientSlots: first.max_connections - first.superuser_reserved - first.reserved,
    complete: f === undefined,
    clients: first.clients,
    waiting: first.waiting,
    states: (first.states ?? []).map(([state, count, oldestMs]) => ({ state, count, oldestMs })),
    horizon: { session: first.session_horizon, prepared_transaction: first.prepared_transaction, replication_slot: first.replication_slot, standby: first.standby },
    sessions,
  };
}
