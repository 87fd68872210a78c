import type { Snapshot } from '../db/session.js';
import type { CompiledPolicy } from '../policy/compile.js';

// keepIdle: N: pools shrink, never empty. Of the idle sessions a policy has in scope, grouped by
// (user, database, application), the N most recently active of each group (largest state_change)
// are kept, counting those still under maxIdle: only the rest may be terminated for `idle`.

/** The pids this policy keeps. */
export function keptIdle(snapshot: Snapshot, policy: CompiledPolicy, ownApplication: string): Set<number> {
  const groups = new Map<string, { pid: number; since: number }[]>();
  for (const s of snapshot.sessions) {
    if (s.state !== 'idle' || s.backendStart === null || s.application === ownApplication || !policy.inScope(s)) continue;
    const key = `${s.user}\u0000${s.database}\u0000${s.application}`;
    let group = groups.get(key);
    if (!group) groups.set(key, (group = []));
    group.push({ pid: s.pid, since: s.stateChangeMs ?? -Infinity });
  }
  const kept = new Set<number>();
  const n = policy.keepIdle ?? 0;
  for (const group of groups.values()) {
    group.sort((a, b) => b.since - a.since || a.pid - b.pid);
    for (const m of group.slice(0, n)) kept.add(m.pid);
  }
  return kept;
}
