import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { plan, violation, type Decision } from '../../src/plan/planner.js';
import { compilePolicies } from '../../src/policy/compile.js';
import { NOW, session, snapshot } from '../helpers/sessions.js';

// The planner with a fixed server clock: which sessions, for which reason, by which policy, in
// which order, and what the caps leave.

const config = (policies: unknown[], extra: Record<string, unknown> = {}) =>
  validateConfig({ targets: [{ name: 't', host: 'db' }, { name: 'other', host: 'db2' }], policies, ...extra });

const run = (sessions: ReturnType<typeof session>[], policies: unknown[], extra: Record<string, unknown> = {}, target = 't'): Decision[] => {
  const c = config(policies, extra);
  return plan(snapshot(sessions), compilePolicies(c, target), { target, applicationName: c.applicationName, maxActionsPerRun: c.maxActionsPerRun });
};
const pids = (ds: Decision[]) => ds.map((d) => d.session.pid);

describe('thresholds', () => {
  it('idle: strictly over maxIdle, measured from state_change', () => {
    const over = session({ idleFor: 601 });
    const exact = session({ idleFor: 600 });
    const under = session({ idleFor: 599 });
    const ds = run([over, exact, under], [{ name: 'p', maxIdle: '10m' }]);
    expect(pids(ds)).toEqual([over.pid]);
    expect(ds[0]).toMatchObject({ target: 't', policy: 'p', reason: 'idle', action: 'terminate', dryRun: false, age: 601, threshold: 600, seconds: 601, capped: false });
  });

  it('idle in transaction and aborted use maxIdleInTransaction, not maxIdle', () => {
    const tx = session({ inTxFor: 130 });
    const aborted = session({ inTxFor: 130, state: 'idle in transaction (aborted)' });
    const idle = session({ idleFor: 130 });
    const ds = run([tx, aborted, idle], [{ name: 'p', maxIdle: '1h', maxIdleInTransaction: '2m' }]);
    expect(ds.map((d) => [d.session.pid, d.reason])).toEqual([
      [tx.pid, 'idle_in_transaction'],
      [aborted.pid, 'idle_in_transaction'],
    ]);
  });

  it('maxIdle does not apply to idle-in-transaction sessions, nor maxIdleInTransaction to idle ones', () => {
    expect(run([session({ inTxFor: 9999 })], [{ name: 'p', maxIdle: '1s' }])).toEqual([]);
    expect(run([session({ idleFor: 9999 })], [{ name: 'p', maxIdleInTransaction: '1s' }])).toEqual([]);
  });

  it('query duration only for active sessions, measured from query_start', () => {
    const active = session({ activeFor: 901 });
    const idle = session({ idleFor: 5000 });
    const ds = run([active, idle], [{ name: 'p', maxQueryDuration: '15m' }]);
    expect(ds.map((d) => [d.session.pid, d.reason, d.seconds])).toEqual([[active.pid, 'query_duration', 901]]);
  });

  it('transaction duration from xact_start, in any state', () => {
    const activeLongTx = session({ activeFor: 10, xactFor: 3700 });
    const shortTx = session({ activeFor: 10, xactFor: 100 });
    const ds = run([activeLongTx, shortTx], [{ name: 'p', maxTransactionDuration: '1h' }]);
    expect(ds.map((d) => [d.session.pid, d.reason])).toEqual([[activeLongTx.pid, 'transaction_duration']]);
  });

  it('connection age from backend_start', () => {
    const old = session({ idleFor: 1, connectedFor: 13 * 3600 });
    const young = session({ idleFor: 1, connectedFor: 3600 });
    const ds = run([old, young], [{ name: 'p', maxConnectionAge: '12h' }]);
    expect(ds.map((d) => [d.session.pid, d.reason])).toEqual([[old.pid, 'connection_age']]);
  });

  it('reports the first reason that holds, in the documented order', () => {
    const t = { maxIdle: 10_000, maxIdleInTransaction: 10_000, maxQueryDuration: 10_000, maxTransactionDuration: 10_000, maxConnectionAge: 10_000 };
    expect(violation(session({ idleFor: 20, connectedFor: 99 }), t, NOW)?.reason).toBe('idle');
    expect(violation(session({ inTxFor: 20, xactFor: 50, connectedFor: 99 }), t, NOW)?.reason).toBe('idle_in_transaction');
    expect(violation(session({ activeFor: 20, xactFor: 50, connectedFor: 99 }), t, NOW)?.reason).toBe('query_duration');
    expect(violation(session({ activeFor: 5, xactFor: 50, connectedFor: 99 }), t, NOW)?.reason).toBe('transaction_duration');
    expect(violation(session({ idleFor: 5, connectedFor: 99 }), t, NOW)?.reason).toBe('connection_age');
    expect(violation(session({ idleFor: 5, connectedFor: 9 }), t, NOW)).toBeUndefined();
  });

  it('ignores states it has no threshold for and sessions it cannot see', () => {
    const fastpath = session({ state: 'fastpath function call', idleFor: 9999 });
    const hidden = session({ idleFor: 9999, state: null, backendStart: null, backendStartMs: null, stateChangeMs: null, xactStartMs: null, queryStartMs: null });
    expect(run([fastpath, hidden], [{ name: 'p', maxIdle: '1s', maxQueryDuration: '1s', maxIdleInTransaction: '1s' }])).toEqual([]);
  });
});

describe('scope', () => {
  const idle = (o: Parameters<typeof session>[0] = {}) => session({ idleFor: 100, ...o });
  const policy = (extra: Record<string, unknown>) => [{ name: 'p', maxIdle: '1m', ...extra }];

  it('every non-empty match list must match', () => {
    const both = idle({ user: 'app_web', database: 'shop' });
    const wrongDb = idle({ user: 'app_web', database: 'crm' });
    const wrongUser = idle({ user: 'admin', database: 'shop' });
    expect(pids(run([both, wrongDb, wrongUser], policy({ match: { users: ['app_*'], databases: ['shop'] } })))).toEqual([both.pid]);
  });

  it('any exempt list that matches spares the session', () => {
    const spared = [idle({ user: 'etl' }), idle({ database: 'warehouse' }), idle({ application: 'pg_dump-nightly' }), idle({ clientAddr: '192.168.0.5' })];
    const hit = idle();
    const ds = run([...spared, hit], policy({ exempt: { users: ['etl'], databases: ['warehouse'], applications: ['pg_dump*'], clientAddresses: ['192.168.0.0/16'] } }));
    expect(pids(ds)).toEqual([hit.pid]);
  });

  it('global exempt applies to every policy', () => {
    const pgDump = idle({ application: 'pg_dump' });
    const postgres = idle({ user: 'postgres' });
    const hit = idle();
    const ds = run([pgDump, postgres, hit], [{ name: 'a', maxIdle: '1m' }, { name: 'b', maxConnectionAge: '1s' }], { exempt: { users: ['postgres'], applications: ['pg_dump*'] } });
    expect(pids(ds)).toEqual([hit.pid]);
  });

  it('globs are whole-string and case-sensitive; ? is one character', () => {
    const sessions = ['web', 'web-1', 'web-12', 'Web-1', 'my-web-1'].map((application) => idle({ application }));
    const ds = run(sessions, policy({ match: { applications: ['web-?'] } }));
    expect(ds.map((d) => d.session.application)).toEqual(['web-1']);
  });

  it('clientAddresses: local means a Unix socket; CIDRs match IPv4 and IPv6', () => {
    const local = idle({ clientAddr: null, local: true });
    const v4 = idle({ clientAddr: '10.9.8.7' });
    const v6 = idle({ clientAddr: 'fd00::1' });
    const other = idle({ clientAddr: '8.8.8.8' });
    expect(pids(run([local, v4, v6, other], policy({ match: { clientAddresses: ['local'] } })))).toEqual([local.pid]);
    expect(pids(run([local, v4, v6, other], policy({ match: { clientAddresses: ['10.0.0.0/8', 'fd00::/8'] } })))).toEqual([v4.pid, v6.pid]);
  });

  it('a policy limited to other targets does not apply', () => {
    const s = idle();
    expect(run([s], policy({ targets: ['other'] }))).toEqual([]);
    expect(pids(run([s], policy({ targets: ['other'] }), {}, 'other'))).toEqual([s.pid]);
  });

  it('never plans our own sessions, from any replica', () => {
    const ours = idle({ application: 'pg-reaper' });
    const replica = idle({ application: 'reaper-b' });
    expect(run([ours], policy({}))).toEqual([]);
    expect(pids(run([ours, replica], policy({}), { applicationName: 'reaper-b' }))).toEqual([ours.pid]);
  });
});

describe('policies, order and caps', () => {
  it('the first policy in file order that matches acts, once per session', () => {
    const s = session({ idleFor: 100 });
    const ds = run([s], [{ name: 'first', maxIdle: '1m', action: 'terminate' }, { name: 'second', maxIdle: '1s' }]);
    expect(ds.map((d) => d.policy)).toEqual(['first']);
  });

  it('a policy whose thresholds do not hold lets a later one act', () => {
    const s = session({ idleFor: 100 });
    const ds = run([s], [{ name: 'strict', maxIdle: '1h' }, { name: 'loose', maxIdle: '1m' }]);
    expect(ds.map((d) => d.policy)).toEqual(['loose']);
  });

  it('cancel policies produce cancel decisions', () => {
    const q = session({ activeFor: 100 });
    expect(run([q], [{ name: 'p', maxQueryDuration: '1m', action: 'cancel' }])[0]).toMatchObject({ action: 'cancel', reason: 'query_duration' });
  });

  it('dry run: global wins over the policy; a policy can be dry on its own', () => {
    const s = session({ idleFor: 100 });
    expect(run([s], [{ name: 'p', maxIdle: '1m', dryRun: false }], { dryRun: true })[0]!.dryRun).toBe(true);
    expect(run([s], [{ name: 'p', maxIdle: '1m', dryRun: true }])[0]!.dryRun).toBe(true);
    expect(run([s], [{ name: 'p', maxIdle: '1m' }])[0]!.dryRun).toBe(false);
  });

  it('orders decisions oldest first (pid breaks ties)', () => {
    const a = session({ idleFor: 100 });
    const b = session({ idleFor: 300 });
    const c = session({ idleFor: 200 });
    const d = session({ idleFor: 200 });
    expect(pids(run([a, b, c, d], [{ name: 'p', maxIdle: '1m' }]))).toEqual([b.pid, c.pid, d.pid, a.pid]);
  });

  it('the policy cap keeps the oldest', () => {
    const s = [100, 400, 200, 300].map((idleFor) => session({ idleFor }));
    const ds = run(s, [{ name: 'p', maxIdle: '1m', maxActionsPerRun: 2 }]);
    expect(ds.map((d) => [d.seconds, d.capped])).toEqual([
      [400, false],
      [300, false],
      [200, true],
      [100, true],
    ]);
  });

  it('the target cap counts across policies', () => {
    const idle = [500, 100].map((idleFor) => session({ idleFor }));
    const tx = [300].map((inTxFor) => session({ inTxFor }));
    const ds = run([...idle, ...tx], [{ name: 'idle', maxIdle: '1m' }, { name: 'tx', maxIdleInTransaction: '1m' }], { maxActionsPerRun: 2 });
    expect(ds.map((d) => [d.policy, d.seconds, d.capped])).toEqual([
      ['idle', 500, false],
      ['tx', 300, false],
      ['idle', 100, true],
    ]);
  });

  it('sessions we may not signal take no cap slot', () => {
    const su = session({ idleFor: 900, superuser: true, canSignal: false });
    const a = session({ idleFor: 500 });
    const b = session({ idleFor: 400 });
    const ds = run([su, a, b], [{ name: 'p', maxIdle: '1m', maxActionsPerRun: 1 }]);
    expect(ds.map((d) => [d.session.pid, d.capped])).toEqual([
      [su.pid, false],
      [a.pid, false],
      [b.pid, true],
    ]);
  });

  it('dry-run decisions count against caps, so the dry run shows what would happen', () => {
    const s = [300, 200].map((idleFor) => session({ idleFor }));
    const ds = run(s, [{ name: 'p', maxIdle: '1m', maxActionsPerRun: 1 }], { dryRun: true });
    expect(ds.map((d) => d.capped)).toEqual([false, true]);
  });

  it('an empty snapshot plans nothing', () => {
    expect(run([], [{ name: 'p', maxIdle: '1m' }])).toEqual([]);
  });
});

describe('scope index', () => {
  // The planner looks scope up in per-plan bitmasks; CompiledPolicy.inScope is the plain
  // definition. Both must agree on every session, policy and exemption.
  it('agrees with inScope on random sessions and policies (seeded)', () => {
    let seed = 1234;
    const rand = (n: number) => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) % n);
    const pick = <T>(xs: readonly T[]) => xs[rand(xs.length)]!;
    const users = ['app_a', 'app_b', 'etl', 'admin', null];
    const dbs = ['shop', 'crm', 'warehouse', null];
    const apps = ['web-1', 'web-22', 'pg_dumper', 'worker', ''];
    const addrs: [string | null, boolean][] = [['10.1.2.3', false], ['10.9.9.9', false], ['192.168.1.5', false], ['fd00::7', false], [null, true], [null, false]];
    const lists = {
      users: [[], ['app_*'], ['etl', 'admin'], ['app_?']],
      databases: [[], ['shop'], ['c*', 'warehouse']],
      applications: [[], ['web-?'], ['pg_dump*', 'worker'], ['*-1']],
      clientAddresses: [[], ['10.0.0.0/8'], ['local'], ['fd00::/8', '192.168.0.0/16']],
    };
    const selector = () => ({ users: pick(lists.users), databases: pick(lists.databases), applications: pick(lists.applications), clientAddresses: pick(lists.clientAddresses) });
    for (let round = 0; round < 20; round++) {
      const policies = Array.from({ length: 1 + rand(12) }, (_, i) => ({ name: `p${i}`, maxIdle: `${1 + rand(100)}s`, maxConnectionAge: `${1 + rand(400)}s`, match: selector(), exempt: selector() }));
      const c = config(policies, { exempt: selector() });
      const compiled = compilePolicies(c, 't');
      const sessions = Array.from({ length: 200 }, () => {
        const [clientAddr, local] = pick(addrs);
        return session({ idleFor: rand(200), connectedFor: 200 + rand(300), user: pick(users), database: pick(dbs), application: pick(apps), clientAddr, local });
      });
      const got = plan(snapshot(sessions), compiled, { target: 't', applicationName: 'pg-reaper' });
      const expected = sessions.flatMap((s) => {
        const p = compiled.find((p) => violation(s, p.thresholds, NOW) !== undefined && p.inScope(s));
        return p ? [[s.pid, p.name]] : [];
      });
      expect(got.map((d) => [d.session.pid, d.policy]).sort()).toEqual(expected.sort());
    }
  });

  it('more policies than the index holds still plan by the same rules', () => {
    const s = session({ idleFor: 100, user: 'late' });
    const policies = Array.from({ length: 40 }, (_, i) => ({ name: `p${i}`, maxIdle: '1m', match: { users: [i === 35 ? 'late' : `u${i}`] } }));
    expect(run([s], policies).map((d) => d.policy)).toEqual(['p35']);
    expect(run([session({ idleFor: 100, user: 'nobody' })], policies)).toEqual([]);
  });
});
