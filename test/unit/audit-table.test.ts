import { describe, expect, it } from 'vitest';
import { auditRows, replicaName } from '../../src/audit/row.js';
import { ddl, insertSql, parseTableName, probeSql } from '../../src/audit/table.js';
import { uuidv7 } from '../../src/audit/uuid.js';
import { formatProblem, parseConfigText } from '../../src/config/load.js';
import type { Decision } from '../../src/plan/planner.js';
import { OUTCOMES } from '../../src/run/outcome.js';
import type { RunReport } from '../../src/run/run-target.js';
import { session, snapshot } from '../helpers/sessions.js';

// The audit table's name, rows and statements, and the audit config: pure parts.

describe('audit table name', () => {
  it('accepts SCHEMA.TABLE and TABLE as lowercase identifiers', () => {
    expect(parseTableName('reaper_audit.actions')).toEqual({ ok: true, table: { schema: 'reaper_audit', name: 'actions', sql: 'reaper_audit.actions' } });
    expect(parseTableName('_a1.b_2')).toMatchObject({ ok: true });
    expect(parseTableName('actions')).toEqual({ ok: true, table: { name: 'actions', sql: 'actions' } });
  });

  it('refuses anything that would need quoting, and schemas PostgreSQL reserves', () => {
    for (const bad of ['', 'a.b.c', 'Actions', 'a-b', '1a', 'a.', '.a', '"a"', 'a;drop table x', 'a b', 'x'.repeat(64)]) {
      expect(parseTableName(bad), bad).toMatchObject({ ok: false, error: expect.stringContaining('expected a table name like "reaper_audit.actions"') });
    }
    expect(parseTableName('pg_audit.actions')).toMatchObject({ ok: false, error: expect.stringContaining('schema names beginning with "pg_" are reserved') });
    expect(parseTableName('audit.pg_actions')).toMatchObject({ ok: true });
  });

  it('the statements name the table, and the DDL makes its schema only when it is qualified', () => {
    const q = parseTableName('reaper_audit.actions');
    const u = parseTableName('actions');
    if (!q.ok || !u.ok) throw new Error('unreachable');
    expect(ddl(q.table)[0]).toBe('CREATE SCHEMA IF NOT EXISTS reaper_audit');
    expect(ddl(u.table).some((s) => s.startsWith('CREATE SCHEMA'))).toBe(false);
    expect(ddl(q.table)[1]).toMatch(/^CREATE TABLE IF NOT EXISTS reaper_audit\.actions \(\n {2}id uuid PRIMARY KEY,\n {2}at timestamptz NOT NULL,/);
    // a table made by an earlier version is brought up to date, idempotently
    expect(ddl(q.table)[2]).toBe(
      'ALTER TABLE reaper_audit.actions\n  ALTER COLUMN threshold_seconds DROP NOT NULL,\n  ADD COLUMN IF NOT EXISTS transactions bigint,\n  ADD COLUMN IF NOT EXISTS threshold_transactions bigint,\n  ADD COLUMN IF NOT EXISTS details jsonb',
    );
    expect(insertSql(q.table)).toMatch(/^INSERT INTO reaper_audit\.actions \(id, at, replica, .*\) SELECT r\.id, timestamptz 'epoch' \+ r\.at_us \* interval '1 microsecond', .* FROM json_to_recordset\(\$1::json\) AS r\(id uuid, at_us bigint, .*\) ON CONFLICT DO NOTHING$/);
    expect(probeSql(q.table)).toMatch(/^INSERT INTO reaper_audit\.actions \(.*\) SELECT NULL::uuid, NULL::timestamptz, .* WHERE false$/);
  });
});

describe('UUIDv7 row ids', () => {
  it('carries the time in its first 48 bits, version 7 and the RFC variant', () => {
    const id = uuidv7(0x0123_4567_89ab, new Uint8Array([0xff, 0xee, 0xff, 1, 2, 3, 4, 5, 6, 7]));
    expect(id).toBe('01234567-89ab-7fee-bf01-020304050607');
  });

  it('sorts by time', () => {
    const r = new Uint8Array(10).fill(0x55);
    const ids = [1_700_000_000_000, 1_700_000_000_001, 1_800_000_000_000].map((ms) => uuidv7(ms, r));
    expect([...ids].sort()).toEqual(ids);
  });
});

describe('audit rows of a run', () => {
  const nowMs = Date.UTC(2026, 10, 22, 12, 0, 0) + 0.123456 * 1000;
  const s = session({ idleFor: 700, queryId: '-3688696628780506391', query: 'SELECT 1', backendStartMs: Date.UTC(2026, 10, 22, 11, 0, 0) + 654.321 });
  const local = session({ idleFor: 700, local: true, clientAddr: null });
  const decision = (sess: typeof s, over: Partial<Decision> = {}): Decision => ({ target: 'main', policy: 'idle', reason: 'idle', action: 'terminate', dryRun: false, session: sess, age: 700, threshold: 600, seconds: 700, capped: false, ...over });
  const report = (results: RunReport['results']): RunReport => ({ target: 'main', ok: true, finishedAtMs: nowMs + 5, durationSeconds: 0.01, snapshot: { ...snapshot([s, local]), nowMs }, results, timings: { snapshotMs: 0, planMs: 0, executeMs: 0 } });

  it('one row per result, with every outcome there is, the server clock and exact microseconds', () => {
    const results = OUTCOMES.map((outcome) => ({ decision: decision(s), outcome, ...(outcome === 'failed' ? { error: 'boom (SQLSTATE 42501)' } : {}) }));
    const out = auditRows(report(results), { replica: 'pod-1', logQueryText: false, ids: (n) => Array.from({ length: n }, (_, i) => `id${i}`) });
    expect(out.map((r) => r.outcome)).toEqual([...OUTCOMES]);
    expect(out[0]).toEqual({
      id: 'id0',
      at_us: Date.UTC(2026, 10, 22, 12, 0, 0) * 1000 + 123456,
      replica: 'pod-1',
      target: 'main',
      policy: 'idle',
      reason: 'idle',
      action: 'terminate',
      outcome: OUTCOMES[0],
      dry_run: false,
      pid: s.pid,
      backend_start_us: Date.UTC(2026, 10, 22, 11, 0, 0) * 1000 + 654321,
      usename: 'app',
      datname: 'shop',
      application_name: 'web',
      client_addr: '10.1.2.3',
      state: 'idle',
      seconds: 700,
      threshold_seconds: 600,
      transactions: null,
      threshold_transactions: null,
      query_id: '-3688696628780506391',
      query: null,
      escalated: false,
      blocked_sessions: null,
      details: null,
      error: null,
    });
    expect(out.find((r) => r.outcome === 'failed')!.error).toBe('boom (SQLSTATE 42501)');
    expect(new Set(auditRows(report(results), { replica: 'x', logQueryText: false }).map((r) => r.id)).size).toBe(OUTCOMES.length);
  });

  it('query text only with logQueryText; local sessions as "local"; blocking and escalation carried', () => {
    const [withQuery] = auditRows(report([{ decision: decision(s), outcome: 'terminated' }]), { replica: 'x', logQueryText: true });
    expect(withQuery!.query).toBe('SELECT 1');
    const [l] = auditRows(report([{ decision: decision(local, { reason: 'blocking', details: { blockedSessions: 37, blockedSeconds: 700 }, escalated: true, dryRun: true }), outcome: 'would_terminate' }]), { replica: 'x', logQueryText: false });
    expect(l).toMatchObject({ client_addr: 'local', blocked_sessions: 37, details: { blockedSessions: 37, blockedSeconds: 700 }, escalated: true, dry_run: true, outcome: 'would_terminate' });
  });

  it('nothing for a run without actions or without a snapshot', () => {
    expect(auditRows(report([]), { replica: 'x', logQueryText: false })).toEqual([]);
    expect(auditRows({ ...report([{ decision: decision(s), outcome: 'terminated' }]), snapshot: undefined } as unknown as RunReport, { replica: 'x', logQueryText: false })).toEqual([]);
  });

  it('the replica is POD_NAME, else the host name', () => {
    expect(replicaName({ POD_NAME: 'pg-reaper-7d9f-abc' }, () => 'host')).toBe('pg-reaper-7d9f-abc');
    expect(replicaName({ POD_NAME: ' ' }, () => 'host')).toBe('host');
    expect(replicaName({}, () => 'host')).toBe('host');
  });
});

describe('audit config', () => {
  const base = `targets:
  - name: primary
    connectionString: postgres://reaper@db/postgres
policies:
  - name: idle
    maxIdle: 10m
`;
  const problems = (text: string) => {
    const r = parseConfigText(text, 'c.yaml', {});
    if (r.ok) throw new Error('expected the config to be rejected');
    return r.problems.map(formatProblem);
  };

  it('is off by default; on with a target or a connection string, with its defaults', () => {
    const off = parseConfigText(base, 'c.yaml', {});
    expect(off.ok && off.config.audit).toBeUndefined();
    const on = parseConfigText(base + 'audit: { target: primary }\n', 'c.yaml', {});
    expect(on.ok && on.config.audit).toEqual({ target: 'primary', table: 'reaper_audit.actions', queueSize: 10_000 });
    const own = parseConfigText(base + 'audit: { connectionString: "host=audit.internal dbname=ops user=reaper", table: ops.reaper_actions, queueSize: "500" }\n', 'c.yaml', {});
    expect(own.ok && own.config.audit).toEqual({ connectionString: 'host=audit.internal dbname=ops user=reaper', table: 'ops.reaper_actions', queueSize: 500 });
  });

  it('names the place of every problem', () => {
    expect(problems(base + 'audit: { target: nope }\n')).toEqual(['c.yaml:7:18 audit.target: unknown target "nope"; defined targets: primary']);
    expect(problems(base + 'audit:\n  target: primary\n  table: pg_catalog.x\n')).toEqual(['c.yaml:9:10 audit.table: schema names beginning with "pg_" are reserved by PostgreSQL; use another, like "reaper_audit", got "pg_catalog.x"']);
    expect(problems(base + 'audit:\n  target: primary\n  table: "Audit.Actions"\n')[0]).toMatch(/^c\.yaml:9:10 audit\.table: expected a table name like "reaper_audit\.actions"/);
    expect(problems(base + 'audit: { table: x.y }\n')).toEqual(['c.yaml:7:8 audit: expected connectionString (a server of your choice) or target (the name of one of the targets)']);
    expect(problems(base + 'audit: { target: primary, connectionString: "postgres://a:secretpw@h/db" }\n')).toEqual(['c.yaml:7:18 audit.target: expected connectionString or target, not both']);
    expect(problems(base + 'audit: { target: primary, queueSize: 0 }\n')).toEqual(['c.yaml:7:38 audit.queueSize: expected a number >= 1, got 0']);
    expect(problems(base + 'audit: { target: primary, size: 3 }\n')).toEqual(['c.yaml:7:27 audit.size: unknown key "size"; accepted keys: connectionString, target, table, queueSize']);
    const conn = problems(base + 'audit: { connectionString: "postgres://a:secretpw@h:99999/db" }\n');
    expect(conn).toHaveLength(1);
    expect(conn[0]).toMatch(/^c\.yaml:7:28 audit\.connectionString: /);
    expect(conn[0]).not.toContain('secretpw');
    expect(problems(base + 'audit: { connectionString: "postgres://h/db?application_name=other" }\n')[0]).toMatch(/^c\.yaml:7:28 audit\.connectionString: application_name "other" differs from applicationName "pg-reaper"/);
  });
});
