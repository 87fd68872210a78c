import { describe, expect, it } from 'vitest';
import { parseConfigText, validateConfig } from '../../src/config/load.js';
import { explain } from '../../src/plan/explain.js';
import { plan, type Decision } from '../../src/plan/planner.js';
import { compilePolicies } from '../../src/policy/compile.js';
import { victim } from '../../src/run/executor.js';
import { actionFields } from '../../src/run/log-lines.js';
import { NOW, session, snapshot } from '../helpers/sessions.js';

// maxLockWait with a fixed snapshot: a migration's ALTER TABLE waits for an AccessExclusiveLock
// behind a long transaction, and SELECTs queue behind the ALTER.

const policies = (p: Record<string, unknown>) => compilePolicies(validateConfig({ targets: [{ name: 't', host: 'db' }], policies: [{ name: 'migrations', ...p }] }), 't');
const run = (sessions: ReturnType<typeof session>[], p: Record<string, unknown>): Decision[] => plan(snapshot(sessions), policies(p), { target: 't', applicationName: 'pg-reaper' });
const ago = (s: number) => NOW - s * 1000;

/** holder ← alter (waits `alterWaits` s for AccessExclusiveLock) ← n selects (AccessShareLock); one more behind the first select. */
function queue(n: number, alterWaits = 5) {
  const holder = session({ inTxFor: 600 });
  const alter = session({ activeFor: alterWaits, blockedBy: [holder.pid], waitStartMs: ago(alterWaits), waitMode: 'AccessExclusiveLock' });
  const selects = Array.from({ length: n }, () => session({ activeFor: 4, blockedBy: [alter.pid], waitStartMs: ago(4), waitMode: 'AccessShareLock' }));
  return { holder, alter, selects, all: [holder, alter, ...selects] };
}

const base = { maxLockWait: '2s', action: 'cancel' };

describe('maxLockWait', () => {
  it('acts on a wait strictly longer than the threshold, not on one of exactly it', () => {
    const over = queue(0, 2.001);
    expect(run(over.all, base).map((d) => [d.session.pid, d.reason, d.action])).toContainEqual([over.alter.pid, 'lock_wait', 'cancel']);
    const exact = queue(0, 2);
    expect(run(exact.all, base).map((d) => d.session.pid)).not.toContain(exact.alter.pid);
  });

  it('never chooses the session that holds the lock, though it is in scope and older than everything', () => {
    const q = queue(5);
    const pids = run(q.all, { ...base, maxLockWait: '1ms' }).map((d) => d.session.pid);
    expect(pids).not.toContain(q.holder.pid);
    expect(pids).toContain(q.alter.pid);
  });

  it('minWaiters: at least N queue behind it, counting those that queue through others', () => {
    const q = queue(2);
    // one more behind the first SELECT: 3 behind the ALTER in all
    const deeper = session({ activeFor: 3, blockedBy: [q.selects[0]!.pid], waitStartMs: ago(3), waitMode: 'RowExclusiveLock' });
    const sessions = [...q.all, deeper];
    const acted = (minWaiters: number) => run(sessions, { ...base, minWaiters, lockModes: ['AccessExclusiveLock'] }).map((d) => [d.session.pid, d.details?.queuedBehind]);
    expect(acted(3)).toEqual([[q.alter.pid, 3]]);
    expect(acted(4)).toEqual([]);
  });

  it('lockModes: only waits for these modes; without it, any', () => {
    const q = queue(5);
    expect(run(q.all, { ...base, lockModes: ['AccessExclusiveLock'] }).map((d) => d.session.pid)).toEqual([q.alter.pid]);
    expect(run(q.all, { ...base, lockModes: ['ShareLock', 'AccessShareLock'] }).map((d) => d.session.pid).sort()).toEqual(q.selects.map((s) => s.pid).sort());
    expect(run(q.all, base)).toHaveLength(6);
  });

  it('guards the same statement still waiting; logs how many queue behind it', () => {
    const q = queue(5);
    const [d] = run(q.all, { ...base, minWaiters: 3 });
    expect(victim(d!)).toEqual({ pid: q.alter.pid, backendStart: q.alter.backendStart, reason: 'lock_wait', state: 'active', fact: q.alter.queryStart });
    expect(actionFields({ decision: d!, outcome: 'cancelled' }, false)).toMatchObject({ reason: 'lock_wait', action: 'cancel', seconds: 5, thresholdSeconds: 2, queuedBehind: 5 });
  });

  it('says why a waiter was left alone', () => {
    const q = queue(2);
    const compiled = policies({ ...base, minWaiters: 3, lockModes: ['AccessExclusiveLock'] });
    const snap = snapshot(q.all);
    expect(explain(snap, compiled, 'pg-reaper', plan(snap, compiled, { target: 't', applicationName: 'pg-reaper' })).map((n) => n.why)).toEqual([
      'migrations: under threshold (maxLockWait: waits for no lock)',
      'migrations: spared by its options (waiting for a lock 5s > maxLockWait 2s, but 2 sessions queue behind it (minWaiters 3))',
      'migrations: spared by its options (waiting for a lock 4s > maxLockWait 2s, but 0 sessions queue behind it (minWaiters 3))',
      'migrations: spared by its options (waiting for a lock 4s > maxLockWait 2s, but 0 sessions queue behind it (minWaiters 3))',
    ]);
  });

  it('config: cancel works with it (and with maxQueryDuration beside it); minWaiters and lockModes only beside it; lock modes by name', () => {
    const problems = (yaml: string) => {
      const r = parseConfigText(`targets: [{ name: t, host: db }]\npolicies:\n  - name: p\n${yaml}`, 'c.yaml');
      return r.ok ? [] : r.problems.map((p) => `${p.line}:${p.col} ${p.path}: ${p.message}`);
    };
    expect(problems('    maxLockWait: 30s\n    minWaiters: 3\n    lockModes: [AccessExclusiveLock]\n    action: cancel\n')).toEqual([]);
    expect(problems('    maxLockWait: 30s\n    maxQueryDuration: 10m\n    action: cancel\n')).toEqual([]);
    expect(problems('    maxLockWait: 30s\n    maxIdle: 10m\n    action: cancel\n')).toEqual([
      '6:13 policies[0].action: action "cancel" only works with maxLockWait or maxQueryDuration, and no other threshold (cancelling an idle session does nothing); use action "terminate" or a separate policy',
    ]);
    expect(problems('    maxIdle: 10m\n    minWaiters: 3\n')).toEqual(['5:17 policies[0].minWaiters: minWaiters only works with maxLockWait: it refines which sessions maxLockWait acts on']);
    expect(problems('    maxLockWait: 30s\n    lockModes: [AccessExclusive]\n')[0]).toMatch(/^5:17 policies\[0\]\.lockModes\[0\]: expected one of "AccessShareLock", .*"AccessExclusiveLock", got "AccessExclusive"$/);
    expect(problems('    maxLockWait: 30s\n    minWaiters: -1\n')).toHaveLength(1);
    expect(policies({ maxLockWait: '30s' })[0]!.options.find((o) => o !== undefined)).toEqual({ minWaiters: 0, lockModes: undefined });
  });
});
