// The one-method interface the run needs from a database: tests and benchmarks can wrap it
// (to count round trips or inject a fault) without touching the code that uses it.
export interface Db {
  query<R extends object = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<R[]>;
}
