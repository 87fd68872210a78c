// Counts in config: "5000", "100k", "10M", "1.5G" (k, M, G: thousands, millions, billions).
const COUNT = /^(\d+(?:\.\d+)?)([kKMG]?)$/;
const FACTOR: Record<string, number> = { '': 1, k: 1e3, K: 1e3, M: 1e6, G: 1e9 };

/** The whole number a count stands for, or undefined when the input is not one. */
export function parseCount(input: unknown): number | undefined {
  if (typeof input === 'number') return Number.isInteger(input) ? input : undefined;
  if (typeof input !== 'string') return undefined;
  const m = COUNT.exec(input.trim());
  if (!m) return undefined;
  const n = Math.round(Number(m[1]) * FACTOR[m[2]!]!);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Short form for tables and why-not lines: 1234 → "1234", 150000 → "150k", 12500000 → "12.5M". */
export function formatCount(n: number): string {
  const [div, suffix] = n >= 1e9 ? [1e9, 'G'] : n >= 1e6 ? [1e6, 'M'] : n >= 1e4 ? [1e3, 'k'] : [1, ''];
  return `${Math.round((n / div) * 10) / 10}${suffix}`;
}
