import { Cron } from 'croner';
import { z } from 'zod';
import { REASON_TABLE, THRESHOLD_KEYS, type OptionKey, type ThresholdKey } from '../reasons/table.js';
import type { OptionSpec, ThresholdValue } from '../reasons/reason.js';
import { redact } from '../util/errors.js';
import { fnv1a32 } from '../util/fnv1a.js';
import { addressError } from './address.js';
import { DEFAULT_AUDIT_TABLE, parseTableName } from './table-name.js';
import { hostError, parseConnInfo, SSL_MODES } from './conninfo.js';
import { formatCount, parseCount } from './count.js';
import { parseDuration } from './duration.js';

// The config file's schema: every key, its default, and the rules that span keys. Downstream
// code takes `Config`, which only `validateConfig` can produce.

const NAME = /^[a-z0-9_-]+$/;
const name = z.string().regex(NAME, { error: (iss) => `expected lowercase letters, digits, "_" or "-", got ${show(iss.input)}` });

const duration = (hint: string) =>
  z.any().transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined || ms <= 0) {
      ctx.addIssue({ code: 'custom', message: `expected a duration like "${hint}" (ms, s, m, h, d, or a number of seconds) greater than 0, got ${show(value)}` });
      return z.NEVER;
    }
    return ms;
  });

// The same, where 0 is allowed ("no jitter").
const durationOrZero = (hint: string) =>
  z.any().transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined || ms < 0) {
      ctx.addIssue({ code: 'custom', message: `expected a duration like "${hint}" (ms, s, m, h, d, or a number of seconds), or 0, got ${show(value)}` });
      return z.NEVER;
    }
    return ms;
  });

const cronPattern = z.string().superRefine((pattern, ctx) => {
  const error = scheduleError(pattern);
  if (error) ctx.addIssue({ code: 'custom', message: error });
});
const timeZone = z.string().superRefine((zone, ctx) => {
  if (!isTimeZone(zone)) ctx.addIssue({ code: 'custom', message: `expected an IANA time zone like "UTC" or "Europe/Berlin", got ${show(zone)}` });
});

// Values from ${VAR} arrive as strings: accept "5432" and "true" where a number or boolean belongs.
const integer = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.preprocess((v) => (typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : v), z.number().int().min(min).max(max));
const boolean = z.preprocess((v) => (v === 'true' ? true : v === 'false' ? false : v), z.boolean());

const globList = z.array(z.string().min(1)).default([]);
const addressList = z
  .array(
    z.string().superRefine((entry, ctx) => {
      const error = addressError(entry);
      if (error) ctx.addIssue({ code: 'custom', message: error });
    }),
  )
  .default([]);

const selector = z.strictObject({
  users: globList,
  databases: globList,
  applications: globList,
  clientAddresses: addressList,
});
const emptySelector = () => ({ users: [], databases: [], applications: [], clientAddresses: [] });

const ssl = z.strictObject({
  mode: z.enum(SSL_MODES).default('prefer'),
  rootCert: z.string().min(1).optional(),
  cert: z.string().min(1).optional(),
  key: z.string().min(1).optional(),
});

const target = z
  .strictObject({
    name,
    connectionString: z.string().min(1).optional(),
    host: z.string().min(1).optional(),
    port: integer(1, 65535).optional(),
    user: z.string().min(1).optional(),
    password: z.string().optional(),
    passwordFile: z.string().min(1).optional(),
    database: z.string().min(1).optional(),
    ssl: ssl.optional(),
    schedule: cronPattern.optional(),
    timezone: timeZone.optional(),
    connectTimeout: duration('5s').default(5000),
    queryTimeout: duration('30s').default(30_000),
    preparedStatements: boolean.default(true),
  })
  .superRefine((t, ctx) => {
    if (t.connectionString === undefined && t.host === undefined) {
      ctx.addIssue({ code: 'custom', message: 'expected either connectionString or host (with port, user, database)' });
    }
    if (t.connectionString !== undefined) {
      for (const key of ['host', 'port', 'user', 'database'] as const) {
        if (t[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: `"${key}" cannot be combined with connectionString; put it in the connection string or drop connectionString` });
      }
      const parsed = parseConnInfo(t.connectionString);
      if (!parsed.ok) ctx.addIssue({ code: 'custom', path: ['connectionString'], message: parsed.error });
      else {
        const { sslmode, sslrootcert, sslcert, sslkey } = parsed.info;
        if (t.ssl !== undefined && (sslmode || sslrootcert || sslcert || sslkey)) {
          ctx.addIssue({ code: 'custom', path: ['ssl'], message: 'the connection string already sets sslmode/sslrootcert/sslcert/sslkey: put TLS settings in one place' });
        }
        if (!sslcert !== !sslkey) ctx.addIssue({ code: 'custom', path: ['connectionString'], message: 'sslcert and sslkey go together: give both or neither' });
        if (parsed.info.password !== undefined) {
          for (const key of ['password', 'passwordFile'] as const) {
            if (t[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: `the connection string already holds a password: give it in one place (drop ${key}, or the password from the connection string)` });
          }
        }
      }
    }
    if (t.host !== undefined) {
      const error = hostError(t.host);
      if (error) ctx.addIssue({ code: 'custom', path: ['host'], message: error.replace(' (IPv6 in brackets in a URL: [::1])', '') });
    }
    if (t.ssl && !t.ssl.cert !== !t.ssl.key) ctx.addIssue({ code: 'custom', path: ['ssl'], message: 'cert and key go together: give both or neither' });
    if (t.password !== undefined && t.passwordFile !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['passwordFile'], message: 'expected password or passwordFile, not both' });
    }
  });

// A whole number from 1 to max, written as 5000, "100k" or "10M".
const count = (hint: string, max: number) =>
  z.any().transform((value, ctx) => {
    const n = parseCount(value);
    if (n === undefined || n < 1 || n > max) {
      ctx.addIssue({ code: 'custom', message: `expected a count like "${hint}" (a whole number, or with k, M or G for thousands, millions, billions) from 1 to ${formatCount(max)}, got ${show(value)}` });
      return z.NEVER;
    }
    return n;
  });

// A policy's thresholds, one key per reason of the table (src/reasons/table.ts).
const thresholdValue = (v: ThresholdValue) => (v.kind === 'duration' ? duration(v.example) : count(v.example, v.max));
const thresholds = Object.fromEntries(REASON_TABLE.map((e) => [e.key, thresholdValue(e.value).optional()])) as {
  [K in ThresholdKey]: z.ZodOptional<ReturnType<typeof thresholdValue>>;
};
const CANCELLABLE = REASON_TABLE.filter((e) => e.cancellable).map((e) => e.key);
/** The thresholds `action: cancel` works with, in words. */
export const CANCEL_WITH = CANCELLABLE.length === 1 ? `${CANCELLABLE[0]} alone` : `${CANCELLABLE.slice(0, -1).join(', ')} or ${CANCELLABLE.at(-1)}, and no other threshold`;

// The keys that refine a reason (its entry's options), each only beside the reason's key.
const optionValue = (o: OptionSpec) => (o.kind === 'integer' ? integer(o.min) : z.array(z.enum(o.values)).min(1));
const OPTIONS = REASON_TABLE.flatMap((e) => Object.entries<OptionSpec>(e.options ?? {}).map(([name, spec]) => ({ name, spec, key: e.key })));
const options = Object.fromEntries(OPTIONS.map((o) => [o.name, optionValue(o.spec).optional()])) as unknown as { [K in OptionKey]: z.ZodOptional<z.ZodType<unknown>> };

// "80%" of the client slots, or an absolute number of client connections.
const connectionsAbove = z.any().transform((value, ctx) => {
  if (typeof value === 'string' && /^\s*\d+(?:\.\d+)?\s*%\s*$/.test(value)) {
    const percent = Number(value.trim().slice(0, -1));
    if (percent >= 1 && percent <= 100) return { percent };
  } else {
    const n = typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
    if (typeof n === 'number' && Number.isInteger(n) && n >= 1) return { count: n };
  }
  ctx.addIssue({ code: 'custom', message: `expected a percentage of the client slots from "1%" to "100%", or a whole number of connections >= 1, got ${show(value)}` });
  return z.NEVER;
});

// budget: { maxActions, window }, or off (also false, which is how YAML 1.1 reads `off`): null.
const budgetRule = z.strictObject(
  { maxActions: integer(1), window: duration('10m') },
  { error: (iss) => (iss.code === 'invalid_type' ? `expected { maxActions: N, window: DURATION } or off, got ${show(iss.input)}` : undefined) },
);
const budget = z.preprocess((v) => (v === 'off' || v === false ? null : v), budgetRule.nullable());
export const DEFAULT_BUDGET = { maxActions: 100, window: 600_000 };

const policy = z.strictObject({
  name,
  targets: z.array(name).min(1).optional(),
  ...thresholds,
  ...options,
  keepIdle: integer(1).optional(),
  match: selector.default(emptySelector),
  exempt: selector.default(emptySelector),
  action: z.enum(['terminate', 'cancel']).default('terminate'),
  terminateAfter: duration('30s').optional(),
  when: z.strictObject({ connectionsAbove }).optional(),
  dryRun: boolean.default(false),
  maxActionsPerRun: integer(1).optional(),
  budget: budget.optional(),
});

/** The default coordination.lockKey: fnv1a32("pg-reaper") = 79173604. */
export const DEFAULT_LOCK_KEY = fnv1a32('pg-reaper');

const int4 = z.preprocess((v) => (typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v), z.number().int().min(-2147483648).max(2147483647));

const coordination = z.strictObject({
  mode: z.enum(['none', 'advisory-lock']).default('none'),
  lockKey: int4.default(DEFAULT_LOCK_KEY),
  leaseTimeout: duration('30s')
    .default(30_000)
    .refine((ms) => ms >= 6000, { message: 'expected a leaseTimeout of at least 6s (keepalive probes are counted in whole seconds)' }),
});

// Where every action is recorded: a server of the operator's choice, or one of the targets.
const audit = z
  .strictObject({
    connectionString: z.string().min(1).optional(),
    target: name.optional(),
    table: z
      .string()
      .superRefine((table, ctx) => {
        const parsed = parseTableName(table);
        if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.error });
      })
      .default(DEFAULT_AUDIT_TABLE),
    queueSize: integer(1, 1_000_000).default(10_000),
  })
  .superRefine((a, ctx) => {
    if (a.connectionString === undefined && a.target === undefined) {
      ctx.addIssue({ code: 'custom', message: 'expected connectionString (a server of your choice) or target (the name of one of the targets)' });
    }
    if (a.connectionString !== undefined && a.target !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['target'], message: 'expected connectionString or target, not both' });
    }
    if (a.connectionString !== undefined) {
      const parsed = parseConnInfo(a.connectionString);
      if (!parsed.ok) ctx.addIssue({ code: 'custom', path: ['connectionString'], message: parsed.error });
      else if (!parsed.info.sslcert !== !parsed.info.sslkey) ctx.addIssue({ code: 'custom', path: ['connectionString'], message: 'sslcert and sslkey go together: give both or neither' });
    }
  });

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const configSchema = z
  .strictObject({
    schedule: cronPattern.default('*/30 * * * * *'),
    timezone: timeZone.optional(),
    scheduleJitter: durationOrZero('2s').default(0),
    maxConcurrentRuns: integer(1).default(32),
    coordination: coordination.default({ mode: 'none', lockKey: DEFAULT_LOCK_KEY, leaseTimeout: 30_000 }),
    dryRun: boolean.default(false),
    logLevel: z.enum(LOG_LEVELS).default('info'),
    logFormat: z.enum(['json', 'pretty']).optional(),
    applicationName: z.string().min(1).max(63).default('pg-reaper'),
    http: z
      .strictObject({
        host: z.string().min(1).default('127.0.0.1'),
        port: integer(0, 65535).default(9188),
        webConfigFile: z.string().min(1).optional(),
        probes: z
          .strictObject({ port: integer(0, 65535).optional(), host: z.string().min(1).optional(), requireAuth: boolean.default(true) })
          .default({ requireAuth: true }),
      })
      .superRefine((h, ctx) => {
        if (h.probes.port !== undefined && h.probes.port !== 0 && h.probes.port === h.port && (h.probes.host ?? h.host) === h.host) {
          ctx.addIssue({ code: 'custom', path: ['probes', 'port'], message: `the probes need a port of their own, not http.port ${h.port}; or leave probes.port out to serve them on http.port` });
        }
      })
      .default({ host: '127.0.0.1', port: 9188, probes: { requireAuth: true } }),
    maxActionsPerRun: integer(1).optional(),
    terminateTimeout: duration('5s').default(5000),
    shutdownTimeout: duration('10s').default(10_000),
    logQueryText: boolean.default(false),
    exemptListeners: boolean.default(true),
    protect: z.strictObject({ backups: boolean.default(true), maintenance: boolean.default(true) }).default({ backups: true, maintenance: true }),
    budget: budget.default(DEFAULT_BUDGET),
    watchConfig: boolean.default(true),
    exempt: selector.default(emptySelector),
    audit: audit.optional(),
    targets: z.array(target).min(1),
    policies: z.array(policy).min(1),
  })
  .brand<'ValidatedConfig'>();

export type Config = z.output<typeof configSchema>;
export type TargetConfig = Config['targets'][number];
export type PolicyConfig = Config['policies'][number];
export type Selector = z.output<typeof selector>;
/** A budget in force: at most maxActions terminations and cancellations per window (ms); null: off. */
export type Budget = z.output<typeof budgetRule>;

export interface RuleIssue {
  path: (string | number)[];
  message: string;
}

// Rules that span keys. They read the raw input defensively so that they are reported together
// with every other problem, not only once the rest of the file is valid.
export function crossKeyIssues(raw: unknown): RuleIssue[] {
  const issues: RuleIssue[] = [];
  const root = record(raw);
  const targets = list(root.targets).map(record);
  const policies = list(root.policies).map(record);
  const targetNames = targets.map((t) => t.name).filter((n): n is string => typeof n === 'string');
  for (const [kind, items] of [['targets', targets], ['policies', policies]] as const) {
    const names = items.map((i) => i.name);
    names.forEach((n, i) => {
      if (typeof n === 'string' && names.indexOf(n) < i) issues.push({ path: [kind, i, 'name'], message: `duplicate ${kind === 'targets' ? 'target' : 'policy'} name "${n}"; names must be unique` });
    });
  }
  const ourName = typeof root.applicationName === 'string' ? root.applicationName : 'pg-reaper';
  const audit = record(root.audit);
  const connectionStrings: [(string | number)[], unknown][] = [...targets.map((t, i): [(string | number)[], unknown] => [['targets', i, 'connectionString'], t.connectionString]), [['audit', 'connectionString'], audit.connectionString]];
  connectionStrings.forEach(([path, connectionString]) => {
    if (typeof connectionString !== 'string') return;
    const parsed = parseConnInfo(connectionString);
    if (parsed.ok && parsed.info.applicationName !== undefined && parsed.info.applicationName !== ourName) {
      issues.push({
        path,
        message: `application_name "${parsed.info.applicationName}" differs from applicationName "${ourName}": every connection of the reaper carries applicationName, which is what keeps replicas from reaping each other; drop application_name or set applicationName`,
      });
    }
  });
  if (typeof audit.target === 'string' && !targetNames.includes(audit.target)) {
    issues.push({ path: ['audit', 'target'], message: `unknown target "${audit.target}"; defined targets: ${targetNames.join(', ') || '(none)'}` });
  }
  policies.forEach((p, i) => {
    list(p.targets).forEach((t, j) => {
      if (typeof t === 'string' && !targetNames.includes(t)) {
        issues.push({ path: ['policies', i, 'targets', j], message: `unknown target "${t}"; defined targets: ${targetNames.join(', ') || '(none)'}` });
      }
    });
    const thresholds = THRESHOLD_KEYS.filter((k) => p[k] !== undefined && p[k] !== null);
    if (thresholds.length === 0) {
      issues.push({ path: ['policies', i], message: `a policy needs at least one threshold: ${THRESHOLD_KEYS.join(', ')}` });
    }
    if (p.keepIdle !== undefined && p.keepIdle !== null && (p.maxIdle === undefined || p.maxIdle === null)) {
      issues.push({ path: ['policies', i, 'keepIdle'], message: 'keepIdle only works with maxIdle: it spares the most recently active of the idle sessions that maxIdle would terminate' });
    }
    if (p.terminateAfter !== undefined && p.terminateAfter !== null && p.action !== 'cancel') {
      issues.push({ path: ['policies', i, 'terminateAfter'], message: 'terminateAfter only works with action "cancel": it terminates a query that outlived its cancel' });
    } else if (p.terminateAfter !== undefined && p.terminateAfter !== null && (p.maxQueryDuration === undefined || p.maxQueryDuration === null)) {
      issues.push({ path: ['policies', i, 'terminateAfter'], message: 'terminateAfter only works with maxQueryDuration: it terminates a query still running terminateAfter past maxQueryDuration, after its cancel; add maxQueryDuration or remove terminateAfter' });
    }
    for (const o of OPTIONS) {
      if (p[o.name] !== undefined && p[o.name] !== null && (p[o.key] === undefined || p[o.key] === null)) {
        issues.push({ path: ['policies', i, o.name], message: `${o.name} only works with ${o.key}: it refines which sessions ${o.key} acts on` });
      }
    }
    if (p.action === 'cancel' && thresholds.some((k) => !CANCELLABLE.includes(k))) {
      issues.push({
        path: ['policies', i, 'action'],
        message: `action "cancel" only works with ${CANCEL_WITH} (cancelling an idle session does nothing); use action "terminate" or a separate policy`,
      });
    }
  });
  return issues;
}

function record(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function list(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

export function scheduleError(pattern: string): string | undefined {
  try {
    new Cron(pattern, { paused: true, mode: '5-or-6-parts' }).stop();
    return undefined;
  } catch (err) {
    return `expected a cron pattern with 5 or 6 fields like "*/30 * * * * *" (${(err as Error).message}), got ${show(pattern)}`;
  }
}

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return redact(JSON.stringify(value));
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}
