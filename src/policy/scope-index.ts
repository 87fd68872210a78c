import type { Session } from '../db/session.js';
import { Attribute, type CompiledPolicy } from './compile.js';

// Which policies have a session in scope, for one plan. A selector list reads one attribute of
// the session (user, database, application, address), and sessions share few distinct values:
// each distinct user, database and application is matched against every policy once per plan
// and kept as bitmasks, so the planner tests a bit per policy instead of running globs per
// session and policy. Addresses, often all different, are tested only for the policies left.

const CACHED = [Attribute.User, Attribute.Database, Attribute.Application] as const;
/** Bitmasks hold one bit per policy and one for the global exempt list. */
export const MAX_INDEXED_POLICIES = 30;

interface Masks {
  /** bit i: policy i has no list for this attribute, or its match list accepts the value */
  match: number;
  /** bit i: policy i's exempt list accepts the value; bit `policies.length`: the global exempt list does */
  exempt: number;
}

function keyOf(attr: Attribute, s: Session): string {
  const v = attr === Attribute.User ? s.user : attr === Attribute.Database ? s.database : s.application;
  return v ?? '\u0000null';
}

export class ScopeIndex {
  private readonly caches = CACHED.map(() => new Map<string, Masks>());
  private readonly globalBit: number;

  constructor(private readonly policies: readonly CompiledPolicy[]) {
    if (policies.length > MAX_INDEXED_POLICIES) throw new Error(`ScopeIndex takes at most ${MAX_INDEXED_POLICIES} policies`);
    this.globalBit = 1 << policies.length;
  }

  /** Bit i set: policy i has the session in scope. 0 when the global exempt list spares it. */
  scopeOf(s: Session): number {
    let match = -1;
    let exempt = 0;
    for (const attr of CACHED) {
      const m = this.masks(attr, s);
      match &= m.match;
      exempt |= m.exempt;
    }
    if (exempt & this.globalBit) return 0;
    let scope = match & ~exempt & (this.globalBit - 1);
    if (scope === 0) return 0;
    // Client addresses are often all different: test them only for the policies still in scope.
    if (this.policies[0]!.globalExempt.testAttribute(Attribute.Address, s) === true) return 0;
    for (let i = 0; i < this.policies.length; i++) {
      if (((scope >>> i) & 1) === 0) continue;
      const p = this.policies[i]!;
      if (p.match.testAttribute(Attribute.Address, s) === false || p.exempt.testAttribute(Attribute.Address, s) === true) scope &= ~(1 << i);
    }
    return scope;
  }

  private masks(attr: Attribute, s: Session): Masks {
    const cache = this.caches[attr]!;
    const key = keyOf(attr, s);
    let m = cache.get(key);
    if (m === undefined) {
      m = { match: 0, exempt: 0 };
      this.policies.forEach((p, i) => {
        if (p.match.testAttribute(attr, s) !== false) m!.match |= 1 << i;
        if (p.exempt.testAttribute(attr, s) === true) m!.exempt |= 1 << i;
      });
      if (this.policies[0]?.globalExempt.testAttribute(attr, s) === true) m.exempt |= this.globalBit;
      cache.set(key, m);
    }
    return m;
  }
}
