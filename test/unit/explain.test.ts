import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { prettyLine } from '../../src/log/pretty.js';
import { explain } from '../../src/plan/explain.js';
import { plan } from '../../src/plan/planner.js';
import { compilePolicies } from '../../src/policy/compile.js';
import { NOW, session, snapshot } from '../helpers/sessions.js';

// "Why was this session not reaped?": the debug explanation, with a fixed clock.

const policiesOf = (policies: unknown[], extra: Record<string, unknown> = {}) =>
  compilePolicies(validateConfig({ targets: [{ name: 't', host: 'db' }], policies, ...extra }), 't');

function why(sessions: ReturnType<typeof session>[], policies: unknown[], extra: Record<string, unknown> = {}): string[] {
  const compiled = policiesOf(policies, extra);
  const snap = snapshot(sessions);
  return explain(snap, compiled, 'pg-reaper', plan(snap, compiled, { target: 't', applicationName: 'pg-reaper' })).map((n) => n.why);
}

describe('explain', () => {
  it('names what spared each session: visibility, which exempt entry, which match list, which threshold; our own connections are left out', () => {
    expect(
      why(
        [
          session({ idleFor: 60, backendStart: null, state: null }),
          session({ idleFor: 60, application: 'pg-reaper' }),
          session({ idleFor: 60, user: 'postgres' }),
          session({ idleFor: 60, database: 'other' }),
          session({ idleFor: 60, application: 'psql' }),
          session({ idleFor: 5 }),
          session({ activeFor: 5 }),
          session({ idleFor: 60, local: true, clientAddr: null }),
        ],
        [{ name: 'idle', maxIdle: '10s', maxConnectionAge: '1h', match: { databases: ['shop'] }, exempt: { applications: ['ps*'], clientAddresses: ['local'] } }],
        { exempt: { users: ['postgres'] } },
      ),
    ).toEqual([
      'not visible to our role (its state and times are hidden without pg_read_all_stats): never judged',
      'idle: exempt by global exempt.users "postgres"',
      'idle: out of scope (match.databases does not match "other")',
      'idle: exempt by exempt.applications "ps*"',
      'idle: under threshold (idle 5s <= maxIdle 10s, connected 6s <= maxConnectionAge 1h)',
      'idle: under threshold (maxIdle: not idle, connected 6s <= maxConnectionAge 1h)',
      'idle: exempt by exempt.clientAddresses "local"',
    ]);
  });

  it('lists every policy in order, and says when no policy applies', () => {
    expect(why([session({ idleFor: 5 })], [{ name: 'a', maxIdle: '10s' }, { name: 'b', maxQueryDuration: '1m', match: { users: ['etl'] } }])).toEqual([
      'a: under threshold (idle 5s <= maxIdle 10s); b: out of scope (match.users does not match "app")',
    ]);
    expect(why([session({ idleFor: 5 })], [{ name: 'a', maxIdle: '10s', targets: ['t'] }])).toHaveLength(1);
  });

  it('a session kept by keepIdle is explained by that policy alone: the walk ends there', () => {
    const newest = session({ application: 'web', idleFor: 90 });
    const older = session({ application: 'web', idleFor: 95 });
    expect(why([newest, older], [{ name: 'pools', maxIdle: '1m', keepIdle: 1 }, { name: 'catch-all', maxIdle: '30s' }])).toEqual([
      'pools: kept by keepIdle 1 (among the 1 most recently active idle sessions of its user, database and application); later policies do not judge it',
    ]);
  });

  it('a policy with only maxBlocking says why: blocks no one, a waiter itself, or blocking under the threshold', () => {
    const root = session({ inTxFor: 50 });
    const waiter = session({ activeFor: 10, blockedBy: [root.pid], waitStartMs: NOW - 10_000 });
    const alone = session({ idleFor: 60 });
    expect(why([root, waiter, alone], [{ name: 'locks', maxBlocking: '30s' }])).toEqual([
      'locks: under threshold (blocking 10s <= maxBlocking 30s)',
      'locks: under threshold (maxBlocking: waits on a lock itself (only the root of a chain is acted on))',
      'locks: under threshold (maxBlocking: blocks no one)',
    ]);
    // beside other thresholds, in the list like them
    expect(why([alone], [{ name: 'p', maxBlocking: '30s', maxIdle: '2m' }])).toEqual(['p: under threshold (maxBlocking: blocks no one, idle 1m <= maxIdle 2m)']);
  });
});

describe('pretty log lines', () => {
  it('one readable line per action, per run, and for anything else', () => {
    expect(
      prettyLine({ level: 'info', time: '2026-11-22T04:30:52.101Z', target: 'primary', policy: 'iit', reason: 'idle_in_transaction', action: 'terminate', outcome: 'terminated', pid: 3115, user: 'app', database: 'shop', application: 'report-job', clientAddr: '10.1.2.3', seconds: 132.4, thresholdSeconds: 120 }),
    ).toBe('04:30:52 terminated      pid 3115 app@shop (report-job, 10.1.2.3): idle_in_transaction 132.4s > 120s [primary/iit]');
    expect(prettyLine({ level: 'info', time: '2026-11-22T04:30:52.101Z', target: 'primary', result: 'success', durationSeconds: 0.012, sessions: 1, actions: { terminated: 1 }, msg: 'run finished' })).toBe(
      '04:30:52 run finished primary: 1 session, terminated 1 (12ms)',
    );
    expect(prettyLine({ level: 'error', time: '2026-11-22T04:30:52.101Z', target: 'down', error: 'connect ECONNREFUSED', msg: 'target is down' })).toBe('04:30:52 ERROR target is down  target=down error=connect ECONNREFUSED');
    expect(prettyLine({ level: 'info', msg: 'run finished', target: 'x', durationSeconds: 0 }, { runLines: false })).toBeUndefined();
  });
});
