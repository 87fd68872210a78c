import { olderThan, since } from './ages.js';
import { reasonEntry } from './reason.js';

export const idleInTransaction = reasonEntry({
  reason: 'idle_in_transaction',
  key: 'maxIdleInTransaction',
  value: { kind: 'duration', example: '2m' },
  unit: 'seconds',
  description: 'Idle in transaction (or aborted) for longer than this (now - state_change).',
  cancellable: false,
  sparesListeners: false,
  condition: 'idle in transaction',
  age: (s, nowMs) => (s.state === 'idle in transaction' || s.state === 'idle in transaction (aborted)' ? since(nowMs, s.stateChangeMs) : NaN),
  // idle in its transaction the whole time: the same state since the same state_change
  guard: { fact: (s) => s.stateChange, sql: 'a.state = v.state AND a.state_change = v.fact::timestamptz' },
  prefilter: (t) => `(c.state IN ('idle in transaction', 'idle in transaction (aborted)') AND ${olderThan('c.state_change', t)})`,
});
