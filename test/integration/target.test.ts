import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { openTarget } from '../../src/db/target.js';
import { adminUrl, Sessions } from '../helpers/pg.js';
import { startProxy } from '../helpers/proxy.js';

// The connection each target keeps between runs.

const s = new Sessions();
beforeAll(() => s.start());
afterAll(() => s.end());

const target = (queryTimeout = '30s') => validateConfig({ targets: [{ name: 'main', connectionString: adminUrl(), queryTimeout }], policies: [{ name: 'p', maxIdle: '1h' }] }).targets[0]!;

describe('target connection', () => {
  it('keeps one connection between queries; a statement over queryTimeout is cancelled by the server and the connection kept', async () => {
    const db = openTarget(target('500ms'), { applicationName: 'pg-reaper' });
    try {
      const pid = async () => (await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'))[0]!.pid;
      const first = await pid();
      expect(await pid()).toBe(first);
      await expect(db.query('SELECT pg_sleep(3)')).rejects.toMatchObject({ code: '57014' });
      expect(await pid()).toBe(first);
    } finally {
      await db.close();
    }
  });

  it('replaces the connection when the server stops answering (client-side timeout)', async () => {
    const db = openTarget(target('500ms'), { applicationName: 'pg-reaper' });
    try {
      const pid = async () => (await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'))[0]!.pid;
      const first = await pid();
      // lift the server-side limit on this connection: only the client's timeout can end the sleep
      await db.query('SET statement_timeout = 0');
      await expect(db.query('SELECT pg_sleep(4)')).rejects.toThrow(/timeout/i);
      const after = await pid();
      expect(after).not.toBe(first);
      expect(await pid()).toBe(after);
    } finally {
      await db.close();
    }
  });

  it('keeps the connection after a server error', async () => {
    const db = openTarget(target(), { applicationName: 'pg-reaper' });
    try {
      const first = (await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'))[0]!.pid;
      await expect(db.query('SELECT 1/0')).rejects.toMatchObject({ code: '22012' });
      expect((await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'))[0]!.pid).toBe(first);
    } finally {
      await db.close();
    }
  });

  it('a connection that drops just before a query fails that query only: no uncaught error, the next query reconnects', async () => {
    const proxy = await startProxy(Number(new URL(adminUrl()).port));
    const url = new URL(adminUrl());
    url.port = String(proxy.port);
    const db = openTarget(validateConfig({ targets: [{ name: 'main', connectionString: url.toString(), connectTimeout: '1s' }], policies: [{ name: 'p', maxIdle: '1h' }] }).targets[0]!, { applicationName: 'pg-reaper' });
    const uncaught: Error[] = [];
    const listener = (err: Error) => void uncaught.push(err);
    process.on('uncaughtException', listener);
    try {
      await db.query('SELECT 1');
      await proxy.down(); // the kept connection is cut; its close event is still on its way
      await expect(db.query('SELECT 1')).rejects.toThrow(/Connection terminated/);
      await proxy.up();
      expect(await db.query<{ n: number }>('SELECT 2 AS n')).toEqual([{ n: 2 }]);
      await new Promise((r) => setTimeout(r, 50));
      expect(uncaught).toEqual([]);
    } finally {
      process.off('uncaughtException', listener);
      await db.close();
      await proxy.close();
    }
  });

  it('does not keep a result set alive after the caller drops it', () => {
    // a separate process with --expose-gc: the first result on a fresh connection used to stay
    // reachable from that connection for as long as it lived (a whole snapshot per target)
    const script = `
      const { openTarget } = await import(${JSON.stringify(join(import.meta.dirname, '../../dist/src/db/target.js'))});
      const db = openTarget({ name: 'main', connectionString: process.env.URL, connectTimeout: 5000, queryTimeout: 30000 }, { applicationName: 'pg-reaper' });
      let rows = await db.query('SELECT g AS n FROM generate_series(1, 1000) g');
      const ref = new WeakRef(rows[0]);
      rows = undefined;
      await new Promise((r) => setTimeout(r, 50));
      globalThis.gc(); await new Promise((r) => setTimeout(r, 50)); globalThis.gc();
      process.stdout.write(ref.deref() === undefined ? 'collected' : 'retained');
      await db.close();`;
    const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { env: { ...process.env, URL: adminUrl() }, encoding: 'utf8' });
    expect(out).toBe('collected');
  });
});
