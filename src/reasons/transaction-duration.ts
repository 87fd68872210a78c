import { olderThan, since } from './ages.js';
import { reasonEntry } from './reason.js';

export const transactionDuration = reasonEntry({
  reason: 'transaction_duration',
  key: 'maxTransactionDuration',
  value: { kind: 'duration', example: '1h' },
  unit: 'seconds',
  description: 'Transaction open for longer than this, in any state (now - xact_start).',
  cancellable: false,
  sparesListeners: false,
  condition: 'in a transaction',
  age: (s, nowMs) => since(nowMs, s.xactStartMs),
  // the same transaction, whatever it does now (a busy one changes state_change all the time)
  guard: { fact: (s) => s.xactStart, sql: 'a.xact_start = v.fact::timestamptz' },
  prefilter: (t) => olderThan('c.xact_start', t),
});
