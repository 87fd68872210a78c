import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readSnapshot } from '../../src/db/snapshot.js';
import { openTarget } from '../../src/db/target.js';
import { snapshotFilter } from '../../src/plan/filter.js';
import { plan } from '../../src/plan/planner.js';
import { PROTECT_ALL } from '../../src/plan/protect.js';
import { compilePolicies } from '../../src/policy/compile.js';
import { REASONS } from '../../src/reasons/table.js';
import { ensureReaperRole, ensureRole, Sessions, testConfig, unique } from '../helpers/pg.js';

// The server sends as rows only the sessions a policy could act on and counts the rest: the
// counts must be those of every session, and the decisions those made from every row.

const s = new Sessions();
let reaper: string;
let app: string;
beforeAll(async () => {
  await s.start();
  reaper = await ensureReaperRole(s.admin);
  app = await ensureRole(s.admin, 'app_t');
});
afterEach(() => s.closeAll());
afterAll(() => s.end());

describe('the snapshot filter', () => {
  it('sends only sessions past a threshold, counts every session, and plans the same decisions as from every row', async () => {
    const tag = unique('t-filter');
    const old = [];
    for (let i = 0; i < 3; i++) old.push(await s.session({ user: app, application: `${tag}-old` }));
    const tx = await s.session({ user: app, application: `${tag}-tx` });
    await tx.client.query('BEGIN');
    for (const x of [...old, tx]) await s.agedOver(x.pid, 700);
    const young = [];
    for (let i = 0; i < 4; i++) young.push(await s.session({ user: app, application: `${tag}-young` }));
    const config = testConfig({ policies: [{ name: 'idle', maxIdle: '600ms', match: { applications: [`${tag}-*`] } }, { name: 'tx', maxIdleInTransaction: '600ms' }] }, reaper);
    const policies = compilePolicies(config, 'main');
    const db = openTarget(config.targets[0]!, { applicationName: config.applicationName });
    try {
      const full = await readSnapshot(db, { withQuery: false });
      const filtered = await readSnapshot(db, { withQuery: false, filter: snapshotFilter(policies, PROTECT_ALL) });
      const pids = (snap: typeof full) => new Set(snap.sessions.map((x) => x.pid));
      expect(full.complete).toBe(true);
      expect(filtered.complete).toBe(false);
      for (const y of young) {
        expect(pids(full).has(y.pid)).toBe(true);
        expect(pids(filtered).has(y.pid)).toBe(false); // under every threshold: only counted
      }
      for (const x of [...old, tx]) expect(pids(filtered).has(x.pid)).toBe(true);
      // the counts are of every session either way
      expect(filtered.clients).toBe(full.clients);
      const count = (snap: typeof full, state: string) => snap.states.find((x) => x.state === state)?.count;
      expect(count(filtered, 'idle')).toBe(count(full, 'idle'));
      expect(count(filtered, 'idle')).toBeGreaterThanOrEqual(7);
      expect(count(filtered, 'idle in transaction')).toBe(count(full, 'idle in transaction'));
      const limits = { target: 'main', applicationName: config.applicationName };
      const decided = (snap: typeof full) => plan(snap, policies, limits).map((d) => [d.session.pid, d.policy, d.reason]).sort();
      expect(decided(filtered)).toEqual(decided(full));
      expect(decided(filtered)).toHaveLength(4);
    } finally {
      await db.close();
    }
  });

  it('sends every idle session when a policy keeps pools, and lock waiters with their blockers when one has maxBlocking', () => {
    const policies = compilePolicies(testConfig({ policies: [{ name: 'a', maxIdle: '10m', keepIdle: 2 }, { name: 'b', maxIdle: '5m', maxQueryDuration: '1h', maxBlocking: '30s' }] }), 'main');
    const byReason = (f: ReturnType<typeof snapshotFilter>) => Object.fromEntries(REASONS.map((r, i) => [r, f.thresholds[i]]));
    const f = snapshotFilter(policies, { backups: false, maintenance: true });
    expect(byReason(f)).toMatchObject({ blocking: 30_000, idle: 300_000, idle_in_transaction: null, query_duration: 3_600_000, transaction_duration: null, connection_age: null });
    expect(f).toMatchObject({ allIdle: true, backupNames: [], backupPrefixes: [] });
    const plain = snapshotFilter(compilePolicies(testConfig({ policies: [{ name: 'a', maxIdle: '10m' }] }), 'main'), PROTECT_ALL);
    expect(plain).toMatchObject({ allIdle: false, backupNames: expect.arrayContaining(['pg_dump']), backupPrefixes: expect.arrayContaining(['pgBackRest [']) });
    expect(byReason(plain)).toMatchObject({ blocking: null, idle: 600_000 });
  });

  it('asks for the parts of the statement the policies and settings read, and no others', () => {
    const parts = (policies: Record<string, unknown>[], protect = PROTECT_ALL, exemptListeners?: boolean) => snapshotFilter(compilePolicies(testConfig({ policies }), 'main'), protect, exemptListeners).parts;
    // lock graph with maxBlocking or maxLockWait; listeners with a reason exemptListeners spares
    // (idle, connection_age); maintenance with protect.maintenance; older transactions with maxXminAge
    expect(parts([{ name: 'a', maxIdle: '1h' }])).toEqual({ lockGraph: false, listeners: true, maintenance: true, olderTransaction: false });
    expect(parts([{ name: 'a', maxIdle: '1h' }], PROTECT_ALL, false)).toMatchObject({ listeners: false });
    expect(parts([{ name: 'a', maxConnectionAge: '1h' }])).toMatchObject({ listeners: true });
    expect(parts([{ name: 'a', maxQueryDuration: '1h', action: 'cancel' }, { name: 'b', maxIdleInTransaction: '1m' }])).toEqual({ lockGraph: false, listeners: false, maintenance: true, olderTransaction: false });
    expect(parts([{ name: 'a', maxBlocking: '1m' }])).toMatchObject({ lockGraph: true, listeners: false });
    expect(parts([{ name: 'a', maxLockWait: '1m', action: 'cancel' }])).toMatchObject({ lockGraph: true });
    expect(parts([{ name: 'a', maxXminAge: '10M' }])).toMatchObject({ lockGraph: false, olderTransaction: true });
    expect(parts([{ name: 'a', maxIdle: '1h' }], { backups: true, maintenance: false })).toMatchObject({ maintenance: false });
  });
});
