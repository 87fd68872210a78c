import type { Budget, Config, PolicyConfig, Selector } from '../config/schema.js';
import type { Session } from '../db/session.js';
import { ENTRIES, type ThresholdKey } from '../reasons/table.js';
import { AddressSet } from './address.js';
import { GlobSet } from './glob.js';

// Policies compiled once per config into matchers and thresholds, so that planning a run is a
// loop over sessions with no parsing in it. Plain classes and loops: these run for every session
// and policy, so call sites stay monomorphic and nothing allocates.

/** A policy's thresholds by key, in their compiled unit (durations: ms). */
export type Thresholds = { [K in ThresholdKey]?: number | undefined };

/** Thresholds by position in the table of reasons: Infinity where the policy has none. */
export function limitsOf(t: Thresholds): Float64Array {
  return Float64Array.from(ENTRIES, (e) => t[e.key] ?? Infinity);
}

export const enum Attribute {
  User,
  Database,
  Application,
  Address,
}

/** A selector's non-empty lists. */
export class SessionSelector {
  private readonly users: GlobSet | undefined;
  private readonly databases: GlobSet | undefined;
  private readonly applications: GlobSet | undefined;
  private readonly addresses: AddressSet | undefined;

  constructor(readonly selector: Selector) {
    const sel = selector;
    this.users = sel.users.length ? new GlobSet(sel.users) : undefined;
    this.databases = sel.databases.length ? new GlobSet(sel.databases) : undefined;
    this.applications = sel.applications.length ? new GlobSet(sel.applications) : undefined;
    this.addresses = sel.clientAddresses.length ? new AddressSet(sel.clientAddresses) : undefined;
  }

  /** match: every non-empty list matches (an empty selector matches everything). */
  all(s: Session): boolean {
    return (
      (this.users === undefined || this.users.test(s.user)) &&
      (this.databases === undefined || this.databases.test(s.database)) &&
      (this.applications === undefined || this.applications.test(s.application)) &&
      (this.addresses === undefined || this.addresses.test(s.clientAddr, s.local))
    );
  }

  /** One attribute's list: undefined when the selector has none, else whether it matches. */
  testAttribute(attr: Attribute, s: Session): boolean | undefined {
    switch (attr) {
      case Attribute.User:
        return this.users?.test(s.user);
      case Attribute.Database:
        return this.databases?.test(s.database);
      case Attribute.Application:
        return this.applications?.test(s.application);
      case Attribute.Address:
        return this.addresses?.test(s.clientAddr, s.local);
    }
  }

  /** exempt: any non-empty list matches (an empty selector exempts nothing). */
  any(s: Session): boolean {
    return (
      (this.users !== undefined && this.users.test(s.user)) ||
      (this.databases !== undefined && this.databases.test(s.database)) ||
      (this.applications !== undefined && this.applications.test(s.application)) ||
      (this.addresses !== undefined && this.addresses.test(s.clientAddr, s.local))
    );
  }
}

export class CompiledPolicy {
  readonly name: string;
  readonly action: 'terminate' | 'cancel';
  readonly dryRun: boolean;
  readonly maxActionsPerRun: number | undefined;
  /** Its own budget, beside the target's; undefined: none. */
  readonly budget: Budget | undefined;
  readonly thresholds: Thresholds;
  /** The thresholds by position in the table of reasons (Infinity: none). */
  readonly limits: Float64Array;
  /** Positions in the table of the reasons this policy has, in the table's order. */
  readonly reasons: Uint8Array;
  /** By position in the table: the values of the reason's options (defaults filled in), for reasons that have options. */
  readonly options: readonly (Readonly<Record<string, unknown>> | undefined)[];
  /** Spare the N most recently active idle sessions of each (user, database, application). */
  readonly keepIdle: number | undefined;
  /** With action cancel: terminate a query still running this long after maxQueryDuration. */
  readonly terminateAfter: number | undefined;
  /** Act only while client connections are above this. */
  readonly connectionsAbove: { percent: number } | { count: number } | undefined;
  readonly match: SessionSelector;
  readonly exempt: SessionSelector;
  readonly config: PolicyConfig;

  constructor(p: PolicyConfig, globalDryRun: boolean, readonly globalExempt: SessionSelector) {
    this.config = p;
    this.name = p.name;
    this.action = p.action;
    this.dryRun = globalDryRun || p.dryRun;
    this.maxActionsPerRun = p.maxActionsPerRun;
    this.budget = p.budget ?? undefined;
    this.keepIdle = p.keepIdle;
    this.terminateAfter = p.terminateAfter;
    this.connectionsAbove = p.when?.connectionsAbove;
    this.thresholds = Object.fromEntries(ENTRIES.map((e) => [e.key, p[e.key]])) as Thresholds;
    this.limits = limitsOf(this.thresholds);
    this.reasons = Uint8Array.from(ENTRIES.keys()).filter((r) => this.limits[r]! !== Infinity);
    const raw = p as Record<string, unknown>;
    this.options = ENTRIES.map((e) =>
      e.options ? Object.fromEntries(Object.entries(e.options).map(([name, o]) => [name, raw[name] ?? (o.kind === 'integer' ? o.default : undefined)])) : undefined,
    );
    this.match = new SessionSelector(p.match);
    this.exempt = new SessionSelector(p.exempt);
  }

  /** Every non-empty match list matches, and neither this policy's nor the global exempt does. */
  inScope(s: Session): boolean {
    return this.match.all(s) && !this.exempt.any(s) && !this.globalExempt.any(s);
  }
}

/** The policies that apply to one target, in file order. */
export function compilePolicies(config: Config, target: string): CompiledPolicy[] {
  const globalExempt = new SessionSelector(config.exempt);
  return config.policies.filter((p) => !p.targets || p.targets.includes(target)).map((p) => new CompiledPolicy(p, config.dryRun, globalExempt));
}
