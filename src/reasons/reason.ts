import type { Session, Snapshot } from '../db/session.js';
import type { Unit } from './units.js';

// What pg-reaper knows about one threshold reason, in one place: its key in a policy and its
// label, how its age is read from a session, the fact the kill guard re-checks and the guard's
// SQL, the snapshot's pre-filter clause and the words of the why-not lines. The config schema,
// policy compilation, the planner, the pre-filter, the kill statement, the executor's victim,
// the explain text, the metrics and the log lines are all built from the table (table.ts).
// Imports types only: config/ builds the policy keys from it.

/**
 * How a threshold is written in the config: a duration ("10m", compiled to ms), or a count of
 * `max` at most ("100k", "10M").
 */
export type ThresholdValue = { kind: 'duration'; example: string } | { kind: 'count'; example: string; max: number };

/** A policy key that refines a reason; it works only beside the reason's key. */
export type OptionSpec =
  | { kind: 'integer'; min: number; default: number; description: string }
  | { kind: 'names'; values: readonly [string, ...string[]]; description: string };

export interface ReasonEntry<L extends string = string, K extends string = string, C = unknown, O extends string = string> {
  /** The reason: metric label, log field, the kill guard's branch. */
  readonly reason: L;
  /** Its threshold's key in a policy. */
  readonly key: K;
  readonly value: ThresholdValue;
  /** The evidence's unit; thresholds are compiled in the unit's base (durations: ms). */
  readonly unit: Unit;
  /** What the key means, for config.schema.json. */
  readonly description: string;
  /** `action: cancel` makes sense with it: the session is running a statement. */
  readonly cancellable: boolean;
  /** exemptListeners spares a listener (its last statement was LISTEN) from this reason. */
  readonly sparesListeners: boolean;
  /** What the condition is called in the why-not lines: "idle 5s <= maxIdle 10m", "maxIdle: not idle". */
  readonly condition: string;
  /** Policy keys that refine this reason, each only beside its key. */
  readonly options?: Readonly<Record<O, OptionSpec>>;
  /**
   * Why the policy's options (`options`: its values, defaults filled in) leave alone a session
   * that is past the threshold, or undefined when they do not. Runs only past the threshold.
   */
  refuses?(s: Session, ctx: C, options: Readonly<Record<O, unknown>>): string | undefined;
  /** The why-not line where the condition does not apply (age NaN), when "not <condition>" would not say enough. */
  whyNot?(s: Session, ctx: C): string;
  /** Facts about the whole snapshot the reason needs (lock chains), worked out once per plan, and only when a policy has the key. */
  context?(snapshot: Snapshot): C;
  /**
   * How far the session is into the condition, in the threshold's compiled unit (durations: ms);
   * NaN where the condition does not apply or a timestamp is NULL, so that no comparison holds.
   * Runs for every session of every plan: arithmetic and comparisons only.
   */
  age(s: Session, nowMs: number, ctx: C): number;
  /** For a unit other than seconds: how long the session has been in the condition, in seconds (caps keep the oldest offenders first). */
  seconds?(s: Session, nowMs: number): number;
  /** Fields a decision for this reason adds to its log line (blocking: how many wait on it). */
  details?(s: Session, ctx: C): Record<string, number>;
  /**
   * The kill guard: the fact the decision rests on, as the server wrote it (it travels as text
   * in v.fact), and the SQL that re-checks it against the live row `a` of pg_stat_activity
   * (v.state: the state the decision saw). Identity is checked for every reason besides this.
   */
  readonly guard: { fact(s: Session): string | null; sql: string };
  /**
   * The snapshot's pre-filter: SQL over a client row `c` (with the one-row CTE `me` in a subquery and the lock `waiters w`)
   * that holds for every session that could be past `threshold`, a parameter holding the
   * smallest threshold of this reason across the target's policies (compiled unit), NULL when
   * none has it: the clause must not hold then.
   */
  prefilter(threshold: string): string;
  /**
   * The parts of the snapshot statement the reason reads beyond a session's own row (each costs
   * the server work at every run, so a target whose policies lack the reason goes without):
   * lockGraph, who blocks each lock waiter (blockedBy), since when (waitStartMs) and for which
   * mode (waitMode), and `waiters w` in the pre-filter; olderTransaction, olderTransactionRuns.
   */
  readonly snapshotParts?: readonly ('lockGraph' | 'olderTransaction')[];
}

/** An entry, with its label, key and option keys as literal types. */
export function reasonEntry<const L extends string, const K extends string, C = undefined, const O extends string = never>(e: ReasonEntry<L, K, C, O>): ReasonEntry<L, K, C, O> {
  return e;
}
