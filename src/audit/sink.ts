import type { Config, TargetConfig } from '../config/schema.js';
import { endpointOf, openTarget } from '../db/target.js';
import { quoteIdent } from '../run/privileges.js';
import type { ProblemContext } from './problem.js';
import { insertSql, parseTableName, probeSql, type TableName } from './table.js';
import type { AuditSink } from './writer.js';

// The audit table's connection: its own pool (one connection), never a target's, so writing
// never waits on a run nor a run on writing. On one of the targets it connects as that target
// does (TLS, passwordFile and timeouts included); our application_name keeps every replica from
// reaping it.

export type AuditConfig = NonNullable<Config['audit']>;

/** Where the audit rows go, as a target's connection settings. */
export function auditEndpoint(config: Config): TargetConfig {
  const audit = config.audit!;
  if (audit.target !== undefined) {
    // validated config: the target exists
    const t = config.targets.find((x) => x.name === audit.target)!;
    return { ...t, name: `audit (target ${t.name})` };
  }
  return { name: 'audit', connectionString: audit.connectionString!, connectTimeout: 5000, queryTimeout: 30_000 } as TargetConfig;
}

export function auditTable(config: Config): TableName {
  const parsed = parseTableName(config.audit!.table);
  // validated config: the name parses
  if (!parsed.ok) throw new Error(`audit.table: ${parsed.error}`);
  return parsed.table;
}

/** The role the audit connection uses, when the config says (for the GRANT in error messages). */
export function auditRole(config: Config): string | undefined {
  const user = endpointOf(auditEndpoint(config), { applicationName: config.applicationName }).pool.user;
  return user === undefined ? undefined : quoteIdent(user);
}

export function problemContext(config: Config): ProblemContext {
  return { table: auditTable(config), role: auditRole(config) };
}

/** Same key, same writer: a reload that leaves these alone keeps the writer and its queue. */
export function auditKey(config: Config): string | undefined {
  if (!config.audit) return undefined;
  return JSON.stringify({ audit: config.audit, endpoint: auditEndpoint(config), applicationName: config.applicationName });
}

export function openAuditSink(config: Config, onError?: (message: string) => void): AuditSink {
  const table = auditTable(config);
  const db = openTarget(auditEndpoint(config), { applicationName: config.applicationName, ...(onError ? { onError } : {}) });
  const insert = insertSql(table);
  const probe = probeSql(table);
  return {
    insert: async (rows) => void (await db.query(insert, [JSON.stringify(rows)])),
    probe: async () => void (await db.query(probe)),
    close: () => db.close(),
  };
}
