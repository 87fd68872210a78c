import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { createLogger } from '../../src/log/logger.js';
import { ensureReaperRole, Sessions, urlFor } from '../helpers/pg.js';

// Every expression of the Grafana dashboard (deploy/grafana/pg-reaper.json) and of the alert
// rules uses only metric names and labels that the daemon exports: read from a real scrape here,
// never from a list.

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const DASHBOARD = JSON.parse(readFileSync(join(import.meta.dirname, '../../deploy/grafana/pg-reaper.json'), 'utf8')) as Doc;
const s = new Sessions();
let daemon: Daemon;
/** metric name → the label names it carries in the scrape. */
const exported = new Map<string, Set<string>>();

beforeAll(async () => {
  await s.start();
  const reaper = await ensureReaperRole(s.admin);
  daemon = await startDaemon(
    validateConfig({
      schedule: '0 0 1 1 *',
      http: { host: '127.0.0.1', port: 0 },
      coordination: { mode: 'advisory-lock' },
      // audit on, so its series are in the scrape (the table need not exist for that)
      audit: { target: 'main', table: 'reaper_audit_t.dashboard' },
      targets: [{ name: 'main', connectionString: urlFor({ user: reaper }) }],
      policies: [{ name: 'idle', maxIdle: '1h', maxBlocking: '30s' }],
    }),
    { logger: createLogger('silent'), version: 'test' },
  );
  await daemon.startupRuns();
  const body = await (await fetch(`http://127.0.0.1:${daemon.http.port}/metrics`)).text();
  for (const line of body.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? /.exec(line);
    if (!m) continue;
    const labels = exported.get(m[1]!) ?? new Set<string>();
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) labels.add(l[1]!);
    exported.set(m[1]!, labels);
  }
});
afterAll(async () => {
  await daemon?.stop();
  await s.end();
});

const FUNCTIONS = new Set(['sum', 'max', 'min', 'avg', 'count', 'by', 'without', 'rate', 'increase', 'histogram_quantile', 'label_values', 'on', 'ignoring', 'group_left', 'group_right', 'absent', 'clamp_min', 'time', 'or', 'and', 'bool']);
// labels every series gets from Prometheus itself, not from the daemon
const SCRAPE_LABELS = new Set(['instance', 'job']);
// series Prometheus makes itself for every scrape target
const SCRAPE_SERIES = new Map([['up', new Set(['instance', 'job'])]]);
const RULES = parse(readFileSync(join(import.meta.dirname, '../../deploy/prometheus/pg-reaper.rules.yaml'), 'utf8')) as Doc;

/** Each expression of the dashboard: panel queries and template variable queries. */
function expressions(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of DASHBOARD.panels as Doc[]) for (const t of (p.targets ?? []) as Doc[]) out.push({ where: `panel "${p.title}"`, expr: t.expr });
  for (const v of DASHBOARD.templating.list as Doc[]) if (v.type === 'query') out.push({ where: `variable $${v.name}`, expr: v.query.query });
  return out;
}

function problems(expr: string): string[] {
  const found: string[] = [];
  // metric names: what is left without strings, ranges, grouping clauses and label matchers
  const text = expr.replace(/"[^"]*"/g, '""').replace(/\[[^\]]*\]/g, '').replace(/\b(by|without)\s*\([^)]*\)/g, '').replace(/\{[^}]*\}/g, '');
  const metrics = [...text.matchAll(/\b([a-z_][a-z0-9_]*)\b(?!\s*\()/g)].map((m) => m[1]!).filter((n) => n.includes('_') && !FUNCTIONS.has(n));
  const used = new Set<string>();
  const labelsOf = (name: string) => SCRAPE_SERIES.get(name) ?? exported.get(name);
  for (const name of [...metrics, ...[...expr.matchAll(/\b(up)\{/g)].map((m) => m[1]!)]) {
    if (!labelsOf(name)) found.push(`metric ${name} is not exported`);
    for (const l of labelsOf(name) ?? []) used.add(l);
  }
  // label matchers: metric{label=...}
  for (const m of expr.matchAll(/([a-z_][a-z0-9_]*)\{([^}]*)\}/g)) {
    for (const l of m[2]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) {
      if (!labelsOf(m[1]!)?.has(l[1]!) && !SCRAPE_LABELS.has(l[1]!)) found.push(`${m[1]} has no label ${l[1]}`);
    }
  }
  // by (...) / without (...) and label_values(..., label)
  for (const m of expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
    for (const l of m[1]!.split(',').map((x) => x.trim()).filter(Boolean)) if (!used.has(l) && !SCRAPE_LABELS.has(l)) found.push(`no metric here has label ${l}`);
  }
  const lv = /label_values\(([a-z_]+)[^,]*,\s*([a-z_]+)\)/.exec(expr);
  if (lv && !exported.get(lv[1]!)?.has(lv[2]!)) found.push(`${lv[1]} has no label ${lv[2]}`);
  return found;
}

describe('the Grafana dashboard', () => {
  it('uses only metric names and labels that a real scrape of the daemon has', () => {
    expect(exported.size).toBeGreaterThan(20);
    const bad = expressions().flatMap(({ where, expr }) => problems(expr).map((p) => `${where}: ${p} (${expr})`));
    expect(bad).toEqual([]);
  });

  it('so do the alert rules', () => {
    const rules = (RULES.groups as Doc[]).flatMap((g) => g.rules as Doc[]);
    expect(rules.length).toBeGreaterThan(5);
    const bad = rules.flatMap((r) => problems(r.expr as string).map((p) => `alert ${r.alert}: ${p} (${r.expr})`));
    expect(bad).toEqual([]);
  });

  it('the check itself catches a wrong name and a wrong label', () => {
    expect(problems('sum by (policy) (pg_reaper_action_total)')).toEqual(['metric pg_reaper_action_total is not exported', 'no metric here has label policy']);
    expect(problems('pg_reaper_target_up{targte=~"$target"}')).toEqual(['pg_reaper_target_up has no label targte']);
  });

  it('has the panels an operator needs and variables for datasource, target and policy', () => {
    const titles = (DASHBOARD.panels as Doc[]).map((p) => p.title as string);
    for (const t of ['Actions by policy and outcome', 'Matched sessions by policy and reason (last run)', 'Client sessions by state', 'Oldest session per state', 'Run duration p50 / p95', 'Target up', 'Leader per target (replicas acting)', 'Sessions waiting on a lock', 'Connection use (client connections / client slots)', 'Config reload successful', 'Audit rows by result (written, dropped, failed)', 'Audit rows waiting to be written', 'Audit table writable']) {
      expect(titles).toContain(t);
    }
    expect((DASHBOARD.templating.list as Doc[]).map((v) => v.name)).toEqual(['datasource', 'target', 'policy']);
  });
});
