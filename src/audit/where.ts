import { parseConnInfo } from '../config/conninfo.js';
import type { Config } from '../config/schema.js';

/** Where the audit table is, for messages: "target NAME", or host:port/dbname (never a password). */
export function auditWhere(config: Config): string {
  const audit = config.audit!;
  if (audit.target !== undefined) return `target ${audit.target}`;
  const parsed = parseConnInfo(audit.connectionString!);
  if (!parsed.ok) return 'the audit server';
  const c = parsed.info;
  return `${c.host ?? 'localhost'}:${c.port ?? 5432}/${c.dbname ?? c.user ?? ''}`;
}
