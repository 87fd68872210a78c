import type { Config, PolicyConfig, Selector } from '../config/schema.js';
import type { Session } from '../db/session.js';
import { compileAddresses } from './address.js';
import { compileGlobs } from './glob.js';

// Policies compiled once per config into predicates and thresholds, so that planning a run is a
// loop over sessions with no parsing in it.

export interface Thresholds {
  maxIdle?: number;
  maxIdleInTransaction?: number;
  maxQueryDuration?: number;
  maxTransactionDuration?: number;
  maxConnectionAge?: number;
}

export interface CompiledPolicy {
  name: string;
  action: 'terminate' | 'cancel';
  dryRun: boolean;
  maxActionsPerRun: number | undefined;
  thresholds: Thresholds;
  inScope: (session: Session) => boolean;
}

type SessionPredicate = (s: Session) => boolean;

/** The policies that apply to one target, in file order. */
export function compilePolicies(config: Config, target: string): CompiledPolicy[] {
  const globalExempt = anyOf(config.exempt);
  return config.policies.filter((p) => !p.targets || p.targets.includes(target)).map((p) => compilePolicy(p, config.dryRun, globalExempt));
}

function compilePolicy(p: PolicyConfig, globalDryRun: boolean, globalExempt: SessionPredicate | undefined): CompiledPolicy {
  const match = allOf(p.match);
  const exempt = anyOf(p.exempt);
  return {
    name: p.name,
    action: p.action,
    dryRun: globalDryRun || p.dryRun,
    maxActionsPerRun: p.maxActionsPerRun,
    thresholds: {
      maxIdle: p.maxIdle,
      maxIdleInTransaction: p.maxIdleInTransaction,
      maxQueryDuration: p.maxQueryDuration,
      maxTransactionDuration: p.maxTransactionDuration,
      maxConnectionAge: p.maxConnectionAge,
    },
    inScope: (s) => match(s) && !(exempt?.(s) ?? false) && !(globalExempt?.(s) ?? false),
  };
}

function predicates(sel: Selector): SessionPredicate[] {
  const out: SessionPredicate[] = [];
  if (sel.users.length) {
    const m = compileGlobs(sel.users);
    out.push((s) => m(s.user));
  }
  if (sel.databases.length) {
    const m = compileGlobs(sel.databases);
    out.push((s) => m(s.database));
  }
  if (sel.applications.length) {
    const m = compileGlobs(sel.applications);
    out.push((s) => m(s.application));
  }
  if (sel.clientAddresses.length) {
    const m = compileAddresses(sel.clientAddresses);
    out.push((s) => (s.local ? m(null) : s.clientAddr !== null && m(s.clientAddr)));
  }
  return out;
}

/** match: every non-empty list must match. */
function allOf(sel: Selector): SessionPredicate {
  const ps = predicates(sel);
  return (s) => ps.every((p) => p(s));
}

/** exempt: any non-empty list that matches exempts; undefined when nothing is listed. */
function anyOf(sel: Selector): SessionPredicate | undefined {
  const ps = predicates(sel);
  return ps.length ? (s) => ps.some((p) => p(s)) : undefined;
}
