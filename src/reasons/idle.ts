import { olderThan, since } from './ages.js';
import { reasonEntry } from './reason.js';

export const idle = reasonEntry({
  reason: 'idle',
  key: 'maxIdle',
  value: { kind: 'duration', example: '10m' },
  unit: 'seconds',
  description: 'State idle for longer than this (now - state_change).',
  cancellable: false,
  sparesListeners: true,
  condition: 'idle',
  age: (s, nowMs) => (s.state === 'idle' ? since(nowMs, s.stateChangeMs) : NaN),
  // idle the whole time: the same state since the same state_change
  guard: { fact: (s) => s.stateChange, sql: 'a.state = v.state AND a.state_change = v.fact::timestamptz' },
  prefilter: (t) => `(c.state = 'idle' AND ${olderThan('c.state_change', t)})`,
});
