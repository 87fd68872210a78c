import { olderThan, since } from './ages.js';
import { reasonEntry } from './reason.js';

export const connectionAge = reasonEntry({
  reason: 'connection_age',
  key: 'maxConnectionAge',
  value: { kind: 'duration', example: '12h' },
  unit: 'seconds',
  description: 'Connected for longer than this (now - backend_start).',
  cancellable: false,
  sparesListeners: true,
  condition: 'connected',
  age: (s, nowMs) => since(nowMs, s.backendStartMs),
  // identity (pid and backend_start) is the whole fact
  guard: { fact: (s) => s.backendStart, sql: 'true' },
  prefilter: (t) => olderThan('c.backend_start', t),
});
