import type { Db } from '../db/db.js';

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

export class AdvisoryLease {
  /** Connections (by the token TargetDb gives each) that hold the lock. */
  private readonly holders = new WeakSet<object>();
  private readonly params: string[];

  constructor(
    readonly lockKey: number,
    readonly targetKey: number,
    leaseMs: number,
  ) {
    const k = keepalivesFor(leaseMs);
    this.params = [String(lockKey), String(targetKey), String(k.idle), String(k.interval), String(k.count), `${k.checkMs}ms`];
  }

  /** True when this connection holds the target's lock (taking it now if it is free). */
  async hold(db: Db, connection: object): Promise<boolean> {
    if (this.holders.has(connection)) return true;
    const rows = await db.query<{ held: boolean }>(TRY_LOCK_SQL, this.params);
    const held = rows[0]?.held === true;
    if (held) this.holders.add(connection);
    return held;
  }
}
