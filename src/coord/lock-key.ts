// The advisory lock of a target: pg_try_advisory_lock(lockKey, targetKey(name)), the two-int form,
// visible in pg_locks as locktype 'advisory' with classid = lockKey, objid = the target key and
// objsubid = 2 (classid and objid are shown as unsigned oids).

/** FNV-1a, 32 bits, as a signed int4: stable across versions, platforms and processes. */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h | 0;
}

/** The default lockKey: fnv1a32("pg-reaper") = 79173604. */
export const DEFAULT_LOCK_KEY = fnv1a32('pg-reaper');

/** The second key of a target's lock: fnv1a32 of its name ("main" → -359603704). */
export const targetKey = (name: string): number => fnv1a32(name);
