import type { Db } from './db.js';

// The only SQL that signals backends. One statement per action kind signals every victim, and
// the guard sits in the statement itself: a backend is signalled only while its pid,
// backend_start and state_change still equal what the snapshot saw (so a session that ran a
// query since, or a reused pid, is left alone), it is still a client backend that is not ours,
// and, unless we are superuser, its role is still not a superuser. A row whose guard fails
// comes back with `signalled` NULL.
const signalSql = (fn: 'pg_terminate_backend' | 'pg_cancel_backend') => `
SELECT v.pid, ${fn}(a.pid) AS signalled
  FROM unnest($1::int[], $2::text[], $3::text[]) AS v(pid, backend_start, state_change)
  LEFT JOIN pg_stat_activity a
    ON a.pid = v.pid
   AND a.backend_start = v.backend_start::timestamptz
   AND a.state_change IS NOT DISTINCT FROM v.state_change::timestamptz
   AND a.backend_type = 'client backend'
   AND a.pid <> pg_backend_pid()
   AND a.application_name IS DISTINCT FROM $4
   AND ((SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
        OR NOT coalesce((SELECT rolsuper FROM pg_roles WHERE oid = a.usesysid), true))`;

const SQL = { terminate: signalSql('pg_terminate_backend'), cancel: signalSql('pg_cancel_backend') };

// Which of the signalled backends are still there: one query per poll for the whole batch
// (pg_terminate_backend's own timeout would poll each pid in turn, 100 ms apart).
const REMAINING_SQL = `
SELECT v.pid
  FROM unnest($1::int[], $2::text[]) AS v(pid, backend_start)
  JOIN pg_stat_activity a ON a.pid = v.pid AND a.backend_start = v.backend_start::timestamptz`;

export interface Victim {
  pid: number;
  backendStart: string;
  stateChange: string | null;
}

/** pid → true (signalled), false (the server found no such process), null (guard failed). */
export async function signalBackends(db: Db, action: 'terminate' | 'cancel', victims: readonly Victim[], ownApplication: string): Promise<Map<number, boolean | null>> {
  const rows = await db.query<{ pid: number; signalled: boolean | null }>(SQL[action], [
    victims.map((v) => v.pid),
    victims.map((v) => v.backendStart),
    victims.map((v) => v.stateChange),
    ownApplication,
  ]);
  return new Map(rows.map((r) => [r.pid, r.signalled]));
}

export async function remainingBackends(db: Db, victims: readonly Victim[]): Promise<Set<number>> {
  const rows = await db.query<{ pid: number }>(REMAINING_SQL, [victims.map((v) => v.pid), victims.map((v) => v.backendStart)]);
  return new Set(rows.map((r) => r.pid));
}
