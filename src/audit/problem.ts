import { describeError } from '../util/errors.js';
import { grants, type TableName } from './table.js';

// Why a write to the audit table failed, and what it takes to fix it. Three kinds:
// - away: the server cannot be reached or is not answering now; it will be retried soon;
// - fix: the statement cannot succeed until someone acts (no table, no privilege, a standby);
//   logged once with the fix, retried slowly, since the fix makes it succeed;
// - row: the server refused a value of some row (an encoding error, say): the batch is retried
//   row by row, and only the rows refused are given up.

export type ProblemKind = 'away' | 'fix' | 'row';

export interface Problem {
  kind: ProblemKind;
  /** Same key, same problem: logged once. */
  key: string;
  error: string;
  /** What to do, for kind fix. */
  fix?: string;
}

export interface ProblemContext {
  table: TableName;
  /** The role we connect as, when the config names it. */
  role: string | undefined;
}

export function classify(err: unknown, ctx: ProblemContext): Problem {
  const error = describeError(err);
  const code = (err as { code?: unknown } | undefined)?.code;
  const sqlstate = typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
  // no SQLSTATE: refused, reset, timed out, closed
  if (sqlstate === undefined) return { kind: 'away', key: 'away', error };
  const cls = sqlstate.slice(0, 2);
  // connection, admin or crash shutdown, starting up, too many connections, timeouts, system
  if (cls === '08' || cls === '53' || cls === '58' || cls === '40' || sqlstate === '57P01' || sqlstate === '57P02' || sqlstate === '57P03' || sqlstate === '57014' || sqlstate === '55P03') {
    return { kind: 'away', key: 'away', error };
  }
  if (cls === '22' || cls === '23') return { kind: 'row', key: sqlstate, error };
  const role = ctx.role ?? '<the role pg-reaper connects as>';
  const t = ctx.table.sql;
  const fix = (text: string): Problem => ({ kind: 'fix', key: sqlstate, error, fix: text });
  switch (sqlstate) {
    case '42P01':
    case '3F000':
      return fix(`the table ${t} does not exist: create it with "pg-reaper audit-init -c CONFIG", or have its owner run the DDL of "pg-reaper audit-init -c CONFIG --print"`);
    case '42501':
      return fix(`the role may not insert into ${t}: run ${grants(ctx.table, role).join('; ')};`);
    case '42703':
    case '42804':
    case '42P10':
      return fix(`${t} does not have the columns pg-reaper writes (made by hand or by another version?): compare it with "pg-reaper audit-init -c CONFIG --print"`);
    case '25006':
      return fix('the audit server is read-only (a standby?): point audit at the primary');
    case '3D000':
      return fix('the database of the audit connection does not exist: check audit.connectionString (or the audit target)');
    default:
      if (cls === '28') return fix('the audit server refused the login: check the user, password and pg_hba.conf of the audit connection');
      return fix('see the error; the rows are kept and the write is retried');
  }
}
