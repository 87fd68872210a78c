// Counts in config: "5000", "100k", "10M", "1.5G" (k or K, M, G: thousands, millions, billions).
// A decimal must come to a whole number: "1.5k" is 1500, "1.2345k" is refused, not rounded.
const COUNT = /^(\d+)(?:\.(\d+))?([kKMG]?)$/;
const DIGITS: Record<string, number> = { '': 0, k: 3, K: 3, M: 6, G: 9 };

/** The whole number a count stands for, or undefined when the input is not one. */
export function parseCount(input: unknown): number | undefined {
  if (typeof input === 'number') return Number.isSafeInteger(input) ? input : undefined;
  if (typeof input !== 'string') return undefined;
  const m = COUNT.exec(input.trim());
  if (!m) return undefined;
  // digit by digit, so that no binary fraction rounds: the decimals may not outnumber the suffix's zeros
  const zeros = DIGITS[m[3]!]!;
  const decimals = (m[2] ?? '').replace(/0+$/, '');
  if (decimals.length > zeros) return undefined;
  const n = Number(m[1]! + decimals.padEnd(zeros, '0'));
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * Short form for tables and why-not lines where it is exact: 150000 → "150k", 12500000 → "12.5M";
 * otherwise the whole number (99999, 1500001), so that a line never hides which side of a
 * threshold a count is on.
 */
export function formatCount(n: number): string {
  const [div, suffix] = n >= 1e9 ? [1e9, 'G'] : n >= 1e6 ? [1e6, 'M'] : n >= 1e4 ? [1e3, 'k'] : [1, ''];
  const short = Math.round((n / div) * 10) / 10;
  return short * div === n ? `${short}${suffix}` : String(n);
}
