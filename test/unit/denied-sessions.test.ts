import { describe, expect, it } from 'vitest';
import type { Session } from '../../src/db/session.js';
import { DeniedSessions } from '../../src/run/denied-sessions.js';
import type { Outcome } from '../../src/run/outcome.js';
import type { RunReport } from '../../src/run/run-target.js';
import { session, snapshot } from '../helpers/sessions.js';

// A denied session is reported once while it lives: known by pid and backend_start.

function report(rows: Session[], denied: Session[], outcome: Outcome = 'denied'): RunReport {
  const results = denied.map((s) => ({ decision: { target: 't', policy: 'p', reason: 'idle' as const, action: 'terminate' as const, dryRun: false, session: s, age: 9, threshold: 1, seconds: 9, capped: false }, outcome }));
  return { target: 't', ok: true, finishedAtMs: 0, durationSeconds: 0, timings: { snapshotMs: 0, planMs: 0, executeMs: 0 }, snapshot: snapshot(rows), results, decisions: results.map((r) => r.decision) };
}
const repeated = (r: RunReport) => r.results.map((x) => x.repeated === true);

describe('denied sessions', () => {
  it('the first denial is reported, later ones of the same session are repeats; a reused pid is a new session', () => {
    const mem = new DeniedSessions();
    const su = session({ superuser: true, canSignal: false, idleFor: 9 });
    const r1 = report([su], [su]);
    mem.observe(r1);
    expect(repeated(r1)).toEqual([false]);
    expect(mem.watch('t')).toEqual([su.pid]);
    const r2 = report([su], [su]);
    mem.observe(r2);
    expect(repeated(r2)).toEqual([true]);
    // alive but no longer denied (it ran a statement): still remembered
    mem.observe(report([su], []));
    const r3 = report([su], [su]);
    mem.observe(r3);
    expect(repeated(r3)).toEqual([true]);
    // the pid now belongs to another session (another backend_start)
    const reused = { ...su, backendStart: 'another' };
    const r4 = report([reused], [reused]);
    mem.observe(r4);
    expect(repeated(r4)).toEqual([false]);
  });

  it('a session gone is forgotten; a run that read nothing changes nothing; other outcomes are not its business', () => {
    const mem = new DeniedSessions();
    const su = session({ superuser: true, canSignal: false, idleFor: 9 });
    mem.observe(report([su], [su]));
    mem.observe({ ...report([], []), snapshot: undefined, ok: false });
    expect(mem.watch('t')).toEqual([su.pid]);
    mem.observe(report([], []));
    expect(mem.watch('t')).toEqual([]);
    const other = session({ idleFor: 9 });
    const r = report([other], [other], 'terminated');
    mem.observe(r);
    expect(repeated(r)).toEqual([false]);
    expect(mem.watch('t')).toEqual([]);
  });
});
