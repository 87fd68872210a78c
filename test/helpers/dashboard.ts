import { readFileSync } from 'node:fs';
import { join } from 'node:path';

// The shipped Grafana dashboard's expressions, with its variables set as "All" would set them,
// for evaluating them with promtool against real scrapes.

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
export const DASHBOARD = JSON.parse(readFileSync(join(import.meta.dirname, '../../deploy/grafana/pg-reaper.json'), 'utf8')) as Doc;

/** The expression of a panel's query (the first, or the one with refId), variables filled in. */
export function dashboardExpr(title: string, refId = 'A'): string {
  const panel = (DASHBOARD.panels as Doc[]).find((p) => p.title === title);
  if (!panel) throw new Error(`no panel "${title}" in the dashboard`);
  const target = (panel.targets as Doc[]).find((t) => t.refId === refId);
  if (!target) throw new Error(`panel "${title}" has no query ${refId}`);
  return (target.expr as string).replaceAll('$target', '.*').replaceAll('$policy', '.*').replaceAll('$__rate_interval', '5m');
}
