import type { Snapshot } from '../db/session.js';

// Lock chains: which sessions are the roots of waits (block others and wait on nothing
// themselves), how many sessions wait on each, directly or through others, and how long the
// longest of those waits is. Pure, from the snapshot's pg_blocking_pids of each waiting session.

export interface Blocking {
  /** Sessions waiting on this one, directly or through others. */
  sessions: number;
  /** The longest of their waits, in ms. */
  longestMs: number;
}

export function blockingRoots(snapshot: Snapshot): Map<number, Blocking> {
  const byPid = new Map(snapshot.sessions.map((s) => [s.pid, s]));
  const roots = new Map<number, Blocking>();
  for (const waiter of snapshot.sessions) {
    if (waiter.blockedBy === null) continue;
    const waitMs = waiter.waitStartMs === null ? NaN : snapshot.nowMs - waiter.waitStartMs;
    // walk up the chain to the sessions that wait on nothing: those hold what everyone waits for
    const seen = new Set<number>();
    const stack = [...waiter.blockedBy];
    while (stack.length) {
      const pid = stack.pop()!;
      if (seen.has(pid)) continue;
      seen.add(pid);
      const blocker = byPid.get(pid);
      // not a client session we can see (a prepared transaction, autovacuum, ourselves): no root here
      if (!blocker) continue;
      if (blocker.blockedBy !== null) {
        stack.push(...blocker.blockedBy);
        continue;
      }
      const r = roots.get(pid) ?? { sessions: 0, longestMs: NaN };
      r.sessions++;
      if (!(r.longestMs >= waitMs)) r.longestMs = waitMs;
      roots.set(pid, r);
    }
  }
  return roots;
}
