import { formatCount } from '../config/count.js';
import { formatDuration } from '../config/duration.js';

// The units a reason's evidence comes in: how a threshold is compiled (its base: durations in
// ms, shown in seconds), how the evidence is named in a log line and how it is shown to a person.

export interface UnitSpec {
  /** Compiled thresholds and ages per unit of the evidence (durations: 1000 ms a second). */
  readonly base: number;
  /** Log line fields: the evidence and the threshold it crossed. */
  readonly field: string;
  readonly thresholdField: string;
  /** After a raw value in a readable log line: "132.4s". */
  readonly suffix: string;
  /** For tables and why-not lines, from a value in the unit. */
  format(value: number): string;
}

export const UNITS = {
  seconds: { base: 1000, field: 'seconds', thresholdField: 'thresholdSeconds', suffix: 's', format: (s: number) => formatDuration(s * 1000) },
  transactions: { base: 1, field: 'transactions', thresholdField: 'thresholdTransactions', suffix: ' transactions', format: (n: number) => `${formatCount(n)} transactions` },
} as const satisfies Record<string, UnitSpec>;

export type Unit = keyof typeof UNITS;
