import { describe, expect, it } from 'vitest';
import { AdvisoryLease, keepalivesFor, leaseWindowMs } from '../../src/coord/advisory-lease.js';
import type { Db } from '../../src/db/db.js';

// Leadership as a lease, with a fixed clock: a replica leads while a statement on its lock
// connection was answered within the window the keepalives give, measured from when it was sent.

function fixture(answers: ('held' | 'free' | 'ok' | Error)[]) {
  let now = 1000;
  const lease = new AdvisoryLease(1, 2, 6000, () => now);
  const db: Db = {
    query: async <R extends object>() => {
      const a = answers.shift();
      if (a instanceof Error) throw a;
      now += 100; // each answer takes 100 ms
      return (a === 'held' ? [{ held: true }] : a === 'free' ? [{ held: false }] : [{}]) as R[];
    },
  };
  return { lease, db, advance: (ms: number) => (now += ms) };
}

const serverError = Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' });
const dropped = new Error('Connection terminated unexpectedly');

describe('the advisory lease', () => {
  it('lasts the keepalive window (idle + interval x count, at most leaseTimeout) from when the confirming statement was sent', () => {
    expect(leaseWindowMs(6000)).toBe(5000);
    expect(leaseWindowMs(30_000)).toBe(25_000);
    for (const ms of [6000, 7000, 10_000, 30_000, 95_000, 600_000]) {
      const k = keepalivesFor(ms);
      expect(leaseWindowMs(ms)).toBe((k.idle + k.interval * k.count) * 1000);
      expect(leaseWindowMs(ms)).toBeLessThanOrEqual(ms);
    }
  });

  it('leads from taking the lock until the window after the last answer, and each answer renews it', async () => {
    const { lease, db, advance } = fixture(['held', 'ok', 'ok']);
    const conn = {};
    expect(lease.fresh()).toBe(false);
    expect(await lease.hold(db, conn)).toBe(true); // sent at 1000, answered at 1100
    advance(4800); // 5900: 4900 ms since it was sent
    expect(lease.fresh()).toBe(true);
    advance(100); // 6000: the window has passed
    expect(lease.fresh()).toBe(false);
    expect(await lease.hold(db, conn)).toBe(true); // held: no statement, no renewal
    expect(lease.fresh()).toBe(false);
    await lease.track(db, conn).query('SELECT 1'); // sent at 6000
    expect(lease.fresh()).toBe(true);
    advance(4900); // 11000
    expect(lease.fresh()).toBe(false);
    await lease.renew(db, conn); // the heartbeat's round trip
    expect(lease.fresh()).toBe(true);
  });

  it('a server error still proves the session alive; a dropped connection ends the lease at once; a lock held elsewhere is no lease', async () => {
    const { lease, db } = fixture(['held', serverError, dropped, 'free']);
    const conn = {};
    await lease.hold(db, conn);
    await expect(lease.track(db, conn).query('SELECT')).rejects.toBe(serverError);
    expect(lease.fresh()).toBe(true);
    await expect(lease.track(db, conn).query('SELECT')).rejects.toBe(dropped);
    expect(lease.fresh()).toBe(false);
    expect(lease.held).toBe(false);
    expect(await lease.hold(db, {})).toBe(false);
    expect(lease.fresh()).toBe(false);
  });

  it('statements on a connection that does not hold the lock confirm nothing', async () => {
    const { lease, db } = fixture(['ok']);
    await lease.track(db, {}).query('SELECT 1');
    expect(lease.fresh()).toBe(false);
  });
});
