import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import type { RoomLeft } from '../../src/plan/budget-room.js';
import { plan, type Decision } from '../../src/plan/planner.js';
import { compilePolicies } from '../../src/policy/compile.js';
import { BudgetLedger, budgetRules, type BudgetRules } from '../../src/run/budget.js';
import type { ActionResult, Outcome } from '../../src/run/outcome.js';
import { NOW, session, snapshot } from '../helpers/sessions.js';

// The budget with a fixed clock: the planner spends the room it is given oldest offender first,
// and the ledger keeps what was spent over a sliding window of the server's clock.

const config = (policies: unknown[], extra: Record<string, unknown> = {}) => validateConfig({ targets: [{ name: 't', host: 'db' }], policies, ...extra });
const run = (sessions: ReturnType<typeof session>[], policies: unknown[], budget: RoomLeft | undefined, extra: Record<string, unknown> = {}): Decision[] => {
  const c = config(policies, extra);
  return plan(snapshot(sessions), compilePolicies(c, 't'), { target: 't', applicationName: c.applicationName, maxActionsPerRun: c.maxActionsPerRun, budget });
};
const outcomeOf = (d: Decision): Outcome => (!d.session.canSignal ? 'denied' : d.overBudget ? 'skipped_budget' : d.capped ? 'skipped_cap' : d.dryRun ? 'would_terminate' : 'terminated');
const results = (ds: Decision[]): ActionResult[] => ds.filter((d) => !d.held).map((d) => ({ decision: d, outcome: outcomeOf(d) }));
const idle = (n: number, from = 100) => Array.from({ length: n }, (_, i) => session({ idleFor: from + n - i }));
const MIN = 60_000;

describe('the planner spends the budget it is given', () => {
  it('oldest offenders first; the rest are over the target budget', () => {
    const sessions = idle(12);
    const ds = run(sessions, [{ name: 'idle', maxIdle: '1s' }], { target: 5 });
    expect(ds.map((d) => d.session.pid)).toEqual(sessions.map((s) => s.pid));
    expect(ds.map((d) => d.overBudget ?? 'ok')).toEqual([...Array(5).fill('ok'), ...Array(7).fill('target')]);
  });

  it('a policy budget binds that policy only; the target budget binds all', () => {
    const a = idle(4, 1000).map((s) => ({ ...s, application: 'a' }));
    const b = idle(4, 100).map((s) => ({ ...s, application: 'b' }));
    const policies = [
      { name: 'a', maxIdle: '1s', match: { applications: ['a'] } },
      { name: 'b', maxIdle: '1s', match: { applications: ['b'] } },
    ];
    const ds = run([...a, ...b], policies, { target: 5, policies: new Map([['a', 2]]) });
    expect(ds.map((d) => [d.policy, d.overBudget ?? 'ok'])).toEqual([
      ['a', 'ok'],
      ['a', 'ok'],
      ['a', 'policy'],
      ['a', 'policy'],
      ['b', 'ok'],
      ['b', 'ok'],
      ['b', 'ok'],
      ['b', 'target'],
    ]);
  });

  it('a decision over budget takes no cap slot, and one over a cap uses no budget', () => {
    const a = idle(4, 1000).map((s) => ({ ...s, application: 'a' }));
    const b = idle(3, 100).map((s) => ({ ...s, application: 'b' }));
    const policies = [
      { name: 'a', maxIdle: '1s', match: { applications: ['a'] }, maxActionsPerRun: 1 },
      { name: 'b', maxIdle: '1s', match: { applications: ['b'] } },
    ];
    // a: 1 acts, 3 capped (using no budget); b: 2 act (budget 3), 1 over budget; the target cap of 4 is not reached by the over-budget one
    const ds = run([...a, ...b], policies, { target: 3 }, { maxActionsPerRun: 4 });
    expect(ds.map(outcomeOf)).toEqual(['terminated', 'skipped_cap', 'skipped_cap', 'skipped_cap', 'terminated', 'terminated', 'skipped_budget']);
    // the policy budget over the policy cap: over budget first, and those take no slot of the target cap
    const ds2 = run([...a, ...b], [{ ...policies[0], maxActionsPerRun: undefined }, policies[1]], { policies: new Map([['a', 1]]) }, { maxActionsPerRun: 3 });
    expect(ds2.map(outcomeOf)).toEqual(['terminated', 'skipped_budget', 'skipped_budget', 'skipped_budget', 'terminated', 'terminated', 'skipped_cap']);
  });

  it('dry-run decisions use no budget and are never over it', () => {
    const ds = run(idle(3), [{ name: 'idle', maxIdle: '1s' }], { target: 0 }, { dryRun: true });
    expect(ds.map(outcomeOf)).toEqual(['would_terminate', 'would_terminate', 'would_terminate']);
  });

  it('sessions we may not signal use no budget', () => {
    const su = session({ idleFor: 900, canSignal: false, superuser: true });
    const ds = run([su, ...idle(2)], [{ name: 'idle', maxIdle: '1s' }], { target: 1 });
    expect(ds.map(outcomeOf)).toEqual(['denied', 'terminated', 'skipped_budget']);
  });

  it('no room from a budget lowered by a reload (negative room) refuses everything', () => {
    expect(run(idle(2), [{ name: 'idle', maxIdle: '1s' }], { target: -3 }).map(outcomeOf)).toEqual(['skipped_budget', 'skipped_budget']);
  });

  it('a decision over budget is not counted as a freed slot for when.connectionsAbove, and held matches use no budget', () => {
    // 12 idle + 1 batch + our own = 14 connections; the pressure policy wants 10 or fewer
    const sessions = idle(12);
    const batch = session({ idleFor: 5000, application: 'batch' });
    const policies = [
      { name: 'batch', maxIdle: '1h', match: { applications: ['batch'] }, budget: { maxActions: 1, window: '1m' } },
      { name: 'pressure', maxIdle: '1s', when: { connectionsAbove: 10 } },
    ];
    // the batch session is over its policy's budget: it frees nothing, so pressure terminates 4
    const over = run([...sessions, batch], policies, { policies: new Map([['batch', 0]]) });
    expect(over.find((d) => d.policy === 'batch')!.overBudget).toBe('policy');
    expect(over.filter((d) => d.policy === 'pressure' && !d.held && !d.overBudget)).toHaveLength(4);
    // with room for it, the batch termination counts and pressure terminates 3
    const room = run([...sessions, batch], policies, { policies: new Map([['batch', 1]]) });
    expect(room.filter((d) => d.policy === 'pressure' && !d.held)).toHaveLength(3);
    // a target budget of 4: the batch one and 3 pressure ones; the 9 held matches use none of it
    const tight = run([...sessions, batch], policies, { target: 4, policies: new Map([['batch', 1]]) });
    expect(tight.filter((d) => d.held)).toHaveLength(9);
    expect(tight.filter((d) => d.overBudget)).toHaveLength(0);
  });
});

describe('the ledger over a sliding window of the server clock', () => {
  const rules = (target: { maxActions: number; window: number } | null, policies: [string, { maxActions: number; window: number }][] = []): BudgetRules => ({ target, policies: new Map(policies) });
  const c = config([{ name: 'idle', maxIdle: '1s' }]);
  const policies = compilePolicies(c, 't');
  // one run of the real planner at `now`, with the ledger's room, settled with the given outcome for what acted
  const runAt = (ledger: BudgetLedger, r: BudgetRules, now: number, sessions = idle(12), spent: Outcome = 'terminated') => {
    const ds = plan({ ...snapshot(sessions), nowMs: now }, policies, { target: 't', applicationName: 'pg-reaper', budget: ledger.room(now, r) });
    const res = results(ds).map((x) => (x.outcome === 'terminated' ? { ...x, outcome: spent } : x));
    return { res, states: ledger.settle(now, r, res) };
  };
  const count = (res: ActionResult[], o: Outcome) => res.filter((x) => x.outcome === o).length;

  it('12 idle victims under { maxActions: 5, window: 1m }: 5 acted, 7 skipped_budget, exhausted once; after the window, the next 5', () => {
    const ledger = new BudgetLedger();
    const r = rules({ maxActions: 5, window: MIN });
    let sessions = idle(12);
    const first = runAt(ledger, r, NOW, sessions);
    expect([count(first.res, 'terminated'), count(first.res, 'skipped_budget')]).toEqual([5, 7]);
    expect(first.states).toEqual([{ policy: '', maxActions: 5, windowMs: MIN, used: 5, skipped: 7, exhausted: true, change: 'tripped', freesInMs: MIN }]);
    sessions = sessions.slice(5);

    // 30 s later: still no room; still exhausted, no new change to log
    const again = runAt(ledger, r, NOW + 30_000, sessions);
    expect(count(again.res, 'skipped_budget')).toBe(7);
    expect(again.states[0]).toMatchObject({ used: 5, skipped: 7, exhausted: true, freesInMs: 30_000 });
    expect(again.states[0]!.change).toBeUndefined();
    // a run with nothing to refuse while the window is still full: still exhausted
    const idleRun = runAt(ledger, r, NOW + 40_000, []);
    expect(idleRun.states[0]).toMatchObject({ used: 5, skipped: 0, exhausted: true, freesInMs: 20_000 });
    expect(idleRun.states[0]!.change).toBeUndefined();

    // exactly one window after: the first five have left it (an action counts while less than a window ago)
    const later = runAt(ledger, r, NOW + MIN, sessions);
    expect([count(later.res, 'terminated'), count(later.res, 'skipped_budget')]).toEqual([5, 2]);
    expect(later.states[0]).toMatchObject({ used: 5, skipped: 2, exhausted: true });
    expect(later.states[0]!.change).toBeUndefined();
    sessions = sessions.slice(5);

    // another window: the last 2 go, room is left, the budget resets (logged once)
    const last = runAt(ledger, r, NOW + 2 * MIN, sessions);
    expect(count(last.res, 'terminated')).toBe(2);
    expect(last.states[0]).toEqual({ policy: '', maxActions: 5, windowMs: MIN, used: 2, skipped: 0, exhausted: false, change: 'reset' });
    const quiet = runAt(ledger, r, NOW + 2 * MIN + 1000, []);
    expect(quiet.states[0]!.change).toBeUndefined();
  });

  it('the window slides: room comes back one action at a time as each leaves it', () => {
    const ledger = new BudgetLedger();
    const r = rules({ maxActions: 3, window: MIN });
    const s = idle(1);
    for (const at of [0, 10_000, 20_000]) expect(count(runAt(ledger, r, NOW + at, s).res, 'terminated')).toBe(1);
    expect(ledger.room(NOW + 59_999, r).target).toBe(0);
    expect(ledger.room(NOW + 60_000, r).target).toBe(1);
    expect(ledger.room(NOW + 70_000, r).target).toBe(2);
    expect(ledger.room(NOW + 80_000, r).target).toBe(3);
  });

  it('what uses budget: terminated, signalled and cancelled; not skipped_changed, failed, denied or dry runs', () => {
    for (const [outcome, used] of [['terminated', 1], ['signalled', 1], ['cancelled', 1], ['skipped_changed', 0], ['failed', 0]] as const) {
      const ledger = new BudgetLedger();
      const r = rules({ maxActions: 5, window: MIN });
      runAt(ledger, r, NOW, idle(1), outcome);
      expect([outcome, ledger.room(NOW, r).target]).toEqual([outcome, 5 - used]);
    }
    const ledger = new BudgetLedger();
    const r = rules({ maxActions: 5, window: MIN });
    const dry = compilePolicies(config([{ name: 'idle', maxIdle: '1s' }], { dryRun: true }), 't');
    const ds = plan(snapshot(idle(3)), dry, { target: 't', applicationName: 'pg-reaper', budget: ledger.room(NOW, r) });
    ledger.settle(NOW, r, results(ds));
    expect(ledger.room(NOW, r).target).toBe(5);
  });

  it('a policy budget beside the target budget: each trips on its own, with its policy label', () => {
    const ledger = new BudgetLedger();
    const r = rules({ maxActions: 100, window: 10 * MIN }, [['idle', { maxActions: 2, window: MIN }]]);
    const first = runAt(ledger, r, NOW, idle(5));
    expect(count(first.res, 'terminated')).toBe(2);
    expect(first.states).toEqual([
      { policy: '', maxActions: 100, windowMs: 10 * MIN, used: 2, skipped: 0, exhausted: false },
      { policy: 'idle', maxActions: 2, windowMs: MIN, used: 2, skipped: 3, exhausted: true, change: 'tripped', freesInMs: MIN },
    ]);
    expect(ledger.room(NOW + MIN, r)).toEqual({ target: 98, policies: new Map([['idle', 2]]) });
  });

  it('budget off: no room limit, nothing kept', () => {
    const ledger = new BudgetLedger();
    const r = rules(null);
    const { res, states } = runAt(ledger, r, NOW, idle(12));
    expect(count(res, 'terminated')).toBe(12);
    expect(states).toEqual([]);
    expect(ledger.room(NOW, r)).toEqual({ policies: new Map() });
  });

  it('a budget removed by a reload is forgotten: added back, it starts empty', () => {
    const ledger = new BudgetLedger();
    const on = rules({ maxActions: 2, window: MIN });
    runAt(ledger, on, NOW, idle(3));
    expect(ledger.room(NOW, on).target).toBe(0);
    runAt(ledger, rules(null), NOW + 1000, []);
    expect(ledger.room(NOW + 2000, on).target).toBe(2);
  });

  it('budgetRules takes the policies that have a budget of their own', () => {
    const cfg = config([{ name: 'a', maxIdle: '1s', budget: { maxActions: 3, window: '1m' } }, { name: 'b', maxIdle: '1s', budget: 'off' }, { name: 'c', maxIdle: '1s' }]);
    expect(budgetRules(cfg.budget, compilePolicies(cfg, 't'))).toEqual({ target: { maxActions: 100, window: 600_000 }, policies: new Map([['a', { maxActions: 3, window: MIN }]]) });
  });
});
