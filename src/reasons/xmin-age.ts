import type { Session } from '../db/session.js';
import { since } from './ages.js';
import { reasonEntry } from './reason.js';

// The sessions that hold back vacuum: by their own transaction id (age(backend_xid)), or by their
// snapshot (age(backend_xmin)) when it is old by itself. A snapshot's xmin is the oldest
// transaction running when it was taken: while one old transaction (a session's xid, a prepared
// transaction) lives, every new snapshot shows its age, and acting on those sessions would kill
// the holder's victims, not the holder. So a snapshot counts only when no other running
// transaction is as old as it (olderTransactionRuns, decided by the snapshot statement).

/** The snapshot's age when it counts, else -1. */
const snapshotAge = (s: Session) => (s.xminAge != null && !s.olderTransactionRuns ? s.xminAge : -1);

export const xminAge = reasonEntry({
  reason: 'xmin_age',
  key: 'maxXminAge',
  value: { kind: 'count', example: '10M', max: 2_000_000_000 },
  unit: 'transactions',
  description:
    'Holds back vacuum by more than this many transactions: by its own transaction id (age(backend_xid)), or by its snapshot (age(backend_xmin)) when no older transaction still runs ("100k", "10M").',
  cancellable: false,
  sparesListeners: false,
  condition: 'holding back vacuum',
  whyNot: (s) => (s.xminAge != null && s.olderTransactionRuns ? `its snapshot is ${s.xminAge} transactions old only because an older transaction still runs` : 'holds no transaction id or snapshot'),
  age: (s) => {
    const m = Math.max(s.xidAge ?? -1, snapshotAge(s));
    return m < 0 ? NaN : m;
  },
  // how long its transaction has been open: oldest first among these
  seconds: (s, nowMs) => {
    const ms = since(nowMs, s.xactStartMs);
    return ms === ms ? ms / 1000 : 0;
  },
  // the same snapshot or the same transaction id: whichever gives the age (an age only grows, and
  // no transaction that starts later is older)
  guard: {
    fact: (s) => (snapshotAge(s) > (s.xidAge ?? -1) ? `xmin ${s.backendXmin}` : `xid ${s.backendXid}`),
    sql: "v.fact IN ('xid ' || a.backend_xid, 'xmin ' || a.backend_xmin)",
  },
  prefilter: (t) => `greatest(age(c.backend_xid), age(c.backend_xmin)) > ${t}::float8`,
  snapshotParts: ['olderTransaction'],
});
