import type { Privileges } from '../db/session.js';

// What the reaper's role lacks on a target, said with the GRANT that fixes it (logged by the
// daemon and once, printed by check --connect).

/** Warnings about missing privileges, each ending with the GRANT that fixes it: logged once per target and change. */
export function privilegeWarnings(p: Privileges, role: string): string[] {
  if (p.superuser) return [];
  const out: string[] = [];
  if (!p.readAllStats) out.push(`cannot see other roles' sessions in pg_stat_activity (state and times are hidden, so they are never judged): run GRANT pg_read_all_stats TO ${quoteIdent(role)};`);
  if (!p.signalBackend) out.push(`can only signal sessions of roles it has the privileges of: run GRANT pg_signal_backend TO ${quoteIdent(role)};`);
  return out;
}

/**
 * A role name as an SQL identifier, always in double quotes: a quoted name is right whatever it
 * is (capitals, dashes, a keyword such as "user"), where deciding when quotes may be left out
 * would need the server's list of keywords.
 */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
