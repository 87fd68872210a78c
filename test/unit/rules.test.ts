import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { plan, type Decision } from '../../src/plan/planner.js';
import { compilePolicies } from '../../src/policy/compile.js';
import { NOW, session, snapshot } from '../helpers/sessions.js';

// The rules that look at more than one session, or at the server: blocking, keepIdle,
// terminateAfter, when, listeners. Fixed clock, fixed snapshots (clientSlots 97).

const run = (sessions: ReturnType<typeof session>[], policies: unknown[], extra: Record<string, unknown> = {}): Decision[] => {
  const c = validateConfig({ targets: [{ name: 't', host: 'db' }], policies, ...extra });
  return plan(snapshot(sessions), compilePolicies(c, 't'), { target: 't', applicationName: c.applicationName, maxActionsPerRun: c.maxActionsPerRun, exemptListeners: c.exemptListeners });
};
const acted = (ds: Decision[]) => ds.filter((d) => !d.held).map((d) => d.session.pid);
const ago = (s: number) => NOW - s * 1000;

describe('maxBlocking: the root of a lock chain', () => {
  // A holds a row lock in an idle transaction; B waits on A for 40 s; C waits on B for 10 s.
  const chain = () => {
    const a = session({ inTxFor: 50 });
    const b = session({ activeFor: 40, blockedBy: [a.pid], waitStartMs: ago(40) });
    const c = session({ activeFor: 10, blockedBy: [b.pid], waitStartMs: ago(10) });
    return { a, b, c };
  };

  it('acts on the root only, with how many wait on it and the longest wait', () => {
    const { a, b, c } = chain();
    const ds = run([a, b, c], [{ name: 'blockers', maxBlocking: '30s' }]);
    expect(ds.map((d) => [d.session.pid, d.reason, d.seconds, d.threshold, d.details?.blockedSessions])).toEqual([[a.pid, 'blocking', 40, 30, 2]]);
  });

  it('holds below the threshold; never chooses a waiter, however low the threshold', () => {
    const { a, b, c } = chain();
    expect(run([a, b, c], [{ name: 'blockers', maxBlocking: '41s' }])).toEqual([]);
    expect(run([a, b, c], [{ name: 'blockers', maxBlocking: '1ms' }]).map((d) => d.session.pid)).toEqual([a.pid]);
  });

  it('comes before idle; a session holding locks nobody waits for is not blocking', () => {
    const advisory = session({ idleFor: 100 }); // a session-level lock outside any transaction
    const waiter = session({ activeFor: 40, blockedBy: [advisory.pid], waitStartMs: ago(40) });
    const lonely = session({ inTxFor: 500 });
    const ds = run([advisory, waiter, lonely], [{ name: 'p', maxBlocking: '30s', maxIdle: '1m' }]);
    expect(ds.map((d) => [d.session.pid, d.reason])).toEqual([[advisory.pid, 'blocking']]);
  });

  it('a blocker it cannot see (a prepared transaction, autovacuum) is not acted on, nor are its waiters', () => {
    const waiter = session({ activeFor: 40, blockedBy: [424242], waitStartMs: ago(40) });
    expect(run([waiter], [{ name: 'p', maxBlocking: '30s' }])).toEqual([]);
  });
});

describe('keepIdle: pools shrink, never empty', () => {
  it('keeps the N most recently active idle sessions of each (user, database, application), counting fresh ones', () => {
    const web = Array.from({ length: 10 }, (_, i) => session({ application: 'web', idleFor: 10 + i * 10 }));
    const jobs = Array.from({ length: 3 }, (_, i) => session({ application: 'jobs', idleFor: 10 + i * 10 }));
    const policy = { name: 'shrink', maxIdle: '1s', keepIdle: 4 };
    // web: the 4 newest kept, the 6 oldest go; jobs: 3 ≤ 4, all kept
    expect(acted(run([...web, ...jobs], [policy])).sort()).toEqual(web.slice(4).map((s) => s.pid).sort());
    // a fresh web session, still under maxIdle, is one of the 4 kept
    const fresh = session({ application: 'web', idleFor: 0.5 });
    expect(acted(run([...web, ...jobs, fresh], [policy])).sort()).toEqual(web.slice(3).map((s) => s.pid).sort());
    // another user is another group
    const other = session({ application: 'web', user: 'etl', idleFor: 500 });
    expect(acted(run([...web, other], [policy]))).not.toContain(other.pid);
  });

  it('spares only from idle: a kept session past maxConnectionAge is still terminated for that', () => {
    const s = session({ idleFor: 100, connectedFor: 7200 });
    expect(run([s], [{ name: 'p', maxIdle: '1s', keepIdle: 1, maxConnectionAge: '1h' }]).map((d) => d.reason)).toEqual(['connection_age']);
  });

  it('a session the policy keeps is decided by it: a catch-all below never kills what the pool policy kept', () => {
    const web = Array.from({ length: 5 }, (_, i) => session({ application: 'web', idleFor: 120 + i }));
    const other = session({ application: 'batch', idleFor: 120 });
    const ds = run([...web, other], [
      { name: 'pools', maxIdle: '1m', keepIdle: 2, match: { applications: ['web'] } },
      { name: 'catch-all', maxIdle: '30s' },
    ]);
    // the 3 oldest web sessions by the pool policy, the batch one by the catch-all; the 2 kept live
    expect(ds.map((d) => [d.session.pid, d.policy])).toEqual([
      [web[4]!.pid, 'pools'],
      [web[3]!.pid, 'pools'],
      [web[2]!.pid, 'pools'],
      [other.pid, 'catch-all'],
    ]);
    // kept while still under the pool's maxIdle too: the pool policy decides, it keeps them
    const fresh = [session({ application: 'web', idleFor: 40 }), session({ application: 'web', idleFor: 45 })];
    expect(run(fresh, [{ name: 'pools', maxIdle: '1m', keepIdle: 2, match: { applications: ['web'] } }, { name: 'catch-all', maxIdle: '30s' }])).toEqual([]);
    // as a session held by a policy's `when` is: that policy decides, the walk ends there
    const held = run([session({ idleFor: 120 })], [{ name: 'pressure', maxIdle: '1m', when: { connectionsAbove: 50 } }, { name: 'catch-all', maxIdle: '30s' }]);
    expect(held.map((d) => [d.policy, d.held])).toEqual([['pressure', true]]);
  });
});

describe('terminateAfter: escalation without memory', () => {
  const policy = { name: 'slow', maxQueryDuration: '60s', action: 'cancel', terminateAfter: '30s' };
  it('cancels up to maxQueryDuration + terminateAfter, terminates the same query past it', () => {
    const [d1] = run([session({ activeFor: 89 })], [policy]);
    expect(d1).toMatchObject({ action: 'cancel', reason: 'query_duration', threshold: 60 });
    expect(d1!.escalated).toBeUndefined();
    const [d2] = run([session({ activeFor: 90 })], [policy]);
    expect(d2).toMatchObject({ action: 'cancel' });
    const [d3] = run([session({ activeFor: 91 })], [policy]);
    expect(d3).toMatchObject({ action: 'terminate', reason: 'query_duration', escalated: true, seconds: 91, threshold: 90 });
  });
});

describe('when: { connectionsAbove }', () => {
  // 12 idle sessions + our own connection = 13 client connections; 97 client slots
  const idle = () => Array.from({ length: 12 }, (_, i) => session({ idleFor: 100 + i }));
  it('below the threshold its matches are held, not acted on', () => {
    const ds = run(idle(), [{ name: 'pressure', maxIdle: '1s', when: { connectionsAbove: '20%' } }]); // 19.4
    expect(ds).toHaveLength(12);
    expect(ds.every((d) => d.held)).toBe(true);
    expect(run(idle(), [{ name: 'pressure', maxIdle: '1s', when: { connectionsAbove: 13 } }]).every((d) => d.held)).toBe(true);
  });

  it('above it, terminates oldest first just enough to get to or below the threshold', () => {
    const sessions = idle();
    const ds = run(sessions, [{ name: 'pressure', maxIdle: '1s', when: { connectionsAbove: '10%' } }]); // 9.7: 13 → 9
    expect(acted(ds)).toEqual(sessions.slice(-4).reverse().map((s) => s.pid));
    expect(acted(run(sessions, [{ name: 'pressure', maxIdle: '1s', when: { connectionsAbove: 10 } }]))).toHaveLength(3);
  });

  it('counts only what will be signalled: the capped matches of another policy free no connection', () => {
    // 10 sessions + ours = 11 connections, threshold 5; `capped` matches 5 with a cap of 1
    const capped = Array.from({ length: 5 }, (_, i) => session({ application: 'batch', idleFor: 1000 + i }));
    const pressure = Array.from({ length: 5 }, (_, i) => session({ application: 'web', idleFor: 100 + i }));
    const ds = run([...capped, ...pressure], [
      { name: 'capped', maxIdle: '1m', maxActionsPerRun: 1, match: { applications: ['batch'] } },
      { name: 'pressure', maxIdle: '1s', when: { connectionsAbove: 5 }, match: { applications: ['web'] } },
    ]);
    const signalled = ds.filter((d) => !d.held && !d.capped);
    expect(signalled.filter((d) => d.policy === 'capped')).toHaveLength(1);
    expect(ds.filter((d) => d.capped)).toHaveLength(4);
    // 11 - 1 = 10 > 5: all 5 pressure matches go, 5 connections left
    expect(signalled.filter((d) => d.policy === 'pressure').map((d) => d.session.pid)).toEqual(pressure.map((s) => s.pid).reverse());
    expect(11 - signalled.length).toBe(5);
  });

  it('nor do dry-run, denied or held decisions; a when policy acts within the slots the caps leave', () => {
    const sessions = Array.from({ length: 10 }, (_, i) => session({ application: 'web', idleFor: 100 + i }));
    const denied = Array.from({ length: 3 }, (_, i) => session({ application: 'admin', idleFor: 5000 + i, canSignal: false, superuser: true }));
    const dry = Array.from({ length: 3 }, (_, i) => session({ application: 'dry', idleFor: 4000 + i }));
    // 16 sessions + ours = 17, threshold 14: neither the denied nor the dry-run ones free a slot, so 3 web ones go
    const ds = run([...sessions, ...denied, ...dry], [
      { name: 'admin', maxIdle: '1m', match: { applications: ['admin'] } },
      { name: 'dry', maxIdle: '1m', dryRun: true, match: { applications: ['dry'] } },
      { name: 'pressure', maxIdle: '1s', when: { connectionsAbove: 14 }, match: { applications: ['web'] } },
    ]);
    expect(acted(ds.filter((d) => d.policy === 'pressure'))).toEqual(sessions.slice(-3).reverse().map((s) => s.pid));
    // a target cap of 2: the other policies' decisions take their slots first, the pressure policy the rest
    const capped = run([...sessions, session({ application: 'batch', idleFor: 9000 })], [
      { name: 'batch', maxIdle: '1m', match: { applications: ['batch'] } },
      { name: 'pressure', maxIdle: '1s', when: { connectionsAbove: 5 }, match: { applications: ['web'] } },
    ], { maxActionsPerRun: 2 });
    expect(capped.filter((d) => !d.capped && !d.held).map((d) => d.policy)).toEqual(['batch', 'pressure']);
    expect(capped.filter((d) => d.capped).every((d) => d.policy === 'pressure')).toBe(true);
  });

  it('terminations by other policies in the same run count', () => {
    const sessions = idle();
    const old = session({ idleFor: 5000, application: 'batch' });
    const ds = run([...sessions, old], [
      { name: 'batch', maxIdle: '1h', match: { applications: ['batch'] } },
      { name: 'pressure', maxIdle: '1s', when: { connectionsAbove: 10 } },
    ]); // 14 connections, the batch one goes anyway: 3 more
    expect(acted(ds)).toEqual([old.pid, ...sessions.slice(-3).reverse().map((s) => s.pid)]);
  });
});

describe('exemptListeners', () => {
  it('spares a LISTEN session from idle and connection_age, not from the transaction rules; false turns it off', () => {
    const listener = session({ idleFor: 3600, connectedFor: 90_000, listener: true });
    expect(run([listener], [{ name: 'p', maxIdle: '1m', maxConnectionAge: '1h' }])).toEqual([]);
    expect(run([listener], [{ name: 'p', maxIdle: '1m' }], { exemptListeners: false }).map((d) => d.reason)).toEqual(['idle']);
    const inTx = session({ inTxFor: 600, listener: true });
    expect(run([inTx], [{ name: 'p', maxIdleInTransaction: '1m' }]).map((d) => d.reason)).toEqual(['idle_in_transaction']);
  });
});
