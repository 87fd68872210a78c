import { fnv1a32 } from '../util/fnv1a.js';

// The advisory lock of a target: pg_try_advisory_lock(lockKey, targetKey(name)), the two-int form,
// visible in pg_locks as locktype 'advisory' with classid = lockKey, objid = the target key and
// objsubid = 2 (classid and objid are shown as unsigned oids). lockKey is config
// (coordination.lockKey, default DEFAULT_LOCK_KEY in config/schema.ts).

/** The second key of a target's lock: fnv1a32 of its name ("main" → -359603704). */
export const targetKey = (name: string): number => fnv1a32(name);
