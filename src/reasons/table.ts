import { blocking } from './blocking.js';
import { connectionAge } from './connection-age.js';
import { idleInTransaction } from './idle-in-transaction.js';
import { idle } from './idle.js';
import { lockWait } from './lock-wait.js';
import { queryDuration } from './query-duration.js';
import type { ReasonEntry } from './reason.js';
import { transactionDuration } from './transaction-duration.js';
import { xminAge } from './xmin-age.js';

// The table of reasons, in the order the planner tries them: a session that breaks several of a
// policy's thresholds is acted on for the first. A new threshold reason is a file in this
// folder and a line here (plus the snapshot column it needs, its tests and its docs).
export const REASON_TABLE = [blocking, lockWait, idle, idleInTransaction, queryDuration, transactionDuration, xminAge, connectionAge] as const;

type Entry = (typeof REASON_TABLE)[number];
export type Reason = Entry['reason'];
export type ThresholdKey = Entry['key'];
/** The policy keys that refine a reason (its entry's options). */
export type OptionKey = Entry extends infer E ? (E extends { options?: Readonly<Record<infer O, unknown>> } ? O & string : never) : never;

/**
 * The entries with their context type erased, for code that walks every reason: an entry's
 * context only ever comes from its own context() and goes back to its own functions.
 */
export const ENTRIES = REASON_TABLE as unknown as readonly ReasonEntry<Reason, ThresholdKey, unknown, string>[];

export const REASONS: readonly Reason[] = REASON_TABLE.map((e) => e.reason);
export const THRESHOLD_KEYS: readonly ThresholdKey[] = REASON_TABLE.map((e) => e.key);

/** Position of a reason in the table (the planner's arrays are indexed by it). */
export const reasonIndex = (reason: Reason): number => REASONS.indexOf(reason);

export function entryOf(reason: Reason): ReasonEntry<Reason, ThresholdKey, unknown, string> {
  return ENTRIES[reasonIndex(reason)]!;
}

/** The entry of a reason read from outside (a log line), if it is one. */
export function findEntry(reason: unknown): ReasonEntry<Reason, ThresholdKey, unknown, string> | undefined {
  return ENTRIES.find((e) => e.reason === reason);
}
