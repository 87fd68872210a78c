import { blockingRoots, type Blocking } from './lock-chains.js';
import { reasonEntry } from './reason.js';

// The root of a lock chain: a session others wait on, directly or through others, that waits on
// nothing itself. Its age is the longest of those waits.
export const blocking = reasonEntry({
  reason: 'blocking',
  key: 'maxBlocking',
  value: { kind: 'duration', example: '30s' },
  unit: 'seconds',
  description: 'Another session has waited on a lock held by this one (the root of the chain) for longer than this.',
  cancellable: false,
  sparesListeners: false,
  condition: 'blocking',
  whyNot: (s) => (s.blockedBy !== null ? 'waits on a lock itself (only the root of a chain is acted on)' : 'blocks no one'),
  context: (snapshot): Map<number, Blocking> => blockingRoots(snapshot),
  age: (s, _nowMs, roots) => roots.get(s.pid)?.longestMs ?? NaN,
  details: (s, roots) => {
    const b = roots.get(s.pid)!;
    return { blockedSessions: b.sessions, blockedSeconds: b.longestMs / 1000 };
  },
  // the same transaction still holds the locks (a session-level lock outside any transaction:
  // NULL both times)
  guard: { fact: (s) => s.xactStart, sql: 'a.xact_start IS NOT DISTINCT FROM v.fact::timestamptz' },
  // every lock waiter and the sessions blocking them: the chains are worked out from them
  prefilter: (t) => `(${t}::float8 IS NOT NULL AND (c.wait_event_type = 'Lock' OR c.pid IN (SELECT unnest(w.blocked_by) FROM waiters w)))`,
  snapshotParts: ['lockGraph'],
});
