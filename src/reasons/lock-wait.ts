import type { Snapshot } from '../db/session.js';
import { since } from './ages.js';
import { reasonEntry } from './reason.js';

// Break a lock queue at the waiter: a migration's ALTER TABLE waits for an AccessExclusiveLock
// behind one long transaction, and every query on the table queues behind the migration. This
// acts on the session that has waited too long (with minWaiters: that many queue behind it),
// never on the one holding the lock: a session that waits on nothing has no wait to measure.

/** The table-level lock modes pg_locks names (a wait for another's row lock shows as ShareLock on its transaction id). */
export const LOCK_MODES = ['AccessShareLock', 'RowShareLock', 'RowExclusiveLock', 'ShareUpdateExclusiveLock', 'ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock'] as const;

/** For each lock waiter: how many sessions wait behind it, directly or through others. */
export function queuedBehind(snapshot: Snapshot): Map<number, number> {
  const direct = new Map<number, number[]>();
  for (const s of snapshot.sessions) {
    for (const b of s.blockedBy ?? []) {
      let list = direct.get(b);
      if (!list) direct.set(b, (list = []));
      list.push(s.pid);
    }
  }
  const out = new Map<number, number>();
  for (const s of snapshot.sessions) {
    if (s.blockedBy === null) continue;
    const seen = new Set([s.pid]);
    const stack = [...(direct.get(s.pid) ?? [])];
    while (stack.length) {
      const pid = stack.pop()!;
      if (seen.has(pid)) continue;
      seen.add(pid);
      stack.push(...(direct.get(pid) ?? []));
    }
    out.set(s.pid, seen.size - 1);
  }
  return out;
}

export const lockWait = reasonEntry({
  reason: 'lock_wait',
  key: 'maxLockWait',
  value: { kind: 'duration', example: '30s' },
  unit: 'seconds',
  description: 'Has waited for a lock for longer than this (since pg_locks.waitstart; on 13 since state_change). Never the session that holds the lock.',
  cancellable: true,
  sparesListeners: false,
  condition: 'waiting for a lock',
  whyNot: () => 'waits for no lock',
  options: {
    minWaiters: { kind: 'integer', min: 0, default: 0, description: 'With maxLockWait: only when at least this many sessions queue behind the waiting one, directly or through others.' },
    lockModes: { kind: 'names', values: LOCK_MODES, description: 'With maxLockWait: only waits for these lock modes, e.g. [AccessExclusiveLock] (default: any).' },
  },
  context: (snapshot): Map<number, number> => queuedBehind(snapshot),
  age: (s, nowMs) => (s.blockedBy !== null ? since(nowMs, s.waitStartMs) : NaN),
  refuses: (s, behind, o) => {
    const n = behind.get(s.pid) ?? 0;
    const min = o.minWaiters as number;
    if (n < min) return `${n} session${n === 1 ? '' : 's'} queue behind it (minWaiters ${min})`;
    const modes = o.lockModes as readonly string[] | undefined;
    if (modes !== undefined && !modes.includes(s.waitMode ?? '')) return `it waits for ${s.waitMode ?? 'a lock mode it does not show'}, not one of lockModes`;
    return undefined;
  },
  details: (s, behind) => ({ queuedBehind: behind.get(s.pid) ?? 0 }),
  // still waiting for a lock, in the same statement
  guard: { fact: (s) => s.queryStart, sql: "a.state = 'active' AND a.wait_event_type = 'Lock' AND a.query_start = v.fact::timestamptz" },
  // every lock waiter: the queues behind each are counted from them
  prefilter: (t) => `(${t}::float8 IS NOT NULL AND c.wait_event_type = 'Lock')`,
  snapshotParts: ['lockGraph'],
});
