import type { TableName } from '../config/table-name.js';

// The audit table's shape, in one place: its columns, the DDL that audit-init runs or prints, the
// INSERT of a batch and the probe that checks the table is writable (its name is checked with
// the config: config/table-name.ts). Pure text: no connection here.

export { DEFAULT_AUDIT_TABLE, parseTableName, type TableName } from '../config/table-name.js';

/**
 * Each column: its DDL, and how a row's JSON field becomes it. Timestamps travel as epoch
 * microseconds (exact integers), so what is stored is exactly what the target server reported,
 * whatever the DateStyle or TimeZone of either connection.
 */
interface Column {
  name: string;
  type: string;
  /** Constraints after the type. */
  rest?: string;
  /** The field in the batch's JSON and its type, when it differs from the column. */
  field?: string;
  fieldType?: string;
  /** The SELECT expression over the field (r.<field>). */
  expr?: string;
  /** Since the first version of the table: added (audit-init adds it to an older table), or made optional (drops its NOT NULL there). */
  since?: 'added' | 'optional';
}

const fromMicros = (field: string) => `timestamptz 'epoch' + r.${field} * interval '1 microsecond'`;

export const COLUMNS: readonly Column[] = [
  { name: 'id', type: 'uuid', rest: 'PRIMARY KEY' },
  { name: 'at', type: 'timestamptz', rest: 'NOT NULL', field: 'at_us', fieldType: 'bigint', expr: fromMicros('at_us') },
  { name: 'replica', type: 'text', rest: 'NOT NULL' },
  { name: 'target', type: 'text', rest: 'NOT NULL' },
  { name: 'policy', type: 'text', rest: 'NOT NULL' },
  { name: 'reason', type: 'text', rest: 'NOT NULL' },
  { name: 'action', type: 'text', rest: 'NOT NULL' },
  { name: 'outcome', type: 'text', rest: 'NOT NULL' },
  { name: 'dry_run', type: 'boolean', rest: 'NOT NULL' },
  { name: 'pid', type: 'integer', rest: 'NOT NULL' },
  { name: 'backend_start', type: 'timestamptz', field: 'backend_start_us', fieldType: 'bigint', expr: fromMicros('backend_start_us') },
  { name: 'usename', type: 'text' },
  { name: 'datname', type: 'text' },
  { name: 'application_name', type: 'text' },
  { name: 'client_addr', type: 'text' },
  { name: 'state', type: 'text' },
  { name: 'seconds', type: 'double precision', rest: 'NOT NULL' },
  { name: 'threshold_seconds', type: 'double precision', since: 'optional' },
  { name: 'transactions', type: 'bigint', since: 'added' },
  { name: 'threshold_transactions', type: 'bigint', since: 'added' },
  { name: 'query_id', type: 'bigint' },
  { name: 'query', type: 'text' },
  { name: 'escalated', type: 'boolean', rest: 'NOT NULL DEFAULT false' },
  { name: 'blocked_sessions', type: 'integer' },
  { name: 'details', type: 'jsonb', since: 'added' },
  { name: 'error', type: 'text' },
];

const COMMENTS: Record<string, string> = {
  id: 'made by pg-reaper (UUIDv7) before the first attempt to write the row: a retried batch cannot add it twice',
  at: "the target server's clock (clock_timestamp()) when the run read pg_stat_activity",
  replica: 'the pg-reaper process that acted: POD_NAME, else the host name',
  outcome: 'terminated, signalled, cancelled, would_terminate, would_cancel, skipped_*, denied or failed',
  backend_start: 'with pid, the identity of the session, exactly as the target server reported it',
  client_addr: 'the client address; local for a Unix-socket session',
  seconds: 'how long the session had been in the condition (reason) when the run read it (xmin_age: how long its transaction had been open)',
  threshold_seconds: 'the limit it crossed, for a reason measured in time; NULL for one measured in transactions',
  transactions: 'for a reason measured in transactions (xmin_age): how many transactions old the horizon it held was',
  threshold_transactions: 'for a reason measured in transactions: the limit it crossed',
  details: 'what the reason adds: blockedSessions and blockedSeconds for blocking, queuedBehind for lock_wait',
  query_id: 'pg_stat_activity.query_id (PostgreSQL 14+, with compute_query_id); NULL where the server does not compute it',
  query: 'only with logQueryText: true',
  error: 'for failed: the error and its SQLSTATE',
};

const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;

/** The statements that create the table (and its schema) if missing, idempotently. */
export function ddl(table: TableName): string[] {
  const index = `${table.name.slice(0, 56)}_at_idx`;
  return [
    ...(table.schema !== undefined ? [`CREATE SCHEMA IF NOT EXISTS ${table.schema}`] : []),
    `CREATE TABLE IF NOT EXISTS ${table.sql} (\n${COLUMNS.map((c) => `  ${c.name} ${c.type}${c.rest ? ` ${c.rest}` : ''}`).join(',\n')}\n)`,
    // a table made by an earlier version gains the columns added since, and loses the NOT NULL
    // of those that became optional
    `ALTER TABLE ${table.sql}\n${COLUMNS.filter((c) => c.since !== undefined).map((c) => (c.since === 'added' ? `  ADD COLUMN IF NOT EXISTS ${c.name} ${c.type}` : `  ALTER COLUMN ${c.name} DROP NOT NULL`)).join(',\n')}`,
    `CREATE INDEX IF NOT EXISTS ${index} ON ${table.sql} (at)`,
    `COMMENT ON TABLE ${table.sql} IS ${quote('pg-reaper: one row per action of every run, whatever its outcome')}`,
    ...Object.entries(COMMENTS).map(([column, text]) => `COMMENT ON COLUMN ${table.sql}.${column} IS ${quote(text)}`),
  ];
}

/** What the reaper's role needs on the table: nothing but INSERT (and USAGE on its schema). */
export function grants(table: TableName, role: string): string[] {
  return [...(table.schema !== undefined ? [`GRANT USAGE ON SCHEMA ${table.schema} TO ${role}`] : []), `GRANT INSERT ON ${table.sql} TO ${role}`];
}

const columnList = COLUMNS.map((c) => c.name).join(', ');

/**
 * One statement per batch: the rows as one JSON parameter. ON CONFLICT DO NOTHING (with no
 * conflict target, so INSERT is the only privilege needed) makes a retry of a batch that the
 * server already committed, whose answer was lost with the connection, a no-op.
 */
export function insertSql(table: TableName): string {
  const fields = COLUMNS.map((c) => `${c.field ?? c.name} ${c.fieldType ?? c.type}`).join(', ');
  const select = COLUMNS.map((c) => c.expr ?? `r.${c.name}`).join(', ');
  return `INSERT INTO ${table.sql} (${columnList}) SELECT ${select} FROM json_to_recordset($1::json) AS r(${fields}) ON CONFLICT DO NOTHING`;
}

/** Checks that the table exists with our columns and that we may insert, without writing a row. */
export function probeSql(table: TableName): string {
  return `INSERT INTO ${table.sql} (${columnList}) SELECT ${COLUMNS.map((c) => `NULL::${c.type}`).join(', ')} WHERE false`;
}
