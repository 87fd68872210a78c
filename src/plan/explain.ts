import type { Selector } from '../config/schema.js';
import type { Session, Snapshot } from '../db/session.js';
import { AddressSet } from '../policy/address.js';
import type { CompiledPolicy } from '../policy/compile.js';
import { compileGlob } from '../policy/glob.js';
import { ENTRIES } from '../reasons/table.js';
import { UNITS } from '../reasons/units.js';
import { keptIdle } from './keep-idle.js';
import { reasonContexts, violation, type Decision } from './planner.js';
import { describeProtection, PROTECT_ALL, protectionOf, type Protect } from './protect.js';

// Why a session was not acted on, for `debug` logs ("why was this session not reaped?"). Pure,
// and only called when debug is on: it tests each selector entry on its own to name the one
// that matched, which the planner's fast path never does.

export interface NotActedOn {
  session: Session;
  why: string;
}

const LISTS = [
  ['users', (s: Session) => s.user],
  ['databases', (s: Session) => s.database],
  ['applications', (s: Session) => s.application],
] as const;

/** The first entry of a selector that matches the session, as "users \"postgres\"", or undefined. */
function matchingEntry(sel: Selector, s: Session): string | undefined {
  for (const [list, value] of LISTS) {
    const v = value(s);
    const hit = v === null ? undefined : sel[list].find((g) => compileGlob(g).test(v));
    if (hit !== undefined) return `${list} "${hit}"`;
  }
  const addr = sel.clientAddresses.find((a) => new AddressSet([a]).test(s.clientAddr, s.local));
  return addr === undefined ? undefined : `clientAddresses "${addr}"`;
}

/** The first non-empty list of a match selector that does not match, as "users (app)". */
function failingList(sel: Selector, s: Session): string | undefined {
  for (const [list, value] of LISTS) {
    const v = value(s);
    if (sel[list].length && (v === null || !sel[list].some((g) => compileGlob(g).test(v)))) return `${list} does not match ${JSON.stringify(v)}`;
  }
  if (sel.clientAddresses.length && !new AddressSet(sel.clientAddresses).test(s.clientAddr, s.local)) return `clientAddresses does not match ${s.local ? 'local' : JSON.stringify(s.clientAddr)}`;
  return undefined;
}

/** Each of the policy's thresholds against the session, from the table of reasons. */
function underThresholds(p: CompiledPolicy, s: Session, nowMs: number, contexts: readonly unknown[]): string {
  let refused = false;
  const parts = Array.from(p.reasons, (r) => {
    const e = ENTRIES[r]!;
    const unit = UNITS[e.unit];
    const age = e.age(s, nowMs, contexts[r]);
    if (Number.isNaN(age)) return `${e.key}: ${e.whyNot ? e.whyNot(s, contexts[r]) : `not ${e.condition}`}`;
    const against = `${unit.format(age / unit.base)} ${age > p.limits[r]! ? '>' : '<='} ${e.key} ${unit.format(p.limits[r]! / unit.base)}`;
    const refusal = age > p.limits[r]! ? e.refuses?.(s, contexts[r], p.options[r] ?? {}) : undefined;
    if (refusal !== undefined) refused = true;
    return `${e.condition} ${against}${refusal !== undefined ? `, but ${refusal}` : ''}`;
  });
  return `${refused ? 'spared by its options' : 'under threshold'} (${parts.join(', ')})`;
}

/** Each session of the snapshot not acted on (but our own), with why, policy by policy. */
export function explain(snapshot: Snapshot, policies: readonly CompiledPolicy[], applicationName: string, decisions: readonly Decision[], exemptListeners = true, protect: Protect = PROTECT_ALL): NotActedOn[] {
  const out: NotActedOn[] = [];
  const decided = new Map(decisions.map((d) => [d.session.pid, d]));
  const contexts = reasonContexts(snapshot, policies);
  const kept = policies.map((p) => (p.keepIdle !== undefined ? keptIdle(snapshot, p, applicationName) : undefined));
  for (const s of snapshot.sessions) {
    const d = decided.get(s.pid);
    if (d?.held) {
      const p = policies.find((x) => x.name === d.policy)!;
      const when = p.connectionsAbove!;
      const threshold = 'percent' in when ? `${when.percent}% of ${snapshot.clientSlots} client slots` : `${when.count}`;
      out.push({ session: s, why: `${d.policy}: over ${d.reason}, but held: client connections (${snapshot.clients + 1}) are not above when.connectionsAbove ${threshold}, or the older matches free enough` });
      continue;
    }
    if (d) continue;
    if (s.backendStart === null) {
      out.push({ session: s, why: "not visible to our role (its state and times are hidden without pg_read_all_stats): never judged" });
      continue;
    }
    // our own connections (any replica's) are never candidates: nothing to explain
    if (s.application === applicationName) continue;
    const protection = protectionOf(s, protect);
    if (protection) {
      out.push({ session: s, why: describeProtection(protection) });
      continue;
    }
    if (policies.length === 0) {
      out.push({ session: s, why: 'no policy applies to this target' });
      continue;
    }
    const reasons: string[] = [];
    for (let i = 0; i < policies.length; i++) {
      const p = policies[i]!;
      const global = matchingEntry(p.globalExempt.selector, s);
      if (global) {
        reasons.push(`${p.name}: exempt by global exempt.${global}`);
        continue;
      }
      const outOfScope = failingList(p.match.selector, s);
      if (outOfScope) {
        reasons.push(`${p.name}: out of scope (match.${outOfScope})`);
        continue;
      }
      const exempt = matchingEntry(p.exempt.selector, s);
      if (exempt) {
        reasons.push(`${p.name}: exempt by exempt.${exempt}`);
        continue;
      }
      // a session a policy keeps is decided by that policy: the walk ends here, as in the planner
      if (kept[i]?.has(s.pid)) {
        reasons.push(`${p.name}: kept by keepIdle ${p.keepIdle} (among the ${p.keepIdle} most recently active idle sessions of its user, database and application); later policies do not judge it`);
        break;
      }
      const v = violation(s, p.thresholds, snapshot.nowMs, contexts, p.options);
      if (v && exemptListeners && s.listener && ENTRIES.some((e) => e.reason === v.reason && e.sparesListeners)) reasons.push(`${p.name}: over ${v.reason}, but a listener (its last statement was LISTEN) is spared by exemptListeners`);
      else if (v) reasons.push(`${p.name}: over ${v.reason} but spared by the policy's rules`);
      else reasons.push(`${p.name}: ${underThresholds(p, s, snapshot.nowMs, contexts)}`);
    }
    out.push({ session: s, why: reasons.join('; ') });
  }
  return out;
}
