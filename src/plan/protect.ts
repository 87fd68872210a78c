import type { Session, Snapshot } from '../db/session.js';

// Sessions no policy acts on, whatever its thresholds: the backup, dump and copy tools (by the
// application_name they give themselves, decided here) and maintenance that leaves damage or
// lost work when killed (by the statement running now, decided on the server: see
// src/db/snapshot.ts). Both on by default; `protect: { backups: false }` or `{ maintenance:
// false }` turns one off.

export interface Protect {
  backups: boolean;
  maintenance: boolean;
}

export const PROTECT_ALL: Protect = { backups: true, maintenance: true };

export const PROTECTION_KINDS = ['backup', 'maintenance'] as const;
export type ProtectionKind = (typeof PROTECTION_KINDS)[number];

export interface Protection {
  kind: ProtectionKind;
  /** The tool (pg_dump, pgBackRest, …) or the statement (VACUUM, CREATE INDEX CONCURRENTLY, …). */
  what: string;
}

/**
 * The application_name each tool sends by default, exactly as it sends it (case and suffix),
 * from the tools' sources. Replication connections (pg_basebackup, barman's WAL streaming) are
 * walsenders, which are never client backends anyway; they are listed for completeness.
 */
export const BACKUP_TOOLS: readonly { tool: string; names?: readonly string[]; prefixes?: readonly string[] }[] = [
  // PostgreSQL's client programs connect with fallback_application_name = their program name
  { tool: 'pg_dump', names: ['pg_dump'] },
  { tool: 'pg_dumpall', names: ['pg_dumpall'] },
  { tool: 'pg_restore', names: ['pg_restore'] },
  { tool: 'pg_basebackup', names: ['pg_basebackup'] },
  // SET application_name = 'pgBackRest [COMMAND]', e.g. "pgBackRest [backup]"
  { tool: 'pgBackRest', prefixes: ['pgBackRest ['] },
  // "barman" for its SQL connection; barman_receive_wal, barman_streaming_backup and
  // barman_cloud_backup for the rest
  { tool: 'barman', names: ['barman'], prefixes: ['barman_'] },
  // PGAPPNAME defaults to "wal-g"
  { tool: 'WAL-G', names: ['wal-g'] },
  // PGAPPNAME = "pgcopydb[PID] PROCESS-TITLE", inherited by the pg_dump and pg_restore it runs
  { tool: 'pgcopydb', prefixes: ['pgcopydb['] },
];

export const BACKUP_NAMES: readonly string[] = BACKUP_TOOLS.flatMap((t) => t.names ?? []);
export const BACKUP_PREFIXES: readonly string[] = BACKUP_TOOLS.flatMap((t) => t.prefixes ?? []);

const toolByName = new Map(BACKUP_TOOLS.flatMap((t) => (t.names ?? []).map((n) => [n, t.tool] as const)));
const toolByPrefix = BACKUP_TOOLS.flatMap((t) => (t.prefixes ?? []).map((p) => [p, t.tool] as const));

/** The backup tool an application_name belongs to, or undefined. Runs for every session. */
export function backupTool(application: string): string | undefined {
  const tool = toolByName.get(application);
  if (tool !== undefined) return tool;
  for (const [prefix, t] of toolByPrefix) if (application.startsWith(prefix)) return t;
  return undefined;
}

/** What the server recognises as maintenance (the `maintenance` column of the snapshot). */
export const MAINTENANCE = ['VACUUM', 'ANALYZE', 'CREATE INDEX CONCURRENTLY', 'REINDEX CONCURRENTLY', 'CLUSTER', 'REFRESH MATERIALIZED VIEW CONCURRENTLY', 'pg_repack'] as const;

/** Why no policy may act on this session, or undefined. */
export function protectionOf(s: Session, protect: Protect): Protection | undefined {
  if (protect.maintenance && s.maintenance !== null) return { kind: 'maintenance', what: s.maintenance };
  if (protect.backups) {
    const tool = backupTool(s.application);
    if (tool !== undefined) return { kind: 'backup', what: tool };
  }
  return undefined;
}

export const describeProtection = (p: Protection): string => `protected: ${p.kind} (${p.what})`;

/** The names a config protects, for `check`. */
export function protectionSummary(protect: Protect): string {
  const names = [...BACKUP_NAMES, ...BACKUP_PREFIXES.map((p) => `${p}*`)].join(', ');
  const backups = protect.backups ? `backups by application_name (${names})` : 'backups: off (protect.backups: false)';
  const maintenance = protect.maintenance ? `maintenance by the statement running now (${MAINTENANCE.filter((m) => m !== 'pg_repack').join(', ')}) and pg_repack's sessions` : 'maintenance: off (protect.maintenance: false)';
  return `protected: ${backups}; ${maintenance}`;
}

/** How many of the snapshot's sessions are protected, by kind (those we cannot see are never judged). */
export function protectedCounts(snapshot: Snapshot, protect: Protect, applicationName: string): Record<ProtectionKind, number> {
  const counts: Record<ProtectionKind, number> = { backup: 0, maintenance: 0 };
  for (const s of snapshot.sessions) {
    if (s.backendStart === null || s.application === applicationName) continue;
    const p = protectionOf(s, protect);
    if (p) counts[p.kind]++;
  }
  return counts;
}
