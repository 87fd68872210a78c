import { describe, expect, it } from 'vitest';
import { poolerHint, withPoolerHint } from '../../src/db/pooler-hint.js';
import { describeError } from '../../src/util/errors.js';

// The errors a pooler in the way produces, as pg reports them, and what the log then says.
const pgError = (message: string, code: string) => Object.assign(new Error(message), { code });

describe('a pooler in the way', () => {
  it('a prepared statement that another server connection does not have, or already has: set preparedStatements: false', () => {
    for (const e of [pgError('prepared statement "pg_reaper_snapshot_2" does not exist', '26000'), pgError('prepared statement "pg_reaper_snapshot_1" already exists', '42P05')]) {
      const text = describeError(withPoolerHint(e, true));
      expect(text).toContain('set preparedStatements: false for this target');
      expect(text).toMatch(/\(SQLSTATE (26000|42P05)\)$/);
    }
  });

  it('not for a statement that was not prepared, nor for other errors', () => {
    expect(poolerHint(pgError('prepared statement "x" does not exist', '26000'), false)).toBeUndefined();
    expect(poolerHint(pgError('permission denied for table t', '42501'), true)).toBeUndefined();
    expect(poolerHint(new Error('Connection terminated unexpectedly'), true)).toBeUndefined();
    const plain = pgError('syntax error', '42601');
    expect(withPoolerHint(plain, true).message).toBe('syntax error');
  });

  it('PgBouncer refusing statement_timeout at connect: ignore_startup_parameters, or connect directly', () => {
    const text = describeError(withPoolerHint(pgError('unsupported startup parameter: statement_timeout', '08P01'), false));
    expect(text).toContain("add it to the pooler's ignore_startup_parameters");
    expect(text).toContain('(SQLSTATE 08P01)');
    expect(poolerHint(pgError('invalid frame length', '08P01'), false)).toBeUndefined();
  });
});
