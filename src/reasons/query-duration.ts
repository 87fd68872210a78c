import { olderThan, since } from './ages.js';
import { reasonEntry } from './reason.js';

export const queryDuration = reasonEntry({
  reason: 'query_duration',
  key: 'maxQueryDuration',
  value: { kind: 'duration', example: '15m' },
  unit: 'seconds',
  description: 'State active for longer than this (now - query_start).',
  cancellable: true,
  sparesListeners: false,
  condition: 'active',
  age: (s, nowMs) => (s.state === 'active' ? since(nowMs, s.queryStartMs) : NaN),
  // still active in the same query
  guard: { fact: (s) => s.queryStart, sql: "a.state = 'active' AND a.query_start = v.fact::timestamptz" },
  prefilter: (t) => `(c.state = 'active' AND ${olderThan('c.query_start', t)})`,
});
