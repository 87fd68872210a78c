import type { SnapshotFilter } from '../db/snapshot.js';
import type { CompiledPolicy } from '../policy/compile.js';

// Which sessions the snapshot must send as rows for these policies: every session that could
// break one of them (past the smallest threshold of each reason), all idle sessions when a policy
// keeps pools (keepIdle looks at whole groups), and lock waiters with their blockers when a
// policy has maxBlocking. The rest the server only counts. The planner still decides exactly:
// this only leaves out sessions no policy can act on.

const cache = new WeakMap<readonly CompiledPolicy[], SnapshotFilter>();

export function snapshotFilter(policies: readonly CompiledPolicy[]): SnapshotFilter {
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
  };
  cache.set(policies, f);
  return f;
}
