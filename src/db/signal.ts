import { ENTRIES } from '../reasons/table.js';
import type { Db } from './db.js';

// The only SQL that signals backends. One statement per action kind signals every victim, and
// the guard sits in the statement itself. Always: the same pid and backend_start (not a reused
// pid), still a client backend that is not ours, and, unless we are superuser, a role that is
// still not a superuser. Then exactly the fact the decision rests on, and nothing more (a busy
// session in a two-hour transaction changes state_change every few milliseconds; a guard on it
// would refuse that kill forever): each reason's guard, from its entry in the table of reasons
// (src/reasons/). A row whose guard fails comes back with `signalled` NULL.
const signalSql = (fn: 'pg_terminate_backend' | 'pg_cancel_backend') => `
SELECT v.pid, ${fn}(a.pid) AS signalled
  FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[]) AS v(pid, backend_start, reason, state, fact)
  LEFT JOIN pg_stat_activity a
    ON a.pid = v.pid
   AND a.backend_start = v.backend_start::timestamptz
   AND a.backend_type = 'client backend'
   AND a.pid <> pg_backend_pid()
   AND a.application_name IS DISTINCT FROM $6
   AND ((SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
        OR NOT coalesce((SELECT rolsuper FROM pg_roles WHERE oid = a.usesysid), true))
   AND CASE v.reason
${ENTRIES.map((e) => `         WHEN '${e.reason}' THEN ${e.guard.sql}`).join('\n')}
         ELSE false
       END`;

const SQL = { terminate: signalSql('pg_terminate_backend'), cancel: signalSql('pg_cancel_backend') };

// Which of the signalled backends are still there: one query per poll for the whole batch
// (pg_terminate_backend's own timeout would poll each pid in turn, 100 ms apart).
const REMAINING_SQL = `
SELECT v.pid
  FROM unnest($1::int[], $2::text[]) AS v(pid, backend_start)
  JOIN pg_stat_activity a ON a.pid = v.pid AND a.backend_start = v.backend_start::timestamptz`;

/** A backend to signal and the facts the kill statement re-checks. */
export interface Victim {
  pid: number;
  backendStart: string;
  /** The decision's reason: selects the guard clause. */
  reason: string;
  /** The state the decision saw (checked for the idle reasons). */
  state: string | null;
  /** The fact the decision rests on, as the server wrote it (the reason's guard.fact). */
  fact: string | null;
}

/** pid → true (signalled), false (the server found no such process), null (guard failed). */
export async function signalBackends(db: Db, action: 'terminate' | 'cancel', victims: readonly Victim[], ownApplication: string): Promise<Map<number, boolean | null>> {
  const rows = await db.query<{ pid: number; signalled: boolean | null }>(SQL[action], [
    victims.map((v) => v.pid),
    victims.map((v) => v.backendStart),
    victims.map((v) => v.reason),
    victims.map((v) => v.state),
    victims.map((v) => v.fact),
    ownApplication,
  ]);
  return new Map(rows.map((r) => [r.pid, r.signalled]));
}

export async function remainingBackends(db: Db, victims: readonly Pick<Victim, 'pid' | 'backendStart'>[]): Promise<Set<number>> {
  const rows = await db.query<{ pid: number }>(REMAINING_SQL, [victims.map((v) => v.pid), victims.map((v) => v.backendStart)]);
  return new Set(rows.map((r) => r.pid));
}
