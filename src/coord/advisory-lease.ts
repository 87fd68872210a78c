import { performance } from 'node:perf_hooks';
import type { Db, QueryOptions } from '../db/db.js';
import { sqlState } from '../util/errors.js';

// Leadership of one target among replicas, on a session-level advisory lock of the target's own
// server. Only the connection that holds the lock may snapshot and signal, so the run does both
// on that very connection (TargetDb.withConnection); a connection that broke took the lock with
// it, and its replacement must take the lock again before it may act.
//
// A holder whose host vanished without closing its socket is ended by the server through TCP
// keepalives (and, from PostgreSQL 14, client_connection_check_interval), set on the lock
// connection so that the orphaned session, and with it the lock, is gone within leaseTimeout.

export interface Keepalives {
  idle: number;
  interval: number;
  count: number;
  /** client_connection_check_interval in ms (PostgreSQL 14+). */
  checkMs: number;
}

/** Keepalive settings that end an orphaned session within leaseTimeout: idle + interval × count ≤ lease. */
export function keepalivesFor(leaseMs: number): Keepalives {
  const idle = Math.max(1, Math.floor(leaseMs / 3000));
  const interval = Math.max(1, Math.floor(leaseMs / 6000));
  return { idle, interval, count: 3, checkMs: Math.max(1000, Math.floor(leaseMs / 3)) };
}

// One statement: the keepalives (each time, it costs nothing), then the lock. set_config for
// client_connection_check_interval only where the server has it.
const TRY_LOCK_SQL = `
SELECT set_config('tcp_keepalives_idle', $3, false) IS NOT NULL
   AND set_config('tcp_keepalives_interval', $4, false) IS NOT NULL
   AND set_config('tcp_keepalives_count', $5, false) IS NOT NULL
   AND CASE WHEN current_setting('server_version_num')::int >= 140000
            THEN set_config('client_connection_check_interval', $6, false) IS NOT NULL ELSE true END
   AND pg_try_advisory_lock($1::int, $2::int) AS held`;

/**
 * How long a confirmation of the hold lasts: the soonest the server can end the session of a
 * holder that went silent (a partition, a vanished host) is after its keepalives, idle + interval
 * × count, which is at most leaseTimeout. Until then no other replica can have the lock.
 */
export function leaseWindowMs(leaseMs: number): number {
  const k = keepalivesFor(leaseMs);
  return (k.idle + k.interval * k.count) * 1000;
}

// Leadership is a lease: this replica leads the target while a statement on the lock connection
// was answered within the window above (measured from when it was sent, so a slow answer does
// not stretch it). A run that hangs on a partitioned connection sends no more statements, and
// its leadership lapses on its own, evaluated whenever it is read (pg_reaper_leader at a scrape).
export class AdvisoryLease {
  /** Connections (by the token TargetDb gives each) that hold the lock. */
  private readonly holders = new WeakSet<object>();
  private readonly params: string[];
  /** Monotonic ms when the last statement that proved the hold was sent; -Infinity: not held. */
  private confirmedAt = -Infinity;
  readonly windowMs: number;

  constructor(
    readonly lockKey: number,
    readonly targetKey: number,
    leaseMs: number,
    private readonly clock: () => number = () => performance.now(),
  ) {
    const k = keepalivesFor(leaseMs);
    this.params = [String(lockKey), String(targetKey), String(k.idle), String(k.interval), String(k.count), `${k.checkMs}ms`];
    this.windowMs = leaseWindowMs(leaseMs);
  }

  /** True when this connection holds the target's lock (taking it now if it is free). */
  async hold(db: Db, connection: object): Promise<boolean> {
    if (this.holders.has(connection)) return true;
    const sent = this.clock();
    const rows = await db.query<{ held: boolean }>(TRY_LOCK_SQL, this.params);
    const held = rows[0]?.held === true;
    if (held) {
      this.holders.add(connection);
      this.confirm(sent);
    } else this.confirmedAt = -Infinity;
    return held;
  }

  /**
   * The run's statements on a connection: each answer the server gives on the lock connection (a
   * result or a server error) proves the session, and so the lock, alive; a connection that broke
   * (no SQLSTATE: a dropped socket, a client-side timeout) took the lock with it.
   */
  track(db: Db, connection: object): Db {
    return {
      query: async <R extends object>(sql: string, params?: readonly unknown[], opts?: QueryOptions) => {
        const sent = this.clock();
        try {
          const rows = await db.query<R>(sql, params, opts);
          if (this.holders.has(connection)) this.confirm(sent);
          return rows;
        } catch (err) {
          if (!this.holders.has(connection)) throw err;
          if (sqlState(err) !== undefined) this.confirm(sent);
          else this.confirmedAt = -Infinity;
          throw err;
        }
      },
    };
  }

  /** Between runs: one round trip on the lock connection keeps the hold confirmed whatever the schedule. */
  async renew(db: Db, connection: object): Promise<void> {
    if (!this.holders.has(connection)) return;
    await this.track(db, connection).query('SELECT 1');
  }

  /** This replica leads the target: its hold was confirmed within the window. */
  fresh(): boolean {
    return this.clock() - this.confirmedAt < this.windowMs;
  }

  /** The lock was held at the last word from the server (confirmed or lapsing): worth renewing. */
  get held(): boolean {
    return this.confirmedAt > -Infinity;
  }

  /** Ms since the last confirmation. */
  age(): number {
    return this.clock() - this.confirmedAt;
  }

  private confirm(sentAt: number): void {
    this.confirmedAt = Math.max(this.confirmedAt, sentAt);
  }
}
