import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { explain } from '../../src/plan/explain.js';
import { plan, type Decision } from '../../src/plan/planner.js';
import { backupTool, protectedCounts, protectionSummary, type Protect } from '../../src/plan/protect.js';
import { compilePolicies } from '../../src/policy/compile.js';
import { session, snapshot } from '../helpers/sessions.js';

// Backups and maintenance are protected by default: no policy acts on them, whatever its
// thresholds. Fixed clock, fixed snapshots; the server's side (which statement is maintenance) is
// tested on a real server in test/integration/protect.test.ts.

const run = (sessions: ReturnType<typeof session>[], policies: unknown[], extra: Record<string, unknown> = {}): Decision[] => {
  const c = validateConfig({ targets: [{ name: 't', host: 'db' }], policies, ...extra });
  return plan(snapshot(sessions), compilePolicies(c, 't'), { target: 't', applicationName: c.applicationName, protect: c.protect });
};
const everything = [{ name: 'all', maxIdle: '1s', maxIdleInTransaction: '1s', maxQueryDuration: '1s', maxTransactionDuration: '1s', maxConnectionAge: '1s' }];

describe('backup tools, by the application_name they send', () => {
  it.each([
    ['pg_dump', 'pg_dump'],
    ['pg_dumpall', 'pg_dumpall'],
    ['pg_restore', 'pg_restore'],
    ['pg_basebackup', 'pg_basebackup'],
    ['pgBackRest [backup]', 'pgBackRest'],
    ['pgBackRest [check]', 'pgBackRest'],
    ['barman', 'barman'],
    ['barman_receive_wal', 'barman'],
    ['barman_streaming_backup', 'barman'],
    ['barman_cloud_backup', 'barman'],
    ['wal-g', 'WAL-G'],
    ['pgcopydb[31337] copy supervisor', 'pgcopydb'],
  ])('%s is %s', (application, tool) => {
    expect(backupTool(application)).toBe(tool);
  });

  it.each(['', 'psql', 'PG_DUMP', 'pg_dump2', 'my pg_dump', 'pgbackrest [backup]', 'pgBackRest', 'Barman', 'walg', 'WAL-G', 'pgcopydb', 'web'])('%j is not', (application) => {
    expect(backupTool(application)).toBeUndefined();
  });
});

describe('protection in the planner', () => {
  it('no policy acts on a backup, whatever its thresholds; a control session beside it is acted on', () => {
    const dump = session({ activeFor: 3600, xactFor: 3600, application: 'pg_dump' });
    const dumpIdleInTx = session({ inTxFor: 600, application: 'pgBackRest [backup]' });
    const control = session({ activeFor: 3600, xactFor: 3600, application: 'web' });
    expect(run([dump, dumpIdleInTx, control], everything).map((d) => d.session.pid)).toEqual([control.pid]);
  });

  it('no policy acts on maintenance running now (as the server recognised it)', () => {
    const cic = session({ activeFor: 900, maintenance: 'CREATE INDEX CONCURRENTLY' });
    const repack = session({ inTxFor: 900, application: 'pg_repack', maintenance: 'pg_repack' });
    const control = session({ activeFor: 900 });
    expect(run([cic, repack, control], everything).map((d) => d.session.pid)).toEqual([control.pid]);
  });

  it('each protection can be turned off on its own', () => {
    const dump = session({ activeFor: 3600, application: 'pg_dump' });
    const vacuum = session({ activeFor: 3600, maintenance: 'VACUUM' });
    const acted = (protect: Protect) => run([dump, vacuum], everything, { protect }).map((d) => d.session.pid);
    expect(acted({ backups: false, maintenance: true })).toEqual([dump.pid]);
    expect(acted({ backups: true, maintenance: false })).toEqual([vacuum.pid]);
    expect(acted({ backups: false, maintenance: false }).sort()).toEqual([dump.pid, vacuum.pid].sort());
  });

  it('protection wins over a policy that names the session in match; exempt still adds more', () => {
    const dump = session({ idleFor: 600, application: 'pg_dump' });
    const custom = session({ idleFor: 600, application: 'nightly-export' });
    expect(run([dump, custom], [{ name: 'dumps', maxIdle: '1s', match: { applications: ['pg_dump', 'nightly-export'] } }])).toHaveLength(1);
    expect(run([dump, custom], [{ name: 'dumps', maxIdle: '1s' }], { exempt: { applications: ['nightly-*'] } })).toEqual([]);
  });

  it('narrowing: protect.backups false with exempt entries spares only the names you use', () => {
    const ours = session({ idleFor: 600, application: 'pg_dump' });
    const claimed = session({ idleFor: 600, application: 'wal-g' });
    const ds = run([ours, claimed], [{ name: 'idle', maxIdle: '1s' }], { protect: { backups: false }, exempt: { applications: ['pg_dump'] } });
    expect(ds.map((d) => d.session.pid)).toEqual([claimed.pid]);
  });
});

describe('protection made visible', () => {
  it('debug explains a protected session as protected: KIND (WHAT); the counts are per kind', () => {
    const c = validateConfig({ targets: [{ name: 't', host: 'db' }], policies: everything });
    const policies = compilePolicies(c, 't');
    const sessions = [
      session({ activeFor: 60, application: 'pg_dump' }),
      session({ activeFor: 2, application: 'pgcopydb[7] clone' }),
      session({ activeFor: 60, maintenance: 'REINDEX CONCURRENTLY' }),
      session({ idleFor: 60, application: 'pg-reaper' }),
      session({ idleFor: 60, application: 'pg_dump', backendStart: null, state: null }),
    ];
    const snap = snapshot(sessions);
    const whys = explain(snap, policies, 'pg-reaper', plan(snap, policies, { target: 't', applicationName: 'pg-reaper' }), true, c.protect).map((n) => n.why);
    expect(whys.slice(0, 3)).toEqual(['protected: backup (pg_dump)', 'protected: backup (pgcopydb)', 'protected: maintenance (REINDEX CONCURRENTLY)']);
    expect(protectedCounts(snap, c.protect, 'pg-reaper')).toEqual({ backup: 2, maintenance: 1 });
    expect(protectedCounts(snap, { backups: false, maintenance: true }, 'pg-reaper')).toEqual({ backup: 0, maintenance: 1 });
  });

  it('check names every protected tool and statement, or says a protection is off', () => {
    const on = protectionSummary({ backups: true, maintenance: true });
    for (const name of ['pg_dump', 'pg_dumpall', 'pg_restore', 'pg_basebackup', 'pgBackRest [*', 'barman', 'barman_*', 'wal-g', 'pgcopydb[*', 'VACUUM', 'ANALYZE', 'CREATE INDEX CONCURRENTLY', 'REINDEX CONCURRENTLY', 'CLUSTER', 'REFRESH MATERIALIZED VIEW CONCURRENTLY', 'pg_repack']) {
      expect(on).toContain(name);
    }
    expect(protectionSummary({ backups: false, maintenance: false })).toBe('protected: backups: off (protect.backups: false); maintenance: off (protect.maintenance: false)');
  });
});
