// How the audit table is named in the config (audit.table): checked here with the rest of the
// config; src/audit/table.ts builds its SQL from the parsed name.

export const DEFAULT_AUDIT_TABLE = 'reaper_audit.actions';

export interface TableName {
  /** Absent: the first schema of the connection's search_path. */
  schema?: string;
  name: string;
  /** As written in SQL: schema.name. */
  sql: string;
}

const IDENT = /^[a-z_][a-z0-9_]{0,62}$/;

/** "schema.table" or "table", as unquoted lowercase identifiers; or an error saying what would be accepted. */
export function parseTableName(text: string): { ok: true; table: TableName } | { ok: false; error: string } {
  const parts = text.split('.');
  if (parts.length > 2 || !parts.every((p) => IDENT.test(p))) {
    return { ok: false, error: `expected a table name like "${DEFAULT_AUDIT_TABLE}" (SCHEMA.TABLE or TABLE, each of lowercase letters, digits and "_", starting with a letter or "_", at most 63 characters), got ${JSON.stringify(text)}` };
  }
  const [schema, name] = parts.length === 2 ? [parts[0]!, parts[1]!] : [undefined, parts[0]!];
  if (schema?.startsWith('pg_')) return { ok: false, error: `schema names beginning with "pg_" are reserved by PostgreSQL; use another, like "reaper_audit", got ${JSON.stringify(text)}` };
  return { ok: true, table: { ...(schema !== undefined ? { schema } : {}), name, sql: text } };
}
