import type { SnapshotFilter } from '../db/snapshot.js';
import type { CompiledPolicy } from '../policy/compile.js';
import { ENTRIES } from '../reasons/table.js';
import { BACKUP_NAMES, BACKUP_PREFIXES, type Protect } from './protect.js';

// Which sessions the snapshot must send as rows for these policies: every session that could
// break one of them (each reason's pre-filter clause, from the table of reasons, at the smallest
// threshold of that reason), all idle sessions when a policy keeps pools (keepIdle looks at
// whole groups), and the sessions protected as backups or maintenance (few, and counted in
// pg_reaper_sessions_protected whatever their age). The rest the server only counts. The planner
// still decides exactly: this only leaves out sessions no policy can act on.
// And which optional parts of the statement they read (the lock graph, listeners, maintenance,
// older transactions): the server skips the others. Built once per config load (cached by the
// compiled policies).

const caches = new Map<string, WeakMap<readonly CompiledPolicy[], SnapshotFilter>>();

export function snapshotFilter(policies: readonly CompiledPolicy[], protect: Protect, exemptListeners = true): SnapshotFilter {
  const key = `${protect.backups}/${protect.maintenance}/${exemptListeners}`;
  let cache = caches.get(key);
  if (!cache) caches.set(key, (cache = new WeakMap()));
  let f = cache.get(policies);
  if (f) return f;
  const used = ENTRIES.map((_, r) => policies.some((p) => p.limits[r]! !== Infinity));
  const reads = (part: 'lockGraph' | 'olderTransaction') => ENTRIES.some((e, r) => used[r] && e.snapshotParts?.includes(part));
  f = {
    thresholds: ENTRIES.map((_, r) => {
      const min = Math.min(Infinity, ...policies.map((p) => p.limits[r]!));
      return Number.isFinite(min) ? min : null;
    }),
    allIdle: policies.some((p) => p.keepIdle !== undefined),
    backupNames: protect.backups ? BACKUP_NAMES : [],
    backupPrefixes: protect.backups ? BACKUP_PREFIXES : [],
    parts: {
      lockGraph: reads('lockGraph'),
      // a listener matters only where exemptListeners spares it from a reason some policy has
      listeners: exemptListeners && ENTRIES.some((e, r) => used[r] && e.sparesListeners),
      maintenance: protect.maintenance,
      olderTransaction: reads('olderTransaction'),
    },
  };
  cache.set(policies, f);
  return f;
}
