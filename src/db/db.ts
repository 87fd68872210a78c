// The one-method interface the run needs from a database: tests and benchmarks can wrap it
// (to count round trips or inject a fault) without touching the code that uses it.
export interface Db {
  query<R extends object = Record<string, unknown>>(sql: string, params?: readonly unknown[], opts?: QueryOptions): Promise<R[]>;
}

export interface QueryOptions {
  /**
   * A statement run at every run (the snapshot): the name to prepare it under, once per
   * connection, where the target allows prepared statements (a wrapper may drop it: the statement
   * then runs unprepared). One name per statement text.
   */
  prepare?: string;
}
