import type { TargetDb } from '../db/target.js';
import type { AdvisoryLease } from './advisory-lease.js';

// A leader's runs confirm its hold on the lock, but a schedule can be longer than the lease: in
// between, one round trip on the lock connection every third of the lease window keeps the hold
// confirmed. Only while the lock is held, never two at once, and it never takes the lock (that is
// the run's job). On a partitioned connection it hangs like the run would, and the lease lapses.

export class LeaseHeartbeat {
  private timer: NodeJS.Timeout | undefined;
  private inFlight = false;
  private readonly everyMs: number;

  constructor(
    private readonly lease: AdvisoryLease,
    private readonly db: Pick<TargetDb, 'withConnection'>,
  ) {
    this.everyMs = Math.max(100, Math.floor(lease.windowMs / 3));
  }

  start(): void {
    this.timer = setInterval(() => this.beat(), this.everyMs);
    this.timer.unref();
  }

  private beat(): void {
    if (this.inFlight || !this.lease.held || this.lease.age() < this.everyMs) return;
    this.inFlight = true;
    this.db
      .withConnection((db, connection) => this.lease.renew(db, connection))
      .catch(() => undefined)
      .finally(() => (this.inFlight = false));
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
