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
// The statement's parameters: $1 every session as a row; then the smallest threshold of each
// reason, in the table's order; then the rest.
const P = { all: 1, thresholds: 2, allIdle: ENTRIES.length + 2, maintenance: ENTRIES.length + 3, backupNames: ENTRIES.length + 4, backupPrefixes: ENTRIES.length + 5, watch: ENTRIES.length + 6 };
const sql = (withQuery: boolean, queryId: QueryIdForm) => `
WITH me AS (
  SELECT clock_timestamp() AS now, pg_backend_pid() AS pid, r.rolsuper AS superuser, current_user AS usr,
         current_setting('server_version') AS server_version, current_setting('server_version_num')::int AS server_version_num,
         current_setting('max_connections')::int AS max_connections,
         current_setting('superuser_reserved_connections')::int AS superuser_reserved,
         coalesce(current_setting('reserved_connections', true)::int, 0) AS reserved,
         pg_has_role(current_user, 'pg_signal_backend', 'USAGE') AS signal_backend,
         pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS read_all_stats
    FROM pg_roles r WHERE r.rolname = current_user
),
clients AS (
  SELECT a.* FROM pg_stat_activity a, me
   WHERE (a.backend_type = 'client backend' OR (a.backend_type IS NULL AND a.usesysid IS NOT NULL AND a.datid IS NOT NULL)) AND a.pid <> me.pid
),
waiters AS (
  SELECT c.pid, pg_blocking_pids(c.pid) AS blocked_by FROM clients c WHERE c.wait_event_type = 'Lock'
),
-- maintenance that leaves damage or lost work when killed: the statement running now, after
-- leading whitespace and comments (the query text stays on the server), and pg_repack's
-- sessions by their name; only with protect.maintenance
maintenance AS (
  SELECT c.pid, CASE
           WHEN c.application_name = 'pg_repack' THEN 'pg_repack'
           WHEN c.state <> 'active' THEN NULL
           WHEN q.s ~* '^vacuum\\M' THEN 'VACUUM'
           WHEN q.s ~* '^analy[sz]e\\M' THEN 'ANALYZE'
           WHEN q.s ~* '^create\\s+(unique\\s+)?index\\s+concurrently\\M' THEN 'CREATE INDEX CONCURRENTLY'
           WHEN q.s ~* '^reindex\\s*(\\([^)]*\\mconcurrently\\M[^)]*\\)|(\\([^)]*\\)\\s*)?(index|table|schema|database|system)\\s+concurrently\\M)' THEN 'REINDEX CONCURRENTLY'
           WHEN q.s ~* '^cluster\\M' THEN 'CLUSTER'
           WHEN q.s ~* '^refresh\\s+materialized\\s+view\\s+concurrently\\M' THEN 'REFRESH MATERIALIZED VIEW CONCURRENTLY'
         END AS kind
    FROM clients c,
         LATERAL (SELECT regexp_replace(c.query, '^(\\s|--[^\\n]*(\\n|$)|/\\*([^*]|\\*+[^*/])*\\*+/)*', '') AS s) q
   WHERE $${P.maintenance}::bool AND c.backend_type IS NOT NULL AND (c.state = 'active' OR c.application_name = 'pg_repack')
),
states AS (
  SELECT json_agg(json_build_array(g.state, g.n, g.oldest_ms)) AS states, sum(g.n)::int AS clients,
         coalesce(max(g.horizon), 0) AS session_horizon
    FROM (SELECT CASE WHEN c.backend_type IS NULL THEN NULL ELSE c.state END AS state, count(*)::int AS n,
                 coalesce(max(extract(epoch FROM me.now - c.state_change)::float8 * 1000), 0) AS oldest_ms,
                 max(greatest(age(c.backend_xid), age(c.backend_xmin))) AS horizon
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
rows AS (
  SELECT c.* FROM clients c, me
   WHERE $${P.all}::bool OR (c.backend_type IS NOT NULL AND (
         ($${P.allIdle}::bool AND c.state = 'idle')
${ENTRIES.map((e, r) => `      OR ${e.prefilter(`$${P.thresholds + r}`)}`).join('\n')}
      -- protected sessions always come as rows, so that they are counted however old they are
      OR c.pid IN (SELECT m.pid FROM maintenance m WHERE m.kind IS NOT NULL)
      OR c.application_name = ANY($${P.backupNames}::text[])
      OR EXISTS (SELECT 1 FROM unnest($${P.backupPrefixes}::text[]) p WHERE starts_with(c.application_name, p))
      OR c.pid = ANY($${P.watch}::int[])))
)
SELECT extract(epoch FROM me.now)::float8 * 1000 AS now_ms, me.pid AS self_pid,
       me.superuser AS self_superuser, me.signal_backend AS self_signal_backend, me.read_all_stats AS self_read_all_stats,
       me.usr AS self_user, me.server_version, me.server_version_num, me.max_connections, me.superuser_reserved, me.reserved,
       st.states, coalesce(st.clients, 0) AS clients, (SELECT count(*)::int FROM waiters) AS waiting,
       coalesce(st.session_horizon, 0) AS session_horizon, h.prepared_transaction, h.replication_slot, h.standby,
       a.pid, a.usename AS "user", a.datname AS database, a.application_name AS application,
       host(a.client_addr) AS client_addr, a.client_port = -1 AS local, a.state,
       extract(epoch FROM a.backend_start)::float8 * 1000 AS backend_start_ms,
       extract(epoch FROM a.xact_start)::float8 * 1000 AS xact_start_ms,
       extract(epoch FROM a.query_start)::float8 * 1000 AS query_start_ms,
       extract(epoch FROM a.state_change)::float8 * 1000 AS state_change_ms,
       a.backend_start::text AS backend_start, a.state_change::text AS state_change,
       a.query_start::text AS query_start, a.xact_start::text AS xact_start,
       coalesce(r.rolsuper, true) AS superuser,
       me.superuser OR (NOT coalesce(r.rolsuper, true)
         AND (me.signal_backend OR coalesce(pg_has_role(current_user, a.usesysid, 'USAGE'), false))) AS can_signal,
       -- lock waits: who blocks a waiter (pg_blocking_pids, called for waiters only: it takes the
       -- lock manager's shared state), and since when (pg_locks.waitstart from 14, read through
       -- to_jsonb so one statement serves 13 too; else the waiter's state_change)
       w.blocked_by,
       CASE WHEN w.pid IS NOT NULL THEN extract(epoch FROM coalesce(
         (SELECT min((to_jsonb(l) ->> 'waitstart')::timestamptz) FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted),
         a.state_change))::float8 * 1000 END AS wait_start_ms,
       CASE WHEN w.pid IS NOT NULL THEN (SELECT min(l.mode) FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted) END AS wait_mode,
       -- a listener: idle, and its last statement was LISTEN (leading whitespace and comments
       -- allowed); the query text itself stays on the server
       coalesce(a.state = 'idle' AND a.query ~* '^(\\s|--[^\\n]*\\n|/\\*([^*]|\\*+[^*/])*\\*+/)*listen\\M', false) AS listener,
       m.kind AS maintenance,
       ${QUERY_ID[queryId]} AS query_id,
       -- the xmin horizon: its transaction id and snapshot as the server wrote them, their ages in
       -- transactions, and whether another running transaction (from this statement's own
       -- snapshot: every session's xid and the prepared transactions) is as old as its snapshot
       a.backend_xid::text AS backend_xid, a.backend_xmin::text AS backend_xmin,
       age(a.backend_xid) AS xid_age, age(a.backend_xmin) AS xmin_age,
       EXISTS (SELECT 1 FROM pg_snapshot_xip(pg_current_snapshot()) x
                WHERE x::xid IS DISTINCT FROM a.backend_xid AND age(x::xid) >= age(a.backend_xmin)) AS older_transaction_runs
       ${withQuery ? ', a.query' : ''}
  FROM me CROSS JOIN states st CROSS JOIN horizon h
  LEFT JOIN (rows a LEFT JOIN pg_roles r ON r.oid = a.usesysid LEFT JOIN waiters w ON w.pid = a.pid
             LEFT JOIN maintenance m ON m.pid = a.pid) ON true`;

/**
 * pg_stat_activity.query_id exists from 14 (NULL unless compute_query_id is on). When the server's
 * version is known (from the previous snapshot) the column is read directly, or not at all on 13;
 * when it is not, through to_jsonb(a), which serves every version but costs about 0.1 ms a row.
 */
export type QueryIdForm = 'column' | 'json' | 'none';
const QUERY_ID: Record<QueryIdForm, string> = { column: 'a.query_id::text', json: "to_jsonb(a) ->> 'query_id'", none: 'NULL::text' };
const STATEMENTS = new Map<string, string>();
const statement = (withQuery: boolean, queryId: QueryIdForm): string => {
  const key = `${withQuery}/${queryId}`;
  let text = STATEMENTS.get(key);
  if (text === undefined) STATEMENTS.set(key, (text = sql(withQuery, queryId)));
  return text;
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
}

/**
 * `maintenance` (default true): recognise maintenance statements (protect.maintenance). `watch`:
 * pids sent as rows whatever the filter, to learn whether those sessions still live (the sessions
 * already reported as denied, which are not reported again while they do).
 */
export async function readSnapshot(db: Db, opts: { withQuery: boolean; filter?: SnapshotFilter | undefined; maintenance?: boolean; watch?: readonly number[] | undefined; serverVersionNum?: number | undefined }): Promise<Snapshot> {
  const f = opts.filter;
  const watch = opts.watch ?? [];
  // in the order of P
  const params = f
    ? [false, ...f.thresholds, f.allIdle, opts.maintenance ?? true, f.backupNames, f.backupPrefixes, watch]
    : [true, ...ENTRIES.map(() => null), false, opts.maintenance ?? true, [], [], watch];
  const rows = await db.query<Row>(statement(opts.withQuery, queryIdForm(opts.serverVersionNum)), params);
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
