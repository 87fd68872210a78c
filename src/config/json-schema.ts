import { z } from 'zod';
import type { OptionSpec } from '../reasons/reason.js';
import { REASON_TABLE } from '../reasons/table.js';
import { CANCEL_WITH, configSchema } from './schema.js';

// config.schema.json for editors (yaml-language-server): generated from the zod schema (keys,
// types, enums, required keys, limits), with what zod cannot say about inputs filled in here:
// durations, values from ${VAR}, defaults of the keys whose input zod transforms, and a
// description on every key in the README's words. `npm run schema` writes it; a test fails when
// the file is stale or a key has no description. Not loaded by the daemon.

export type Json = Record<string, unknown>;

const DURATION = { anyOf: [{ type: 'string', pattern: '^(\\d+(\\.\\d+)?(ms|s|m|h|d))+$|^\\d+(\\.\\d+)?$' }, { type: 'number', exclusiveMinimum: 0 }] };
const COUNT = { anyOf: [{ type: 'string', pattern: '^\\s*\\d+(\\.\\d+)?[kKMG]?\\s*$' }, { type: 'integer', minimum: 1 }] };
const ENV_REF = { type: 'string', pattern: '\\$\\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\\}' };

/** Keys whose input is a duration, with their default as written in YAML. */
const DURATIONS: Record<string, string | undefined> = {
  scheduleJitter: '0',
  'coordination.leaseTimeout': '30s',
  terminateTimeout: '5s',
  shutdownTimeout: '10s',
  'targets[].connectTimeout': '5s',
  'targets[].queryTimeout': '30s',
  ...Object.fromEntries(REASON_TABLE.filter((e) => e.value.kind === 'duration').map((e) => [`policies[].${e.key}`, undefined])),
  'policies[].terminateAfter': undefined,
  'budget.window': undefined,
};

/** Keys whose input is a count ("100k", "10M"). */
const COUNTS = new Set(REASON_TABLE.filter((e) => e.value.kind === 'count').map((e) => `policies[].${e.key}`));

/** Defaults that zod cannot show on the input side (the key's value is transformed). */
const DEFAULTS: Record<string, unknown> = {
  maxConcurrentRuns: 32,
  'coordination.lockKey': 79173604,
  dryRun: false,
  'http.port': 9188,
  'http.probes.requireAuth': true,
  logQueryText: false,
  exemptListeners: true,
  'protect.backups': true,
  'protect.maintenance': true,
  watchConfig: true,
  'policies[].dryRun': false,
  'audit.queueSize': 10000,
  ...Object.fromEntries(REASON_TABLE.flatMap((e) => Object.entries<OptionSpec>(e.options ?? {}).filter(([, o]) => o.kind === 'integer').map(([name, o]) => [`policies[].${name}`, (o as { default: number }).default]))),
};

export const DESCRIPTIONS: Record<string, string> = {
  schedule: 'Cron pattern (croner), 5 fields or 6 with seconds first. Every target also runs once at start; a trigger that finds the previous run of a target still going is skipped and counted as an overlap.',
  timezone: 'IANA time zone for the schedule (default: local).',
  scheduleJitter: 'Each target of a trigger starts at a random delay up to this, so many targets do not start in the same instant.',
  maxConcurrentRuns: 'Runs in flight across targets at most; a run waiting for a slot is not an overlap.',
  coordination: 'How several replicas share the work: one replica acts per target.',
  'coordination.mode': 'none: every replica acts; advisory-lock: only the holder of the target\'s advisory lock acts, the others stand by.',
  'coordination.lockKey': 'First key of the advisory locks (an int4; default FNV-1a of "pg-reaper").',
  'coordination.leaseTimeout': 'At least 6s: how soon the server ends the lock session of a holder whose host vanished (TCP keepalives on the lock connection); a holder reports pg_reaper_leader 1 only while its hold was confirmed within the keepalive time (at most this).',
  dryRun: 'Signal nothing anywhere: decisions are logged and counted as would_terminate / would_cancel. Wins over a policy\'s dryRun: false.',
  logLevel: 'fatal, error, warn, info, debug (adds why each session was not acted on) or trace (adds step timings).',
  logFormat: 'json (one object per line) or pretty (one readable line per action and run); default pretty on a terminal, else json.',
  applicationName: 'application_name of our connections. Sessions with this name are never reaped, from any replica: give every replica the same name and do not let applications use it.',
  http: 'Where /metrics, /livez and /readyz are served.',
  'http.host': 'Address to listen on; default 127.0.0.1 (this machine only). 0.0.0.0 or :: to be scraped from elsewhere (containers, Kubernetes), with webConfigFile for TLS and authentication.',
  'http.port': 'Port to listen on; 0 picks a free port, logged at start.',
  'http.webConfigFile': 'TLS and basic authentication, in the Prometheus exporter-toolkit web config format (tls_server_config, basic_auth_users with bcrypt hashes); reread when it or a file it names changes. Relative to the config file\'s directory.',
  'http.probes': 'Where the Kubernetes probes reach /livez and /readyz without credentials.',
  'http.probes.port': 'A plain-HTTP port of its own serving /livez, /healthz and /readyz only, without TLS or authentication (default: the probes are on http.port only).',
  'http.probes.host': 'Address of the probes port (default: http.host).',
  'http.probes.requireAuth': 'false: /livez, /healthz and /readyz on http.port answer without basic authentication (TLS still applies).',
  maxActionsPerRun: 'Per target and run, across policies: the oldest offenders go first, the rest are skipped_cap.',
  terminateTimeout: 'How long a run waits for terminated backends to exit (then: signalled).',
  shutdownTimeout: 'How long SIGTERM waits for runs in flight.',
  logQueryText: 'Add the query text (truncated by the server at track_activity_query_size) to action log lines. It can hold personal data.',
  exemptListeners: 'Spare sessions whose last statement was LISTEN from idle and connection_age.',
  protect: 'Sessions no policy acts on, whatever its thresholds; exempt adds more.',
  'protect.backups': 'Spare backup, dump and copy tools by their application_name (pg_dump, pg_dumpall, pg_restore, pg_basebackup, pgBackRest, barman, WAL-G, pgcopydb). A client can claim such a name: to narrow it, set false and exempt the names you use.',
  'protect.maintenance': 'Spare sessions running VACUUM, ANALYZE, CREATE INDEX CONCURRENTLY, REINDEX CONCURRENTLY, CLUSTER or REFRESH MATERIALIZED VIEW CONCURRENTLY (recognised on the server after leading whitespace and comments), and pg_repack\'s sessions.',
  budget: 'At most maxActions terminations and cancellations per window, on each target (a sliding window; dry runs use none); beyond it decisions are skipped_budget. off removes it. Kept in memory per replica: a restart or a failover starts it anew.',
  'budget.maxActions': 'Terminations and cancellations allowed per window.',
  'budget.window': 'The sliding window, measured on the server\'s clock.',
  watchConfig: 'Reload when the config file changes (a Kubernetes ConfigMap update, an editor saving it), as SIGHUP does: a file with any problem is rejected and the old config keeps running. false: only SIGHUP reloads.',
  exempt: 'Sessions no policy touches: any list that matches spares the session.',
  'selector.users': 'Role names: globs (* any run of characters, ? one character), whole string, case-sensitive.',
  'selector.databases': 'Database names: globs, whole string, case-sensitive.',
  'selector.applications': 'application_name values: globs, whole string, case-sensitive.',
  'selector.clientAddresses': 'IPv4 and IPv6 addresses and CIDRs, and "local" for Unix-socket sessions.',
  audit: 'Write every action of every run (each outcome, dry runs included) as one row to a PostgreSQL table: on a server of your choice (connectionString) or on one of the targets (target). Create the table with pg-reaper audit-init. Default: off.',
  'audit.connectionString': 'A libpq connection string (URL or keyword/value pairs) of the server that holds the audit table; or target instead.',
  'audit.target': 'The name of the target whose server holds the audit table (connected to as that target is, on a connection of its own); or connectionString instead.',
  'audit.table': 'SCHEMA.TABLE or TABLE, lowercase unquoted identifiers (schemas beginning with pg_ are reserved). Default reaper_audit.actions.',
  'audit.queueSize': 'Rows waiting to be written at most (default 10000): while the audit server is away they wait here; what does not fit is dropped and counted in pg_reaper_audit_rows_total{result="dropped"}.',
  targets: 'The servers to watch.',
  'targets[].name': 'Lowercase letters, digits, "_" or "-"; unique; the target label.',
  'targets[].connectionString': 'A libpq connection string: URL or keyword/value pairs (host, port, dbname, user, password, sslmode, sslrootcert, sslcert, sslkey, connect_timeout, application_name).',
  'targets[].host': 'Host name, address or Unix-socket directory (without connectionString).',
  'targets[].port': 'Port (without connectionString).',
  'targets[].user': 'Role to connect as (without connectionString).',
  'targets[].password': 'Password (or passwordFile).',
  'targets[].passwordFile': 'File holding the password, read at every connect; relative to the config file\'s directory.',
  'targets[].database': 'Database to connect to (without connectionString).',
  'targets[].ssl': 'TLS for the host/port form, as libpq\'s sslmode means it.',
  'targets[].ssl.mode': 'disable, allow, prefer (default), require, verify-ca or verify-full, as in libpq.',
  'targets[].ssl.rootCert': 'Root certificate file (with require: checked as verify-ca); relative to the config file\'s directory.',
  'targets[].ssl.cert': 'Client certificate file (with key).',
  'targets[].ssl.key': 'Client key file (with cert).',
  'targets[].schedule': 'This target\'s own cron pattern.',
  'targets[].timezone': 'This target\'s own time zone.',
  'targets[].connectTimeout': 'A server that does not answer costs one failed run of that target, never the others.',
  'targets[].queryTimeout': 'Each of our statements is cancelled by the server past this; the client gives up 2 s later.',
  'targets[].preparedStatements': 'Prepare the snapshot statement once per connection (the server then plans it once, not at every run). Turn off behind a pooler that does not keep them per client, such as PgBouncer in transaction or statement mode without max_prepared_statements (before 1.21, or set to 0).',
  policies: 'The rules, in file order: the first policy that has a session in scope and whose threshold it exceeds acts on it.',
  'policies[].name': 'Lowercase letters, digits, "_" or "-"; unique; the policy label.',
  'policies[].targets': 'Names of the targets it applies to (default: all).',
  ...Object.fromEntries(REASON_TABLE.map((e) => [`policies[].${e.key}`, e.description])),
  ...Object.fromEntries(REASON_TABLE.flatMap((e) => Object.entries<OptionSpec>(e.options ?? {}).map(([name, o]) => [`policies[].${name}`, o.description]))),
  'policies[].keepIdle': 'With maxIdle: keep the N most recently active idle sessions of each user, database and application.',
  'policies[].match': 'Sessions in scope: every non-empty list must match (default: everything).',
  'policies[].exempt': 'Sessions this policy spares: any list that matches.',
  'policies[].action': `terminate (pg_terminate_backend) or cancel (pg_cancel_backend: only with ${CANCEL_WITH}).`,
  'policies[].terminateAfter': 'With action cancel: terminate instead when the same query is still running this long after maxQueryDuration.',
  'policies[].when': 'Act only under connection pressure.',
  'policies[].when.connectionsAbove': 'Client connections above which the policy acts: "80%" of max_connections minus the reserved slots, or a number.',
  'policies[].dryRun': 'This policy only decides and logs.',
  'policies[].maxActionsPerRun': 'Per target and run, for this policy.',
  'policies[].budget': 'This policy\'s own budget on each target, beside the target\'s (no default): at most maxActions per window, or off.',
};

/** How to turn a zod schema's JSON Schema into one for editors: what zod cannot say about inputs. */
export interface SchemaSpec {
  /** Keys whose input is a duration: the default as written in YAML, and whether 0 is allowed. */
  durations: Record<string, { default?: string | undefined; zero?: boolean }>;
  /** Keys whose input zod transforms into something else: their whole schema. */
  replace: Record<string, Json>;
  /** Keys whose schema is built here from zod's: `annotate` describes the keys inside it. */
  custom?: (node: Json, path: string, annotate: (node: Json, path: string) => void) => Json | undefined;
  /** Defaults that zod cannot show on the input side. */
  defaults: Record<string, unknown>;
  descriptions: Record<string, string>;
  /** Objects whose keys are described under another name ("policies[].match" → "selector"). */
  aliases: Record<string, string>;
  /** A scalar that is not a string may also be written as "${VAR}". */
  envRefs: boolean;
}

function annotate(node: Json, path: string, spec: SchemaSpec, missing: string[]): void {
  const props = node.properties as Record<string, Json> | undefined;
  if (props) {
    const base = spec.aliases[path] ?? path;
    for (const [key, child] of Object.entries(props)) props[key] = describe(child, base ? `${base}.${key}` : key, spec, missing);
  }
  const items = node.items as Json | undefined;
  if (items) annotate(items, `${path}[]`, spec, missing);
}

function describe(node: Json, path: string, spec: SchemaSpec, missing: string[]): Json {
  const description = spec.descriptions[path];
  if (description === undefined) missing.push(path);
  const custom = spec.custom?.(node, path, (n, p) => annotate(n, p, spec, missing));
  if (custom) return { description, ...custom };
  let out: Json = node;
  const duration = spec.durations[path];
  if (duration) {
    const anyOf = duration.zero ? [DURATION.anyOf[0], { type: 'number', minimum: 0 }] : DURATION.anyOf;
    out = { anyOf, ...(duration.default !== undefined ? { default: duration.default } : {}) };
  } else if (path in spec.replace) {
    out = spec.replace[path]!;
  } else if (path in spec.defaults) {
    out = { ...node, default: spec.defaults[path] };
  }
  annotate(out, path, spec, missing);
  const scalar = out.type === 'integer' || out.type === 'number' || out.type === 'boolean' || (out.anyOf !== undefined && !out.properties);
  if (scalar && spec.envRefs) {
    const { default: def, ...rest } = out;
    out = { anyOf: [...((rest.anyOf as Json[] | undefined) ?? [rest]), ENV_REF], ...(def !== undefined ? { default: def } : {}) };
  }
  return { description, ...out };
}

/** A JSON Schema for editors from a zod schema, and the keys that have no description (should be none). */
export function editorJsonSchema(zodSchema: z.ZodType, spec: SchemaSpec, title: string, description: string): { schema: Json; undocumented: string[] } {
  const raw = z.toJSONSchema(zodSchema, { io: 'input', unrepresentable: 'any' }) as Json;
  const missing: string[] = [];
  annotate(raw, '', spec, missing);
  const schema = { $schema: raw.$schema, title, description, ...Object.fromEntries(Object.entries(raw).filter(([k]) => k !== '$schema')) };
  return { schema, undocumented: [...new Set(missing)] };
}

const SELECTOR = 'selector';
const BUDGET = 'budget';
const BUDGETS = new Set(['budget', 'policies[].budget']);

const CONFIG_SPEC: SchemaSpec = {
  durations: Object.fromEntries(Object.entries(DURATIONS).map(([k, d]) => [k, { default: d, zero: k === 'scheduleJitter' }])),
  replace: {
    'policies[].when.connectionsAbove': { anyOf: [{ type: 'string', pattern: '^\\s*\\d+(\\.\\d+)?\\s*%\\s*$' }, { type: 'integer', minimum: 1 }] },
    ...Object.fromEntries([...COUNTS].map((path) => [path, COUNT])),
  },
  custom: (node, path, annotateKeys) => {
    if (!BUDGETS.has(path)) return undefined;
    // { maxActions, window }, or off
    const rule = ((node.anyOf as Json[] | undefined) ?? []).find((x) => x.type === 'object') ?? {};
    annotateKeys(rule, path);
    return { anyOf: [rule, { const: 'off' }, { const: false }], ...(path === 'budget' ? { default: { maxActions: 100, window: '10m' } } : {}) };
  },
  defaults: DEFAULTS,
  descriptions: DESCRIPTIONS,
  aliases: { exempt: SELECTOR, 'policies[].match': SELECTOR, 'policies[].exempt': SELECTOR, budget: BUDGET, 'policies[].budget': BUDGET },
  envRefs: true,
};

/** The JSON Schema of the config file, and the keys that have no description (should be none). */
export function configJsonSchema(): { schema: Json; undocumented: string[] } {
  return editorJsonSchema(configSchema, CONFIG_SPEC, 'pg-reaper configuration', 'The YAML config of pg-reaper. Generated by npm run schema from src/config/schema.ts; see the README for every key.');
}

export const renderJsonSchema = (): string => JSON.stringify(configJsonSchema().schema, null, 2) + '\n';
