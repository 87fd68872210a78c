import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { describeIssue } from '../../src/config/load.js';
import { validateConfig } from '../../src/config/load.js';
import type { Session } from '../../src/db/session.js';
import { plan } from '../../src/plan/planner.js';
import { compilePolicies } from '../../src/policy/compile.js';
import { SERVER_DEFAULTS, serverFacts, sessionSchema, toSession, versionNum } from '../../src/replay/session-format.js';
import { loadSessionsFile, renderSnapshot, replayedSnapshot } from '../../src/replay/snapshot-file.js';
import { NOW, session, snapshot } from '../helpers/sessions.js';

// The written session format: its documented defaults, what it refuses, and that a snapshot
// written and read back is judged exactly as the snapshot it came from.

const dir = mkdtempSync(join(tmpdir(), 'pg-reaper-session-format-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const parse = (input: unknown) => sessionSchema.parse(input);
const issues = (input: unknown) => {
  const r = sessionSchema.safeParse(input, { error: describeIssue });
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};
const at = (s: Session) => ({
  state: s.stateChangeMs === null ? null : NOW - s.stateChangeMs,
  query: s.queryStartMs === null ? null : NOW - s.queryStartMs,
  xact: s.xactStartMs === null ? null : NOW - s.xactStartMs,
  backend: s.backendStartMs === null ? null : NOW - s.backendStartMs,
  wait: s.waitStartMs === null ? null : NOW - s.waitStartMs,
});

describe('the session format', () => {
  it('has the documented defaults: stateAge 0, backendAge the largest other age, queryAge and xactAge NULL, names empty', () => {
    const s = toSession(parse({ pid: 7, state: 'idle' }), NOW, SERVER_DEFAULTS);
    expect(s).toMatchObject({ pid: 7, user: '', database: '', application: '', clientAddr: null, local: false, state: 'idle', superuser: false, canSignal: true, listener: false, blockedBy: null });
    expect(at(s)).toEqual({ state: 0, query: null, xact: null, backend: 0, wait: null });
    expect(s.backendStart).not.toBeNull(); // visible: judged
    expect('query' in s).toBe(false);

    const tx = toSession(parse({ pid: 8, state: 'idle in transaction', stateAge: '2m', xactAge: '5m', queryAge: 150 }), NOW, SERVER_DEFAULTS);
    expect(at(tx)).toEqual({ state: 120_000, query: 150_000, xact: 300_000, backend: 300_000, wait: null });
    const waiter = toSession(parse({ pid: 9, state: 'active', stateAge: '10s', waitingOn: [8] }), NOW, SERVER_DEFAULTS);
    expect(waiter.blockedBy).toEqual([8]);
    expect(at(waiter)).toMatchObject({ wait: 10_000, backend: 10_000 });
    expect(at(toSession(parse({ pid: 9, state: 'active', waitingOn: [8], waitAge: '1h' }), NOW, SERVER_DEFAULTS))).toMatchObject({ wait: 3_600_000, backend: 3_600_000 });
    expect(at(toSession(parse({ pid: 10, state: 'idle', stateAge: '1m', backendAge: '1d' }), NOW, SERVER_DEFAULTS)).backend).toBe(86_400_000);
  });

  it('maps clientAddr "local", superuser and canSignal as the server would report them', () => {
    expect(toSession(parse({ pid: 1, state: 'idle', clientAddr: 'local' }), NOW, SERVER_DEFAULTS)).toMatchObject({ clientAddr: null, local: true });
    expect(toSession(parse({ pid: 1, state: 'idle', clientAddr: '::1' }), NOW, SERVER_DEFAULTS)).toMatchObject({ clientAddr: '::1', local: false });
    expect(toSession(parse({ pid: 1, state: 'idle', superuser: true }), NOW, SERVER_DEFAULTS).canSignal).toBe(false);
    expect(toSession(parse({ pid: 1, state: 'idle', superuser: true }), NOW, serverFacts({ reaperSuperuser: true })).canSignal).toBe(true);
    expect(toSession(parse({ pid: 1, state: 'idle', canSignal: false }), NOW, SERVER_DEFAULTS).canSignal).toBe(false);
  });

  it('a session the reaper cannot see has no state or times, so the planner never judges it', () => {
    const hidden = toSession(parse({ pid: 3, user: 'other', visible: false }), NOW, SERVER_DEFAULTS);
    expect(hidden).toMatchObject({ state: null, backendStart: null, backendStartMs: null, stateChangeMs: null, user: 'other' });
    const policies = compilePolicies(validateConfig({ targets: [{ name: 't', host: 'h' }], policies: [{ name: 'p', maxIdle: '1s', maxConnectionAge: '1s' }] }), 't');
    expect(plan(snapshot([hidden]), policies, { target: 't', applicationName: 'pg-reaper' })).toEqual([]);
  });

  it('refuses what cannot be, saying what would be accepted', () => {
    expect(issues({ pid: 1 })).toEqual([expect.stringMatching(/^state: required: the session's state \("active", "idle", .*\), or visible: false/)]);
    expect(issues({ pid: 1, state: 'idel' })).toEqual([expect.stringMatching(/^state: expected one of "active", "idle", .*got "idel"$/)]);
    expect(issues({ pid: 0, state: 'idle' })).toEqual(['pid: expected a number >= 1, got 0']);
    expect(issues({ pid: 1, state: 'idle', stateAge: '5 minutes' })).toEqual(['stateAge: expected an age like "5m" or "90s" (ms, s, m, h, d, or a number of seconds), 0 or more, got "5 minutes"']);
    expect(issues({ pid: 1, state: 'idle', stateAge: -1 })).toHaveLength(1);
    expect(issues({ pid: 1, state: 'idle', stateAge: '5m', backendAge: '1m' })).toEqual(['backendAge: backendAge 1m is shorter than stateAge 5m: a session connects before anything happens in it']);
    expect(issues({ pid: 1, state: 'idle', waitAge: '5s' })).toEqual(['waitAge: waitAge goes with waitingOn (the pids whose lock it waits for)']);
    expect(issues({ pid: 1, state: 'active', waitingOn: [1] })).toEqual(['waitingOn: a session cannot wait on itself (pid 1)']);
    expect(issues({ pid: 1, visible: false, state: 'idle', stateAge: '1m' })).toEqual([
      'state: a session the reaper cannot see (visible: false) has no state: its role hides it',
      'stateAge: a session the reaper cannot see (visible: false) has no stateAge: its role hides it',
    ]);
    expect(issues({ pid: 1, state: 'idle', clientAddr: '10.0.0.0/8' })).toEqual(['clientAddr: expected an IP address, or "local" for a Unix-socket session, got "10.0.0.0/8"']);
    expect(issues({ pid: 1, state: 'idle', colour: 'red' })).toEqual([expect.stringMatching(/^: unknown key "%KEY%"; accepted keys: pid, user, database, application, /)]);
  });

  it('server facts: key by key over the layers below, else the defaults (100 slots, the newest supported version, not superuser)', () => {
    expect(serverFacts()).toEqual({ clientSlots: 100, version: '18', reaperSuperuser: false });
    expect(serverFacts({ clientSlots: 10 }, { clientSlots: 50, version: '16.4' })).toEqual({ clientSlots: 10, version: '16.4', reaperSuperuser: false });
    expect(versionNum('16.4')).toBe(160004);
    expect(versionNum('18')).toBe(180000);
    expect(versionNum('13.22 (Debian 13.22-1)')).toBe(130022);
  });
});

describe('a snapshot file', () => {
  // every fact a rule reads, in one snapshot: pools for keepIdle, a lock chain, a listener, a
  // local session, a superuser, one we may not signal, one we cannot see, our own, and queries
  const sessions = (): Session[] => {
    const blocker = session({ inTxFor: 50, xactFor: 61, application: 'holder' });
    const waiter = session({ activeFor: 45.123456, xactFor: 45.123456, blockedBy: [blocker.pid], waitStartMs: NOW - 44_000.5, waitMode: 'AccessExclusiveLock' });
    const pool = [11, 12, 13, 14, 15].map((m) => session({ idleFor: m * 60, application: 'pool' }));
    // a migration stuck behind a prepared transaction: pg_blocking_pids names it 0
    const migration = session({ activeFor: 40, xactFor: 40, blockedBy: [0], waitStartMs: NOW - 39_000, waitMode: 'AccessExclusiveLock', application: 'migrate' });
    return [
      blocker,
      waiter,
      migration,
      session({ activeFor: 30, blockedBy: [migration.pid], waitStartMs: NOW - 30_000, waitMode: 'AccessShareLock' }),
      session({ activeFor: 30, blockedBy: [waiter.pid], waitStartMs: NOW - 29_000 }),
      session({ activeFor: 10, blockedBy: [], waitStartMs: NOW - 5_000 }),
      ...pool,
      session({ idleFor: 7200, listener: true, application: 'jobs' }),
      session({ idleFor: 700, local: true, clientAddr: null, user: 'ops' }),
      session({ inTxFor: 900, superuser: true, canSignal: false, user: 'admin' }),
      session({ inTxFor: 900, canSignal: false, user: 'other' }),
      // the xmin horizon: an old transaction id, a snapshot old by itself, one old because of another
      session({ inTxFor: 100, xactFor: 100, xidAge: 3_000_000 }),
      session({ activeFor: 20, xactFor: 20, xminAge: 2_500_000, application: 'reader' }),
      session({ activeFor: 20, xactFor: 20, xminAge: 2_600_000, olderTransactionRuns: true, application: 'reader' }),
      session({ idleFor: 9999, backendStart: null, backendStartMs: null, stateChangeMs: null, queryStartMs: null, xactStartMs: null, state: null, clientAddr: null, canSignal: false }),
      session({ idleFor: 9999, application: 'pg-reaper' }),
      session({ activeFor: 1000, application: 'reporting-x', xactFor: 1000, query: 'SELECT secret' }),
      session({ idleFor: 1, connectedFor: 50_000 }),
      session({ activeFor: 5000, maintenance: 'VACUUM' }),
    ];
  };
  const config = validateConfig({
    maxActionsPerRun: 5,
    targets: [{ name: 't', host: 'h' }],
    policies: [
      { name: 'locks', maxBlocking: '30s' },
      { name: 'pools', maxIdle: '10m', keepIdle: 2, match: { applications: ['pool'] } },
      { name: 'tx', maxIdleInTransaction: '10m' },
      { name: 'reports', maxQueryDuration: '10m', action: 'cancel', terminateAfter: '5m', match: { applications: ['reporting-*'] } },
      { name: 'old', maxConnectionAge: '12h', maxIdle: '1h' },
      { name: 'pressure', maxIdle: '5m', when: { connectionsAbove: 20 } },
      { name: 'horizon', maxXminAge: '1M' },
      { name: 'queues', maxLockWait: '20s', minWaiters: 1, lockModes: ['AccessExclusiveLock'], action: 'cancel' },
    ],
  });
  const limits = { target: 't', applicationName: 'pg-reaper', maxActionsPerRun: 5 };
  const decisions = (snap: ReturnType<typeof snapshot>) =>
    plan(snap, compilePolicies(config, 't'), limits).map((d) => ({ pid: d.session.pid, policy: d.policy, reason: d.reason, action: d.action, capped: d.capped, held: d.held ?? false, escalated: d.escalated ?? false, seconds: Math.round(d.seconds * 1000) / 1000 }));

  it('written and read back, is judged exactly as the snapshot it came from, by every rule', () => {
    const original = { ...snapshot(sessions()), clientSlots: 40, server: { version: '16.4', versionNum: 160004, user: 'reaper' } };
    const file = join(dir, 'round-trip.json');
    writeFileSync(file, renderSnapshot(original, 't'));
    const loaded = loadSessionsFile(file);
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
    expect(loaded.value).toMatchObject({ takenAtMs: NOW, target: 't', server: { clientSlots: 40, version: '16.4', reaperSuperuser: false } });
    const replayed = replayedSnapshot(loaded.value.sessions, serverFacts(loaded.value.server), loaded.value.takenAtMs!);
    expect(replayed.clients).toBe(original.clients);
    const want = decisions(original);
    // every rule is in play: a blocker, a kept pool, a held pressure match, a cap, an escalation, a denial
    expect(want.map((d) => d.reason)).toEqual(expect.arrayContaining(['blocking', 'idle', 'idle_in_transaction', 'query_duration', 'xmin_age', 'connection_age', 'lock_wait']));
    expect(want.some((d) => d.held) && want.some((d) => d.capped) && want.some((d) => d.escalated)).toBe(true);
    // the migration behind a prepared transaction (blocked by "0") is cancelled, offline as live
    expect(want.find((d) => d.pid === original.sessions[2]!.pid)).toMatchObject({ reason: 'lock_wait', action: 'cancel' });
    expect(decisions(replayed)).toEqual(want);
    expect(replayed.sessions.map((s) => [s.canSignal, s.maintenance])).toEqual(original.sessions.map((s) => [s.canSignal, s.maintenance]));
    const horizon = (s: Session) => [s.pid, s.xidAge ?? null, s.xminAge ?? null, s.olderTransactionRuns ?? false, s.waitMode ?? null, s.blockedBy];
    const byPid = (a: Session, b: Session) => a.pid - b.pid;
    expect([...replayed.sessions].sort(byPid).map(horizon)).toEqual([...original.sessions].sort(byPid).map(horizon));
    expect(replayed.sessions.find((s) => s.query !== undefined)?.query).toBe('SELECT secret');
  });

  it('is one JSON document with one session per line, the hidden ones marked visible: false', () => {
    const text = renderSnapshot(snapshot(sessions().slice(-5)), 't');
    const doc = JSON.parse(text) as { takenAt: string; target: string; server: unknown; sessions: Record<string, unknown>[] };
    expect(doc.takenAt).toBe(new Date(NOW).toISOString());
    expect(doc.server).toEqual({ clientSlots: 97, version: '18.4', reaperSuperuser: false });
    expect(text.split('\n').filter((l) => l.startsWith('    {"pid":'))).toHaveLength(5);
    expect(doc.sessions.find((s) => s.visible === false)).toEqual({ pid: expect.any(Number), user: 'app', database: 'shop', application: 'web', visible: false, canSignal: false });
  });

  it('a malformed one is reported as FILE:LINE:COL, every problem at once', () => {
    const file = join(dir, 'bad.json');
    writeFileSync(file, '{\n  "takenAt": "yesterday",\n  "sessions": [\n    {"pid": 1, "state": "idle"},\n    {"pid": 1, "state": "idle", "stateAge": "long"}\n  ]\n}\n');
    const r = loadSessionsFile(file);
    expect(r.ok).toBe(false);
    expect(r.ok ? [] : r.problems.map((p) => `${p.line}:${p.col} ${p.path}: ${p.message}`)).toEqual([
      '2:14 takenAt: expected an ISO 8601 time like "2026-11-22T04:30:52.101Z"',
      '5:45 sessions[1].stateAge: expected an age like "5m" or "90s" (ms, s, m, h, d, or a number of seconds), 0 or more, got "long"',
    ]);
    writeFileSync(file, '{"sessions": [{"pid": 1, "state": "idle"}, {"pid": 1, "state": "idle"}]}');
    const dup = loadSessionsFile(file);
    expect(dup.ok ? [] : dup.problems.map((p) => `${p.line}:${p.col} ${p.path}: ${p.message}`)).toEqual(['1:52 sessions[1].pid: pid 1 is listed twice']);
  });
});
