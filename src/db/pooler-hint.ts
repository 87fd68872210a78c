import { sqlState } from '../util/errors.js';

// Server errors that mean a connection pooler sits between pg-reaper and the server, with what
// to change. Behind PgBouncer in transaction or statement mode the snapshot statement, prepared
// once per connection, meets another server connection at the next run: "does not exist" there,
// or "already exists" where another client prepared the same name. A stock PgBouncer refuses the
// statement_timeout that pg-reaper sends at connect (its queryTimeout).

const PREPARED =
  'the snapshot statement is prepared once per connection (preparedStatements: true), which a pooler in transaction or statement mode cannot hold (PgBouncer before 1.21, or with max_prepared_statements = 0): set preparedStatements: false for this target';
const STARTUP =
  "a pooler (PgBouncer) refuses a parameter pg-reaper sends at connect (statement_timeout, from queryTimeout): add it to the pooler's ignore_startup_parameters (the server then applies no queryTimeout) or connect to the server directly";

/** What to change, for an error that comes from a pooler in the way; undefined for any other. */
export function poolerHint(err: unknown, prepared: boolean): string | undefined {
  const state = sqlState(err);
  if (prepared && (state === '26000' || state === '42P05')) return PREPARED;
  if (state === '08P01' && /unsupported startup parameter/i.test(String((err as { message?: unknown }).message))) return STARTUP;
  return undefined;
}

/** The error with its hint appended to its message (the SQLSTATE stays). */
export function withPoolerHint<E>(err: E, prepared: boolean): E {
  const hint = poolerHint(err, prepared);
  if (hint !== undefined && err instanceof Error) err.message = `${err.message}; ${hint}`;
  return err;
}
