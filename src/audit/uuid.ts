import { randomFillSync } from 'node:crypto';

// Row ids made by the reaper, before a row's first attempt to be written: UUIDv7 (RFC 9562), the
// time in its first 48 bits, so the primary key grows at one end of its index like a sequence.

/** A UUIDv7 from a Unix time in ms and 10 random bytes. */
export function uuidv7(ms: number, random: Uint8Array): string {
  const b = new Uint8Array(16);
  let t = Math.max(0, Math.floor(ms));
  for (let i = 5; i >= 0; i--) {
    b[i] = t % 256;
    t = Math.floor(t / 256);
  }
  b[6] = 0x70 | (random[0]! & 0x0f);
  b[7] = random[1]!;
  b[8] = 0x80 | (random[2]! & 0x3f);
  for (let i = 9; i < 16; i++) b[i] = random[i - 6]!;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** n ids for the wall-clock time `ms`, from one fill of the system's random source. */
export function newIds(n: number, ms: number): string[] {
  const random = randomFillSync(new Uint8Array(10 * n));
  return Array.from({ length: n }, (_, i) => uuidv7(ms, random.subarray(10 * i, 10 * i + 10)));
}
