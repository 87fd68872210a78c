// Durations in config: "500ms", "30s", "10m", "1h30m", "2d", or a bare number of seconds.
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const WHOLE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;

/** Milliseconds for a duration, or undefined when the input is not one. */
export function parseDuration(input: unknown): number | undefined {
  if (typeof input === 'number') return Number.isFinite(input) ? input * 1000 : undefined;
  if (typeof input !== 'string') return undefined;
  const text = input.trim();
  if (/^\d+(?:\.\d+)?$/.test(text)) return Number(text) * 1000;
  if (!WHOLE.test(text)) return undefined;
  let ms = 0;
  for (const [, amount, unit] of text.matchAll(PART)) ms += Number(amount) * UNIT_MS[unit!]!;
  return ms;
}

/** Human form for logs and tables: 1500 → "1.5s", 600000 → "10m". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${round(s)}s`;
  if (s < 3600) return `${round(s / 60)}m`;
  if (s < 86400) return `${round(s / 3600)}h`;
  return `${round(s / 86400)}d`;
}

function round(n: number): string {
  return String(Math.round(n * 10) / 10);
}
