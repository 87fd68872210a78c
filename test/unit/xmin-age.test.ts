import { describe, expect, it } from 'vitest';
import { auditRows } from '../../src/audit/row.js';
import { parseConfigText, validateConfig } from '../../src/config/load.js';
import { explain } from '../../src/plan/explain.js';
import { plan, type Decision } from '../../src/plan/planner.js';
import { compilePolicies } from '../../src/policy/compile.js';
import { victim } from '../../src/run/executor.js';
import { actionFields } from '../../src/run/log-lines.js';
import { NOW, session, snapshot } from '../helpers/sessions.js';

// maxXminAge with a fixed snapshot: a session holds back vacuum by its own transaction id, or by
// its snapshot when that is not old merely because an older transaction still runs.

const policies = (p: Record<string, unknown>) => compilePolicies(validateConfig({ targets: [{ name: 't', host: 'db' }], policies: [{ name: 'horizon', ...p }] }), 't');
const run = (sessions: ReturnType<typeof session>[], p: Record<string, unknown> = { maxXminAge: 1000 }): Decision[] =>
  plan(snapshot(sessions), policies(p), { target: 't', applicationName: 'pg-reaper' });
const acted = (ds: Decision[]) => ds.map((d) => [d.session.pid, d.reason, d.age]);

/** A session in a REPEATABLE READ transaction: a snapshot and no transaction id. */
const reader = (xminAge: number, olderTransactionRuns = false) => session({ activeFor: 60, xactFor: 60, backendXmin: String(5000 - xminAge), xminAge, backendXid: null, xidAge: null, olderTransactionRuns });
/** A session that wrote and sits idle in its transaction: a transaction id and no snapshot. */
const writer = (xidAge: number) => session({ inTxFor: 90, xactFor: 90, backendXid: String(5000 - xidAge), xidAge, backendXmin: null, xminAge: null });

describe('maxXminAge', () => {
  it('acts on a transaction id strictly older than N, not on one of exactly N', () => {
    const [over, exact, under] = [writer(1001), writer(1000), writer(999)];
    expect(acted(run([over, exact, under]))).toEqual([[over.pid, 'xmin_age', 1001]]);
  });

  it('acts on a snapshot strictly older than N when no older transaction runs', () => {
    const [over, exact] = [reader(1001), reader(1000)];
    const ds = run([over, exact]);
    expect(acted(ds)).toEqual([[over.pid, 'xmin_age', 1001]]);
    expect(ds[0]).toMatchObject({ threshold: 1000, seconds: 60, action: 'terminate' });
  });

  it('leaves a snapshot alone that is old only because an older transaction still runs (the victims of a holder)', () => {
    const victims = [reader(50_000, true), reader(50_000, true)];
    expect(run(victims)).toEqual([]);
    // the holder itself, a session with the old transaction id, is the one acted on
    const holder = writer(50_000);
    expect(acted(run([...victims, holder]))).toEqual([[holder.pid, 'xmin_age', 50_000]]);
  });

  it('a session with both: its own transaction id counts even when its snapshot does not', () => {
    const both = session({ activeFor: 5, xactFor: 300, backendXid: '4000', xidAge: 1500, backendXmin: '3000', xminAge: 2500, olderTransactionRuns: true });
    expect(acted(run([both]))).toEqual([[both.pid, 'xmin_age', 1500]]);
    const alone = { ...both, pid: both.pid + 100_000, olderTransactionRuns: false };
    expect(acted(run([alone]))).toEqual([[alone.pid, 'xmin_age', 2500]]);
  });

  it('guards the fact that gives the age: the snapshot (backend_xmin) or the transaction id (backend_xid)', () => {
    const [d1] = run([reader(2000)]);
    expect(victim(d1!)).toMatchObject({ reason: 'xmin_age', fact: 'xmin 3000' });
    const [d2] = run([writer(2000)]);
    expect(victim(d2!)).toMatchObject({ reason: 'xmin_age', fact: 'xid 3000' });
    const [d3] = run([session({ activeFor: 5, xactFor: 300, backendXid: '4000', xidAge: 1500, backendXmin: '3000', xminAge: 2500, olderTransactionRuns: true })]);
    expect(victim(d3!)).toMatchObject({ fact: 'xid 4000' });
  });

  it('comes after the time rules of the same policy; logs the evidence in transactions', () => {
    const s = session({ inTxFor: 600, xactFor: 600, backendXid: '10', xidAge: 5000 });
    expect(run([s], { maxIdleInTransaction: '1m', maxXminAge: '1k' }).map((d) => d.reason)).toEqual(['idle_in_transaction']);
    const [d] = run([s], { maxXminAge: '1k' });
    expect(actionFields({ decision: d!, outcome: 'terminated' }, false)).toMatchObject({ reason: 'xmin_age', transactions: 5000, thresholdTransactions: 1000 });
    const report = { target: 't', ok: true, finishedAtMs: NOW, durationSeconds: 0, timings: { snapshotMs: 0, planMs: 0, executeMs: 0 }, snapshot: snapshot([s]), results: [{ decision: d!, outcome: 'terminated' as const }] };
    expect(auditRows(report, { replica: 'r', logQueryText: false })[0]).toMatchObject({ reason: 'xmin_age', seconds: 600, threshold_seconds: null, transactions: 5000, threshold_transactions: 1000 });
  });

  it('says why a session was not acted on', () => {
    const sessions = [reader(900), reader(50_000, true), session({ idleFor: 5 })];
    const compiled = policies({ maxXminAge: '1000' });
    const snap = snapshot(sessions);
    expect(explain(snap, compiled, 'pg-reaper', plan(snap, compiled, { target: 't', applicationName: 'pg-reaper' })).map((n) => n.why)).toEqual([
      'horizon: under threshold (holding back vacuum 900 transactions <= maxXminAge 1000 transactions)',
      'horizon: under threshold (maxXminAge: its snapshot is 50000 transactions old only because an older transaction still runs)',
      'horizon: under threshold (maxXminAge: holds no transaction id or snapshot)',
    ]);
  });

  it('takes a count: 100k, 10M, a number; not a duration, not zero, and not with action cancel', () => {
    expect(policies({ maxXminAge: '100k' })[0]!.thresholds.maxXminAge).toBe(100_000);
    expect(policies({ maxXminAge: '10M' })[0]!.thresholds.maxXminAge).toBe(10_000_000);
    expect(policies({ maxXminAge: 5000 })[0]!.thresholds.maxXminAge).toBe(5000);
    const problems = (value: string, extra = '') => {
      const r = parseConfigText(`targets: [{ name: t, host: db }]\npolicies:\n  - name: p\n    maxXminAge: ${value}\n${extra}`, 'c.yaml');
      return r.ok ? [] : r.problems.map((p) => `${p.line}:${p.col} ${p.path}: ${p.message}`);
    };
    expect(problems('10m')).toEqual(['4:17 policies[0].maxXminAge: expected a count like "10M" (a whole number, or with k, M or G for thousands, millions, billions) from 1 to 2G, got "10m"']);
    expect(problems('0')).toHaveLength(1);
    expect(problems('3G')).toHaveLength(1);
    expect(problems('10M', '    action: cancel\n')[0]).toMatch(/policies\[0\]\.action: action "cancel" only works with maxLockWait or maxQueryDuration, and no other threshold/);
  });

  it('a session the snapshot read without these facts (built by hand) is never acted on for xmin_age', () => {
    expect(run([session({ inTxFor: 5000 })])).toEqual([]);
  });
});
