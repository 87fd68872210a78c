import { isIP } from 'node:net';
import { z } from 'zod';
import { formatDuration, parseDuration } from '../config/duration.js';
import { show } from '../config/schema.js';
import type { Session } from '../db/session.js';
import { MAINTENANCE } from '../plan/protect.js';
import { LOCK_MODES } from '../reasons/lock-wait.js';

// The one written form of a session, shared by snapshot files and policy tests: what the planner
// reads of a session, with ages in seconds (or durations) before the snapshot's clock instead of
// server timestamps. This module alone maps it to and from the planner's Session. A field that a
// new rule needs is one entry here: in PLAIN when it is copied as it is, else beside the ages.

/** Copied as they are; `absent` is the Session value when the format leaves the field out (and a value equal to it is not written). */
const PLAIN = {
  user: { schema: z.string(), absent: '', description: 'Role name (usename); default "".' },
  database: { schema: z.string(), absent: '', description: 'Database name (datname); default "".' },
  application: { schema: z.string(), absent: '', description: 'application_name; default "".' },
  superuser: { schema: z.boolean(), absent: false, description: "The session's role is a superuser: a reaper that is not superuser may not signal it (denied). Default false." },
  listener: { schema: z.boolean(), absent: false, description: 'Its last statement was LISTEN: exemptListeners spares it from idle and connection_age. Default false.' },
  maintenance: { schema: z.enum(MAINTENANCE), absent: null, description: `The maintenance it is running, as the server recognises it (${MAINTENANCE.join(', ')}): protect.maintenance spares it. Default none.` },
  waitMode: { schema: z.enum(LOCK_MODES), absent: null, description: `With waitingOn: the lock mode it waits for (${LOCK_MODES.join(', ')}), for maxLockWait's lockModes. Default none.` },
  xidAge: { schema: z.number().int().min(0), absent: null, description: 'age(backend_xid): how many transactions old its own transaction id is (maxXminAge). Default none: it has no transaction id.' },
  xminAge: { schema: z.number().int().min(0), absent: null, description: 'age(backend_xmin): how many transactions old its snapshot is (maxXminAge). Default none: it holds no snapshot.' },
  olderTransactionRuns: {
    schema: z.boolean(),
    absent: false,
    description: "Another running transaction (another session's transaction id, a prepared transaction) is as old as its snapshot: the snapshot is old because of that one, and maxXminAge does not count it. Default false.",
  },
  queryId: { schema: z.string().regex(/^-?\d+$/), absent: null, description: 'pg_stat_activity.query_id (14+, when the server computes it) as a decimal string: the audit table records it. Default none.' },
  query: { schema: z.string(), absent: undefined, description: 'Query text (snapshot --with-query), shown in action lines only with logQueryText.' },
} as const satisfies { [K in keyof Session]?: { schema: z.ZodType<NonNullable<Session[K]>>; absent: Session[K]; description: string } };

type PlainKey = keyof typeof PLAIN;
const PLAIN_KEYS = Object.keys(PLAIN) as PlainKey[];

/** The states of pg_stat_activity, spelled as it spells them. */
export const STATES = ['active', 'idle', 'idle in transaction', 'idle in transaction (aborted)', 'fastpath function call', 'disabled'] as const;

const AGES = ['stateAge', 'queryAge', 'xactAge', 'backendAge', 'waitAge'] as const;
type AgeKey = (typeof AGES)[number];

/** Descriptions of every field for the JSON Schema: the plain ones' and these. */
export const SESSION_DESCRIPTIONS: Record<string, string> = {
  pid: 'Process id of the backend: required, unique within a test.',
  ...Object.fromEntries(PLAIN_KEYS.map((k) => [k, PLAIN[k].description])),
  clientAddr: 'Client IP address, or "local" for a Unix-socket session; absent: unknown (matches no clientAddresses entry).',
  visible: 'false: a session the reaper\'s role cannot see (no pg_read_all_stats): it has no state or ages, counts as a connection and is never judged. Default true.',
  state: 'As pg_stat_activity spells it: active, idle, idle in transaction, idle in transaction (aborted), fastpath function call, disabled. Required unless visible is false.',
  stateAge: 'Time in the current state (now - state_change); default 0.',
  queryAge: 'Time since the current or last query started (now - query_start); absent: NULL.',
  xactAge: 'Time since the transaction started (now - xact_start); absent: NULL (no transaction).',
  backendAge: 'Time since the connection started (now - backend_start); default the largest of the other ages.',
  waitingOn: 'Waiting on a lock: the pids that block it (pg_blocking_pids; may be empty when none is a client session; 0 is a prepared transaction, as pg_blocking_pids reports one).',
  waitAge: 'With waitingOn: how long it has waited; default stateAge.',
  canSignal: 'The reaper\'s role may signal it; default true unless the session is superuser and the reaper is not (reaperSuperuser).',
};

/** Ages: a duration or a number of seconds, 0 allowed. */
const age = z.any().transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === undefined || ms < 0) {
    ctx.addIssue({ code: 'custom', message: `expected an age like "5m" or "90s" (ms, s, m, h, d, or a number of seconds), 0 or more, got ${show(value)}` });
    return z.NEVER;
  }
  return ms;
});

export const pid = z.number().int().min(1).max(2147483647);
/** A lock's holder as pg_blocking_pids names it: a pid, or 0 for a prepared transaction. */
const blocker = z.number().int().min(0).max(2147483647);

const clientAddr = z.string().superRefine((value, ctx) => {
  if (value !== 'local' && isIP(value) === 0) ctx.addIssue({ code: 'custom', message: `expected an IP address, or "local" for a Unix-socket session, got ${show(value)}` });
});

const plainShape = Object.fromEntries(PLAIN_KEYS.map((k) => [k, PLAIN[k].schema.optional()])) as { [K in PlainKey]: z.ZodOptional<(typeof PLAIN)[K]['schema']> };

// What a session that the reaper cannot see has not: its state, ages and the rest are hidden.
const HIDDEN = ['state', ...AGES, 'waitingOn', 'waitMode', 'clientAddr', 'listener', 'maintenance', 'query'] as const;

export const sessionSchema = z
  .strictObject({
    pid,
    ...plainShape,
    clientAddr: clientAddr.optional(),
    visible: z.boolean().optional(),
    state: z.enum(STATES).optional(),
    stateAge: age.optional(),
    queryAge: age.optional(),
    xactAge: age.optional(),
    backendAge: age.optional(),
    waitingOn: z.array(blocker).optional(),
    waitAge: age.optional(),
    canSignal: z.boolean().optional(),
  })
  .superRefine((s, ctx) => {
    if (s.visible === false) {
      for (const key of HIDDEN) {
        if (s[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: `a session the reaper cannot see (visible: false) has no ${key}: its role hides it` });
      }
      return;
    }
    if (s.state === undefined) ctx.addIssue({ code: 'custom', path: ['state'], message: `required: the session's state (${STATES.map((x) => JSON.stringify(x)).join(', ')}), or visible: false for a session the reaper cannot see` });
    if (s.waitAge !== undefined && s.waitingOn === undefined) ctx.addIssue({ code: 'custom', path: ['waitAge'], message: 'waitAge goes with waitingOn (the pids whose lock it waits for)' });
    if (s.waitingOn?.includes(s.pid)) ctx.addIssue({ code: 'custom', path: ['waitingOn'], message: `a session cannot wait on itself (pid ${s.pid})` });
    if (s.backendAge !== undefined) {
      for (const key of AGES) {
        const other = s[key];
        if (key !== 'backendAge' && other !== undefined && other > s.backendAge) {
          ctx.addIssue({ code: 'custom', path: ['backendAge'], message: `backendAge ${formatDuration(s.backendAge)} is shorter than ${key} ${formatDuration(other)}: a session connects before anything happens in it` });
        }
      }
    }
  });

export type SessionFormat = z.output<typeof sessionSchema>;
/** As written: for the snapshot file (ages in seconds). */
export type SessionRecord = z.input<typeof sessionSchema>;

/** What a test or snapshot says about the server and the reaper. */
export const serverFactsSchema = z.strictObject({
  clientSlots: z.number().int().min(1).optional(),
  version: z
    .union([z.string(), z.number()])
    .transform((v) => String(v))
    .refine((v) => /^\d+(\.\d+)?/.test(v), { message: 'expected a PostgreSQL version like "18" or "16.4"' })
    .optional(),
  reaperSuperuser: z.boolean().optional(),
});

export type ServerFactsInput = z.output<typeof serverFactsSchema>;
export type ServerFacts = Required<ServerFactsInput>;

/** The newest PostgreSQL major pg-reaper supports: a test's server unless it says otherwise. */
export const NEWEST_SUPPORTED_VERSION = '18';

export const SERVER_DEFAULTS: ServerFacts = { clientSlots: 100, version: NEWEST_SUPPORTED_VERSION, reaperSuperuser: false };

export const SERVER_DESCRIPTIONS: Record<string, string> = {
  clientSlots: 'Client connection slots (max_connections minus the reserved ones): what when.connectionsAbove percentages are of. Default 100.',
  version: `server_version, e.g. "16.4". Default ${NEWEST_SUPPORTED_VERSION}, the newest supported.`,
  reaperSuperuser: 'The reaper connects as a superuser (then it may signal superuser sessions). Default false.',
};

/** Facts key by key: the first that says, else the default. */
export function serverFacts(...layers: (ServerFactsInput | undefined)[]): ServerFacts {
  const pick = <K extends keyof ServerFacts>(k: K): ServerFacts[K] => (layers.find((l) => l?.[k] !== undefined)?.[k] as ServerFacts[K] | undefined) ?? SERVER_DEFAULTS[k];
  return { clientSlots: pick('clientSlots'), version: pick('version'), reaperSuperuser: pick('reaperSuperuser') };
}

/** server_version_num of a version string: "16.4" → 160004. */
export function versionNum(version: string): number {
  const [, major, minor] = /^(\d+)(?:\.(\d+))?/.exec(version) ?? [];
  return Number(major ?? 0) * 10_000 + Number(minor ?? 0);
}

const defaultCanSignal = (superuser: boolean, server: ServerFacts) => server.reaperSuperuser || !superuser;

/** The planner's Session for a written one, its ages taken before `nowMs`. */
export function toSession(f: SessionFormat, nowMs: number, server: ServerFacts): Session {
  const plain = Object.fromEntries(PLAIN_KEYS.map((k) => [k, f[k] ?? PLAIN[k].absent])) as Pick<Session, PlainKey>;
  const superuser = plain.superuser;
  const base = { ...plain, pid: f.pid, superuser, canSignal: f.canSignal ?? defaultCanSignal(superuser, server) };
  if (plain.query === undefined) delete (base as Partial<Session>).query;
  if (f.visible === false) {
    return { ...base, clientAddr: null, local: false, state: null, backendStartMs: null, xactStartMs: null, queryStartMs: null, stateChangeMs: null, backendStart: null, stateChange: null, queryStart: null, xactStart: null, blockedBy: null, waitStartMs: null, listener: false };
  }
  const stateAge = f.stateAge ?? 0;
  const waitAge = f.waitingOn ? (f.waitAge ?? stateAge) : undefined;
  const backendAge = f.backendAge ?? Math.max(stateAge, f.queryAge ?? 0, f.xactAge ?? 0, waitAge ?? 0);
  const at = (ageMs: number | undefined) => (ageMs === undefined ? null : nowMs - ageMs);
  // the timestamps' text stands in for the server's: the kill guard that compares it never runs offline
  const text = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  const backendStartMs = at(backendAge);
  const stateChangeMs = at(stateAge);
  const queryStartMs = at(f.queryAge);
  const xactStartMs = at(f.xactAge);
  return {
    ...base,
    clientAddr: f.clientAddr === undefined || f.clientAddr === 'local' ? null : f.clientAddr,
    local: f.clientAddr === 'local',
    state: f.state ?? null,
    backendStartMs,
    stateChangeMs,
    queryStartMs,
    xactStartMs,
    backendStart: text(backendStartMs),
    stateChange: text(stateChangeMs),
    queryStart: text(queryStartMs),
    xactStart: text(xactStartMs),
    blockedBy: f.waitingOn ?? null,
    waitStartMs: at(waitAge),
  };
}

/** Seconds before `nowMs`, to the microsecond the server measures in; never negative. */
const secondsBefore = (nowMs: number, ms: number) => Math.max(0, Math.round((nowMs - ms) * 1000) / 1_000_000);

/** The written form of a snapshot's session: ages before `nowMs`, fields at their default left out. */
export function fromSession(s: Session, nowMs: number, server: ServerFacts): SessionRecord {
  const out: Record<string, unknown> = { pid: s.pid };
  for (const k of PLAIN_KEYS) {
    const v = s[k] ?? PLAIN[k].absent;
    if (v !== PLAIN[k].absent) out[k] = v;
  }
  if (s.backendStart === null) {
    out.visible = false;
    delete out.listener;
    delete out.query;
  } else {
    if (s.local) out.clientAddr = 'local';
    else if (s.clientAddr !== null) out.clientAddr = s.clientAddr;
    out.state = s.state;
    const ages: [AgeKey, number | null][] = [
      ['stateAge', s.stateChangeMs],
      ['queryAge', s.queryStartMs],
      ['xactAge', s.xactStartMs],
      ['backendAge', s.backendStartMs],
    ];
    for (const [key, ms] of ages) if (ms !== null) out[key] = secondsBefore(nowMs, ms);
    if (s.blockedBy !== null) {
      out.waitingOn = s.blockedBy;
      if (s.waitStartMs !== null) out.waitAge = secondsBefore(nowMs, s.waitStartMs);
    }
  }
  if (s.canSignal !== defaultCanSignal(s.superuser, server)) out.canSignal = s.canSignal;
  // who, where, what state and how old first; the query text, when there is one, last
  const order = (k: string) => (k === 'query' ? 2 : FIRST.includes(k) ? 0 : 1);
  const keys = Object.keys(out).sort((a, b) => order(a) - order(b) || (order(a) === 0 ? FIRST.indexOf(a) - FIRST.indexOf(b) : 0));
  return Object.fromEntries(keys.map((k) => [k, out[k]])) as SessionRecord;
}

const FIRST = ['pid', 'user', 'database', 'application', 'clientAddr', 'visible', 'state', 'stateAge', 'queryAge', 'xactAge', 'backendAge', 'waitingOn', 'waitAge'];
