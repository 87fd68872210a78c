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

const caches = { withBackups: new WeakMap<readonly CompiledPolicy[], SnapshotFilter>(), withoutBackups: new WeakMap<readonly CompiledPolicy[], SnapshotFilter>() };

export function snapshotFilter(policies: readonly CompiledPolicy[], protect: Protect): SnapshotFilter {
  const cache = protect.backups ? caches.withBackups : caches.withoutBackups;
  let f = cache.get(policies);
  if (f) return f;
  f = {
    thresholds: ENTRIES.map((_, r) => {
      const min = Math.min(Infinity, ...policies.map((p) => p.limits[r]!));
      return Number.isFinite(min) ? min : null;
    }),
    allIdle: policies.some((p) => p.keepIdle !== undefined),
    backupNames: protect.backups ? BACKUP_NAMES : [],
    backupPrefixes: protect.backups ? BACKUP_PREFIXES : [],
  };
  cache.set(policies, f);
  return f;
}
