import { round } from './stats.js';

// A goal and its verdict, as data in the result file: what was measured, its value, the limit,
// any tolerance (printed beside the goal, never hidden), and by how much it was met or missed.

export interface Check {
  /** What the figure is, in words: "(a)/(b) at 500 sessions, in process". */
  figure: string;
  value: number;
  unit: string;
  op: '<=' | '>=';
  limit: number;
  /** Allowed beyond the limit, printed with the goal (say timer granularity); 0 when none. */
  tolerance: number;
  /** Where the goal comes from: "issue 10". */
  source: string;
  met: boolean;
  /** How far past the limit (positive: missed by this much; negative: the margin it was met by), in unit. */
  by: number;
  /** Why this figure stands for the goal, when it is not obvious (a stand-in, a definition). */
  note?: string;
}

export function check(figure: string, value: number, op: '<=' | '>=', limit: number, unit: string, source: string, opts: { tolerance?: number; note?: string } = {}): Check {
  const tolerance = opts.tolerance ?? 0;
  const by = op === '<=' ? value - limit : limit - value;
  return { figure, value: round(value, 6), unit, op, limit, tolerance, source, met: Number.isFinite(value) && by <= tolerance, by: round(by, 6), ...(opts.note ? { note: opts.note } : {}) };
}

/** A figure with about three significant digits: 1665 ms, 41.6 ms, 4.14 ms, 0.0312 MiB/h. */
export function num(n: number): number {
  const a = Math.abs(n);
  if (!Number.isFinite(n) || a >= 100 || Number.isInteger(n)) return round(n, 0);
  const digits = a >= 10 ? 1 : a >= 1 ? 2 : a === 0 ? 0 : Math.min(6, 2 - Math.floor(Math.log10(a)));
  return round(n, digits);
}

export const fmt = (n: number, unit: string) => {
  const v = num(n);
  return unit === '×' ? `${v}×` : unit === '' ? `${v}` : unit === '%' ? `${v} %` : `${v} ${unit}`;
};

/** "≤ 1.25× (+ 0.1 tolerance)" */
export function goalText(c: Check): string {
  return `${c.op === '<=' ? '≤' : '≥'} ${fmt(c.limit, c.unit)}${c.tolerance ? ` (tolerance ${fmt(c.tolerance, c.unit)})` : ''}`;
}

/** "met by 0.13×" / "**missed** by 0.03×" */
export function verdictText(c: Check): string {
  if (!Number.isFinite(c.value)) return '**missed**: not measured';
  if (c.met) return c.by > 0 ? `met within the tolerance (${fmt(c.by, c.unit)} over)` : c.by === 0 ? 'met' : `met (margin ${fmt(-c.by, c.unit)})`;
  const pct = c.limit !== 0 ? ` (${num((Math.abs(c.by) / c.limit) * 100)} % over)` : '';
  return `**missed** by ${fmt(c.by, c.unit)}${pct}`;
}
