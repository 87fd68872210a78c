// Ages read from a session's timestamps against the server clock, in ms: NaN when the timestamp
// is NULL, so that no threshold comparison holds.
export const since = (nowMs: number, at: number | null): number => (at === null ? NaN : nowMs - at);

/**
 * The pre-filter's test of a timestamp column against a threshold in ms (NULL: never holds). The
 * cut-off is a subquery on `me` that does not depend on the row: the server works it out once
 * per statement, not once per session.
 */
export const olderThan = (column: string, thresholdMs: string): string => `${column} <= (SELECT m.now - ${thresholdMs}::float8 * interval '1 millisecond' FROM me m)`;
