import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

// PromQL as Prometheus evaluates it, over real scrapes: the scrapes become promtool input series
// (one sample a minute, `instance` and `job` added as a scrape would), and promtool checks what
// each expression gives. Needs promtool (Debian's "prometheus" package).

export const havePromtool = spawnSync('promtool', ['--version']).status === 0;

/** The scrape of one replica (its /metrics body), named as Prometheus would label it. */
export interface Scrape {
  instance: string;
  body: string;
}

export interface ExprTest {
  expr: string;
  /** Minutes after the first scrape. */
  evalMinute: number;
  /** Every sample the expression must give: labels as `{a="b"}` (or `name{...}`), and the value. */
  samples: { labels: string; value: number }[];
}

/** Series of the scrapes, pg_reaper_* only: `name{labels}` with instance and job → value. */
export function seriesOf(scrape: Scrape, job = 'pg-reaper'): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of scrape.body.split('\n')) {
    const m = /^(pg_reaper_[a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = [m[2], `instance="${scrape.instance}"`, `job="${job}"`].filter(Boolean).join(',');
    out.set(`${m[1]}{${labels}}`, m[3]!);
  }
  return out;
}

/**
 * Evaluates the expressions over `minutes`: minutes[k] holds the scrapes taken at minute k (a
 * series missing from a minute is stale from then on, as when a replica stops exporting it).
 * Returns promtool's verdict and output (which shows, on a failure, what the expression gave).
 */
export function checkPromql(minutes: Scrape[][], tests: ExprTest[], extraSeries: { series: string; values: string }[] = []): { ok: boolean; output: string } {
  const perMinute = minutes.map((scrapes) => {
    const all = new Map<string, string>();
    for (const s of scrapes) for (const [k, v] of seriesOf(s)) all.set(k, v);
    return all;
  });
  const names = new Set(perMinute.flatMap((m) => [...m.keys()]));
  // a series that a scrape no longer has is marked stale at once, as Prometheus does; before its
  // first sample it has none
  const input_series = [...names].map((series) => {
    let seen = false;
    const values = perMinute.map((m) => {
      const v = m.get(series);
      if (v !== undefined) seen = true;
      return v ?? (seen ? 'stale' : '_');
    });
    return { series, values: values.join(' ') };
  });
  const doc = {
    rule_files: [],
    evaluation_interval: '1m',
    tests: [
      {
        interval: '1m',
        input_series: [...input_series, ...extraSeries],
        promql_expr_test: tests.map((t) => ({ expr: t.expr, eval_time: `${t.evalMinute}m`, exp_samples: t.samples.map((s) => ({ labels: s.labels, value: s.value })) })),
      },
    ],
  };
  const dir = mkdtempSync(join(tmpdir(), 'pg-reaper-promql-'));
  try {
    const file = join(dir, 'test.yaml');
    writeFileSync(file, stringify(doc, { lineWidth: 0 }));
    const r = spawnSync('promtool', ['test', 'rules', file], { encoding: 'utf8' });
    return { ok: r.status === 0, output: r.stdout + r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
