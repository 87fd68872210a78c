import type { SnapshotFilter } from '../db/snapshot.js';
import type { CompiledPolicy } from '../policy/compile.js';
import { BACKUP_NAMES, BACKUP_PREFIXES, type Protect } from './protect.js';

// Which sessions the snapshot must send as rows for these policies: every session that could
// break one of them (past the smallest threshold of each reason), all idle sessions when a policy
// keeps pools (keepIdle looks at whole groups), and lock waiters with their blockers when a
// policy has maxBlocking, and the sessions protected as backups or maintenance (few, and counted
// in pg_reaper_sessions_protected whatever their age). The rest the server only counts. The planner still decides exactly:
// this only leaves out sessions no policy can act on.

const caches = { withBackups: new WeakMap<readonly CompiledPolicy[], SnapshotFilter>(), withoutBackups: new WeakMap<readonly CompiledPolicy[], SnapshotFilter>() };

export function snapshotFilter(policies: readonly CompiledPolicy[], protect: Protect): SnapshotFilter {
  const cache = protect.backups ? caches.withBackups : caches.withoutBackups;
  let f = cache.get(policies);
  if (f) return f;
  const min = (pick: (p: CompiledPolicy) => number | undefined) => Math.min(Infinity, ...policies.map((p) => pick(p) ?? Infinity));
  f = {
    idleMs: min((p) => p.thresholds.maxIdle),
    idleInTransactionMs: min((p) => p.thresholds.maxIdleInTransaction),
    queryMs: min((p) => p.thresholds.maxQueryDuration),
    transactionMs: min((p) => p.thresholds.maxTransactionDuration),
    connectionMs: min((p) => p.thresholds.maxConnectionAge),
    allIdle: policies.some((p) => p.keepIdle !== undefined),
    locks: policies.some((p) => p.thresholds.maxBlocking !== undefined),
    backupNames: protect.backups ? BACKUP_NAMES : [],
    backupPrefixes: protect.backups ? BACKUP_PREFIXES : [],
  };
  cache.set(policies, f);
  return f;
}
