import { auditEndpoint, auditRole, auditTable } from '../audit/sink.js';
import { ddl, grants, probeSql } from '../audit/table.js';
import { auditWhere } from '../audit/where.js';
import type { Config } from '../config/schema.js';
import { openTarget } from '../db/target.js';
import { describeError } from '../util/errors.js';

// `pg-reaper audit-init`: creates the audit table (and its schema) if missing, so that the
// reaper's own role needs nothing but INSERT on it; or, with --print, prints the DDL for a role
// that may create it. Idempotent: what exists is left alone (and then only checked), so a role
// without CREATE can run it on a table someone else made. Exit 0 done, 1 failed, 2 no audit.

type Line = (text: string) => void;

export async function auditInit(config: Config, file: string, print: boolean, out: Line, err: Line): Promise<number> {
  if (!config.audit) {
    err(`pg-reaper: ${file}: no audit in the config: add audit: { target: NAME } or audit: { connectionString: ... } (README: Audit table)`);
    return 2;
  }
  const table = auditTable(config);
  const where = auditWhere(config);
  const role = auditRole(config);
  if (print) {
    out(`-- the audit table of pg-reaper, ${table.sql} (${where}); run as a role that may create it`);
    out('BEGIN;');
    for (const statement of ddl(table)) out(`${statement};`);
    if (role !== undefined) for (const g of grants(table, role)) out(`${g};`);
    else out(`-- then, for the role pg-reaper connects as: ${grants(table, '<role>').join('; ')};`);
    out('COMMIT;');
    return 0;
  }

  const db = openTarget(auditEndpoint(config), { applicationName: config.applicationName });
  try {
    const created = await db.withConnection(async (c) => {
      await c.query('BEGIN');
      try {
        // two replicas starting at once must not both try to create it
        await c.query("SELECT pg_advisory_xact_lock(hashtext('pg-reaper audit-init'))");
        const [exists] = await c.query<{ table: boolean; schema: boolean }>(
          'SELECT to_regclass($1) IS NOT NULL AS table, ($2::text IS NULL OR EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $2)) AS schema',
          [table.sql, table.schema ?? null],
        );
        // only what is missing: CREATE ... IF NOT EXISTS still needs the privilege to create
        const statements = exists!.table ? [] : ddl(table).filter((s) => exists!.schema === false || !s.startsWith('CREATE SCHEMA'));
        for (const statement of statements) await c.query(statement);
        await c.query('COMMIT');
        return !exists!.table;
      } catch (e) {
        await c.query('ROLLBACK').catch(() => undefined);
        throw e;
      }
    });
    // and our role may write it (a table made by someone else, or made by hand)
    await db.query(probeSql(table));
    out(`${table.sql} on ${where}: ${created ? 'created' : 'already there'}; pg-reaper can insert into it`);
    return 0;
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    const hint =
      code === '42501'
        ? `: the role may not create it or insert into it; have the database owner run "pg-reaper audit-init -c ${file} --print | psql ..." (it grants ${role ?? 'the role'} INSERT)`
        : code === '42703' || code === '42804'
          ? `: ${table.sql} exists without the columns pg-reaper writes; compare it with "pg-reaper audit-init -c ${file} --print"`
          : '';
    err(`pg-reaper: audit-init: ${table.sql} on ${where}: ${describeError(e)}${hint}`);
    return 1;
  } finally {
    await db.close().catch(() => undefined);
  }
}
