// Summaries of repeated measurements: the machines are noisy, so medians and spreads, not means.
export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
  p25: number;
  p75: number;
  p95: number;
}

export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function summarize(values: number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, median: quantile(s, 0.5), min: s[0]!, max: s.at(-1)!, p25: quantile(s, 0.25), p75: quantile(s, 0.75), p95: quantile(s, 0.95) };
}

/**
 * A ratio of two variants measured side by side: the ratio of each repetition's pair, summarized.
 * The median of these is the figure (not the ratio of the two medians, which can hide a
 * consistent difference between pairs).
 */
export function pairedRatio(a: number[], b: number[]): Summary & { perRep: number[] } {
  if (a.length !== b.length) throw new Error(`paired ratio of ${a.length} and ${b.length} values`);
  const perRep = a.map((x, i) => x / b[i]!);
  return { ...summarize(perRep), perRep: perRep.map((r) => round(r, 3)) };
}

/** Least-squares slope and its standard error of y over x. */
export function slope(xs: number[], ys: number[]): { slope: number; stderr: number; n: number } {
  const n = xs.length;
  if (n < 3) return { slope: NaN, stderr: NaN, n };
  const mx = xs.reduce((s, x) => s + x, 0) / n;
  const my = ys.reduce((s, y) => s + y, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i < n; i++) {
    sxx += (xs[i]! - mx) ** 2;
    sxy += (xs[i]! - mx) * (ys[i]! - my);
  }
  const b = sxy / sxx;
  const a = my - b * mx;
  const sse = ys.reduce((s, y, i) => s + (y - (a + b * xs[i]!)) ** 2, 0);
  return { slope: b, stderr: Math.sqrt(sse / (n - 2) / sxx), n };
}

export const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;
