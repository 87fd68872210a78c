import { readFile } from 'node:fs/promises';
import pg from 'pg';
import { parseIntoClientConfig } from 'pg-connection-string';
import type { TargetConfig } from '../config/schema.js';
import { describeError, registerSecret } from '../util/errors.js';
import type { Db } from './db.js';

// One connection pool per target. Every connection carries our application_name (so no replica
// of ours reaps it), TCP keepalives, and client- and server-side timeouts, so that a server that
// stops answering costs one failed run, never a stuck loop.

export interface TargetDb extends Db {
  readonly name: string;
  close(): Promise<void>;
}

export interface TargetOptions {
  applicationName: string;
  onError?: (message: string) => void;
}

export function poolConfig(t: TargetConfig, opts: TargetOptions): pg.PoolConfig {
  registerSecret(t.password);
  const config: pg.PoolConfig = {
    application_name: opts.applicationName,
    connectionTimeoutMillis: Math.ceil(t.connectTimeout),
    // the server cancels a slow statement first (57014, the connection stays usable); the client
    // gives up 2 s later, for a server or network that stopped answering altogether
    statement_timeout: Math.ceil(t.queryTimeout),
    query_timeout: Math.ceil(t.queryTimeout) + 2000,
    keepAlive: true,
    max: 1,
    // keep the connection between runs; the server may still close it (pool 'error' below)
    idleTimeoutMillis: 0,
  };
  if (t.connectionString !== undefined) {
    // Parsed here rather than passed as connectionString: pg would let the string's (empty)
    // password override a password or passwordFile given beside it.
    const { password, ...rest } = parseIntoClientConfig(t.connectionString);
    Object.assign(config, rest);
    if (typeof password === 'string' && password) {
      registerSecret(password);
      config.password = password;
    }
  } else {
    Object.assign(config, { host: t.host, port: t.port, user: t.user, database: t.database });
  }
  if (t.password !== undefined) config.password = t.password;
  if (t.passwordFile !== undefined) {
    const file = t.passwordFile;
    // read at every connect, so a rotated secret is picked up without a restart
    config.password = async () => {
      const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
        throw new Error(`cannot read passwordFile ${file}: ${err.code ?? err.message}`);
      });
      const password = text.replace(/\r?\n$/, '');
      registerSecret(password);
      return password;
    };
  }
  return config;
}

export function openTarget(t: TargetConfig, opts: TargetOptions): TargetDb {
  const pool = new pg.Pool(poolConfig(t, opts));
  // An idle connection that the server closes must not crash the process: the next run reconnects.
  pool.on('error', (err) => opts.onError?.(describeError(err)));
  return {
    name: t.name,
    // pool.connect() + client.query() rather than pool.query(): pg-pool keeps the callback of the
    // call that opened a connection reachable from that connection's listeners, so with
    // pool.query() every kept connection retained its first result set (a whole snapshot).
    async query<R extends object>(sql: string, params?: readonly unknown[]) {
      const client = await pool.connect();
      let broken: Error | undefined;
      try {
        return (await client.query<R>(sql, params as unknown[] | undefined)).rows;
      } catch (err) {
        // a server error (with a SQLSTATE) leaves the connection usable; anything else, such as
        // a client-side timeout or a dropped socket, leaves it in an unknown state: discard it
        if (!(err as { code?: unknown }).code || typeof (err as { code?: unknown }).code !== 'string' || !/^[0-9A-Z]{5}$/.test((err as { code: string }).code)) broken = err as Error;
        throw err;
      } finally {
        client.release(broken);
      }
    },
    close: () => pool.end(),
  };
}
