import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Budget, Config } from '../config/schema.js';
import type { Db } from '../db/db.js';
import type { TargetDb } from '../db/target.js';
import type { Snapshot } from '../db/session.js';
import { readSnapshot } from '../db/snapshot.js';
import type { NotActedOn } from '../plan/explain.js';
import { snapshotFilter } from '../plan/filter.js';
import type { Decision } from '../plan/planner.js';
import { protectedCounts, type Protect, type ProtectionKind } from '../plan/protect.js';
import { compilePolicies, type CompiledPolicy } from '../policy/compile.js';
import { describeError } from '../util/errors.js';
import { BudgetLedger, budgetRules, type BudgetState } from './budget.js';
import { execute } from './executor.js';
import { decide } from './judge.js';
import type { ActionResult } from './outcome.js';

// One run on one target: snapshot → plan → execute. It never throws: any failure becomes a
// report with ok=false, so the schedule carries on.

export interface RunSettings {
  target: string;
  policies: readonly CompiledPolicy[];
  applicationName: string;
  maxActionsPerRun?: number | undefined;
  terminateTimeoutMs: number;
  logQueryText: boolean;
  /** Explain every session not acted on (debug logs). */
  explain: boolean;
  exemptListeners: boolean;
  protect: Protect;
  /** The target's own budget; null: off. Policies carry theirs. */
  budget: Budget | null;
  /** Pids the snapshot sends as rows whatever the filter (sessions already reported as denied). */
  watch?: readonly number[];
}

export interface RunDeps {
  db: Db;
  /** Holds one connection for the whole run (a target's pool): snapshot and signals go to it. */
  hold?: <T>(fn: (db: Db, connection: object) => Promise<T>) => Promise<T>;
  /** With coordination: may this connection act (it holds the target's lock)? Otherwise the run stands by. */
  lead?: (db: Db, connection: object) => Promise<boolean>;
  /** Wall clock, epoch ms: only for timestamps in reports and metrics, never for ages. */
  wallClock: () => number;
  /** Monotonic ms, for durations and deadlines. */
  monotonic: () => number;
  sleep: (ms: number) => Promise<void>;
  /** The target's budget ledger, kept between its runs; without it each run starts with a full budget. */
  budget?: BudgetLedger;
}

/** A target's run settings from the config (policies compiled unless given). */
export function settingsFor(config: Config, target: string, policies: readonly CompiledPolicy[] = compilePolicies(config, target)): RunSettings {
  return {
    target,
    policies,
    applicationName: config.applicationName,
    maxActionsPerRun: config.maxActionsPerRun,
    terminateTimeoutMs: config.terminateTimeout,
    logQueryText: config.logQueryText,
    explain: config.logLevel === 'debug' || config.logLevel === 'trace',
    exemptListeners: config.exemptListeners,
    protect: config.protect,
    budget: config.budget,
  };
}

/** Leadership of a target among replicas (coord/advisory-lease.ts). */
export interface Lease {
  /** May this connection act (it holds the target's lock, taking it now if free)? */
  hold(db: Db, connection: object): Promise<boolean>;
  /** The connection's statements, each answer confirming the hold. */
  track(db: Db, connection: object): Db;
}

/** The real clocks and timer; a target's pool is held for the whole run; with a lease, only its holder acts. */
export function systemDeps(db: Db | TargetDb, lease?: Lease, budget?: BudgetLedger): RunDeps {
  const hold: RunDeps['hold'] | undefined =
    'withConnection' in db ? (lease ? (fn) => db.withConnection((c, connection) => fn(lease.track(c, connection), connection)) : db.withConnection) : undefined;
  return {
    db,
    ...(budget ? { budget } : {}),
    ...(hold ? { hold } : {}),
    ...(lease ? { lead: (c: Db, connection: object) => lease.hold(c, connection) } : {}),
    wallClock: Date.now,
    monotonic: () => performance.now(),
    sleep: (ms) => sleep(ms),
  };
}

export interface RunReport {
  target: string;
  ok: boolean;
  /** Another replica holds the target's lock: this one did nothing. */
  standby?: boolean;
  error?: string;
  finishedAtMs: number;
  durationSeconds: number;
  snapshot?: Snapshot;
  results: ActionResult[];
  /** Every decision of the plan, held ones (when) included; results cover those not held. */
  decisions?: Decision[];
  /** With settings.explain: the sessions not acted on, and why. */
  notActedOn?: NotActedOn[];
  /** Sessions spared as backups or maintenance, by kind. */
  protected?: Record<ProtectionKind, number>;
  /** Where each budget stands after the run. */
  budget?: BudgetState[];
  /** Milliseconds per step (trace logs). */
  timings: { snapshotMs: number; planMs: number; executeMs: number };
}

// The server version each target's last snapshot reported, so the next snapshot reads only the
// columns that version has (query_id: src/db/snapshot.ts). Forgotten when a snapshot fails: the
// server may have changed.
const serverVersions = new WeakMap<object, number>();

type Finish = (rest: Omit<RunReport, 'target' | 'finishedAtMs' | 'durationSeconds' | 'timings'>) => RunReport;

export async function runTarget(settings: RunSettings, deps: RunDeps): Promise<RunReport> {
  const started = deps.monotonic();
  const timings = { snapshotMs: 0, planMs: 0, executeMs: 0 };
  const finish: Finish = (rest) => ({
    target: settings.target,
    finishedAtMs: deps.wallClock(),
    durationSeconds: (deps.monotonic() - started) / 1000,
    timings,
    ...rest,
  });
  const body = async (db: Db, connection?: object): Promise<RunReport> => {
    if (deps.lead && !(await deps.lead(db, connection ?? db))) return finish({ ok: true, standby: true, results: [] });
    let snapshot: Snapshot;
    try {
      // every session as a row only when debug explains each one; else the server sends only
      // those a policy could act on, and counts the rest
      snapshot = await readSnapshot(db, {
        withQuery: settings.logQueryText,
        filter: settings.explain ? undefined : snapshotFilter(settings.policies, settings.protect, settings.exemptListeners),
        maintenance: settings.protect.maintenance,
        watch: settings.watch,
        serverVersionNum: serverVersions.get(deps.db),
      });
      serverVersions.set(deps.db, snapshot.server.versionNum);
    } catch (err) {
      serverVersions.delete(deps.db);
      throw err;
    } finally {
      timings.snapshotMs = deps.monotonic() - started;
    }
    return decideAndAct(snapshot, db, settings, deps, timings, finish);
  };
  try {
    return await (deps.hold ? deps.hold(body) : body(deps.db));
  } catch (err) {
    // no connection, no lock answer or no snapshot: nothing was decided
    return finish({ ok: false, error: describeError(err), results: [] });
  }
}

async function decideAndAct(snapshot: Snapshot, db: Db, settings: RunSettings, deps: RunDeps, timings: RunReport['timings'], finish: Finish): Promise<RunReport> {
  let mark = deps.monotonic();
  try {
    const ledger = deps.budget ?? new BudgetLedger();
    const { decisions, acting, notActedOn } = decide(snapshot, settings, ledger);
    const spared = protectedCounts(snapshot, settings.protect, settings.applicationName);
    timings.planMs = deps.monotonic() - mark;
    mark = deps.monotonic();
    const results = await execute(acting, {
      db,
      applicationName: settings.applicationName,
      terminateTimeoutMs: settings.terminateTimeoutMs,
      sleep: deps.sleep,
      now: deps.monotonic,
    });
    timings.executeMs = deps.monotonic() - mark;
    const budget = ledger.settle(snapshot.nowMs, budgetRules(settings.budget, settings.policies), results);
    const failed = results.some((r) => r.outcome === 'failed');
    return finish({ ok: !failed, ...(failed ? { error: 'some actions failed' } : {}), snapshot, results, decisions, ...(notActedOn ? { notActedOn } : {}), protected: spared, budget });
  } catch (err) {
    return finish({ ok: false, error: describeError(err), snapshot, results: [] });
  }
}
