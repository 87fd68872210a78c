// npm run deploy:dashboard: deploy/grafana/pg-reaper.json, the Grafana dashboard, from the panel
// list below (one place to read what it shows). test/integration/dashboard.test.ts checks every
// expression against a real scrape of the daemon; test/integration/replica-signals.test.ts
// evaluates them with promtool over two replicas through a failover.
// With several replicas: what the last run read on a target (sessions, ages, connections, lock
// waits, matches, target_info) comes from the replica that leads it only, so sum/max over
// replicas are right; counters and run metrics come from every replica, standbys included.
import { writeFileSync } from 'node:fs';

const sel = (extra = '') => `{target=~"$target"${extra}}`;
const panels = [
  ['row', 'Actions'],
  ['timeseries', 'Actions by policy and outcome', [[`sum by (policy, outcome) (increase(pg_reaper_actions_total${sel(', policy=~"$policy"')}[$__rate_interval]))`, '{{policy}} {{outcome}}']], 'short', 12],
  ['timeseries', 'Actions by reason and outcome', [[`sum by (reason, outcome) (increase(pg_reaper_actions_total${sel(', policy=~"$policy"')}[$__rate_interval]))`, '{{reason}} {{outcome}}']], 'short', 12],
  ['timeseries', 'Matched sessions by policy and reason (last run)', [[`sum by (policy, reason) (pg_reaper_matched_sessions${sel(', policy=~"$policy"')})`, '{{policy}} {{reason}}']], 'short', 12],
  ['row', 'Safety'],
  ['timeseries', 'Budget exhausted (1: actions held back as skipped_budget)', [[`max by (target, policy) (pg_reaper_budget_exhausted${sel()})`, '{{target}} {{policy}}']], 'short', 8],
  ['timeseries', 'Decisions skipped for budget', [[`sum by (target, policy) (increase(pg_reaper_actions_total${sel(', outcome="skipped_budget"')}[$__rate_interval]))`, '{{target}} {{policy}}']], 'short', 8],
  ['timeseries', 'Protected sessions (backups, maintenance)', [[`sum by (target, kind) (pg_reaper_sessions_protected${sel()})`, '{{target}} {{kind}}']], 'short', 8],
  ['row', 'Sessions'],
  ['timeseries', 'Client sessions by state', [[`sum by (state) (pg_reaper_sessions${sel()})`, '{{state}}']], 'short', 8],
  ['timeseries', 'Oldest session per state', [[`max by (state) (pg_reaper_max_state_age_seconds${sel()})`, '{{state}}']], 's', 8],
  ['timeseries', 'Sessions waiting on a lock', [[`sum by (target) (pg_reaper_blocked_sessions${sel()})`, '{{target}}']], 'short', 8],
  ['timeseries', 'Connection use (client connections / client slots)', [[`max by (target) (pg_reaper_connections${sel()}) / max by (target) (pg_reaper_max_connections${sel()})`, '{{target}}']], 'percentunit', 12],
  ['timeseries', 'Runs by result', [[`sum by (result) (increase(pg_reaper_runs_total${sel()}[$__rate_interval]))`, '{{result}}']], 'short', 12],
  ['timeseries', 'Oldest xmin horizon by holder (transactions: vacuum cannot remove rows younger than it)', [[`max by (target, holder) (pg_reaper_xmin_age${sel()})`, '{{target}} {{holder}}']], 'short', 24],
  ['row', 'Health'],
  ['timeseries', 'Run duration p50 / p95', [
    [`histogram_quantile(0.5, sum by (le, target) (rate(pg_reaper_run_duration_seconds_bucket${sel()}[$__rate_interval])))`, 'p50 {{target}}'],
    [`histogram_quantile(0.95, sum by (le, target) (rate(pg_reaper_run_duration_seconds_bucket${sel()}[$__rate_interval])))`, 'p95 {{target}}'],
  ], 's', 8],
  ['stat', 'Target up', [[`min by (target) (pg_reaper_target_up${sel()})`, '{{target}}']], 'short', 4],
  ['stat', 'Leader per target (replicas acting)', [[`sum by (target) (pg_reaper_leader${sel()})`, '{{target}}']], 'short', 4],
  ['stat', 'Config reload successful', [['min by (instance) (pg_reaper_config_last_reload_successful)', '{{instance}}']], 'short', 4],
  ['table', 'What the reaper can do per server', [[`max by (target, server_version, superuser, read_all_stats, signal_backend) (pg_reaper_target_info${sel()})`, '']], 'short', 4],
  ['row', 'Audit table'],
  ['timeseries', 'Audit rows by result (written, dropped, failed)', [['sum by (result) (increase(pg_reaper_audit_rows_total[$__rate_interval]))', '{{result}}']], 'short', 12],
  ['timeseries', 'Audit rows waiting to be written', [['max by (instance) (pg_reaper_audit_queue_rows)', '{{instance}}']], 'short', 8],
  ['stat', 'Audit table writable', [['min by (instance) (pg_reaper_audit_up)', '{{instance}}']], 'short', 4],
];

let id = 1;
let y = 0;
let x = 0;
const out = [];
for (const [type, title, targets, unit, w] of panels) {
  if (type === 'row') {
    if (x) y += 8;
    x = 0;
    out.push({ id: id++, type: 'row', title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y: y++ }, panels: [] });
    continue;
  }
  if (x + w > 24) {
    x = 0;
    y += 8;
  }
  out.push({
    id: id++,
    type,
    title,
    datasource: { type: 'prometheus', uid: '${datasource}' },
    gridPos: { h: 8, w, x, y },
    fieldConfig: { defaults: { unit }, overrides: [] },
    options: type === 'table' ? { showHeader: true } : {},
    targets: targets.map(([expr, legendFormat], i) => ({ refId: String.fromCharCode(65 + i), datasource: { type: 'prometheus', uid: '${datasource}' }, expr, legendFormat, ...(type === 'table' ? { format: 'table', instant: true } : {}) })),
  });
  x += w;
}

const dashboard = {
  title: 'pg-reaper',
  uid: 'pg-reaper',
  description: 'PostgreSQL session reaper: actions, budgets and protected sessions, sessions, runs, leadership, audit table. Generated by npm run deploy:dashboard.',
  tags: ['postgresql', 'pg-reaper'],
  schemaVersion: 39,
  version: 1,
  editable: true,
  time: { from: 'now-6h', to: 'now' },
  refresh: '30s',
  templating: {
    list: [
      { name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', current: {}, hide: 0 },
      { name: 'target', label: 'Target', type: 'query', datasource: { type: 'prometheus', uid: '${datasource}' }, query: { query: 'label_values(pg_reaper_target_up, target)', refId: 'target' }, definition: 'label_values(pg_reaper_target_up, target)', includeAll: true, multi: true, allValue: '.*', refresh: 2, current: {}, hide: 0 },
      { name: 'policy', label: 'Policy', type: 'query', datasource: { type: 'prometheus', uid: '${datasource}' }, query: { query: 'label_values(pg_reaper_actions_total{target=~"$target"}, policy)', refId: 'policy' }, definition: 'label_values(pg_reaper_actions_total{target=~"$target"}, policy)', includeAll: true, multi: true, allValue: '.*', refresh: 2, current: {}, hide: 0 },
    ],
  },
  annotations: { list: [] },
  panels: out,
};
writeFileSync(new URL('../deploy/grafana/pg-reaper.json', import.meta.url), JSON.stringify(dashboard, null, 2) + '\n');
process.stdout.write('wrote deploy/grafana/pg-reaper.json\n');
