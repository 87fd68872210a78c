import { readFile } from 'node:fs/promises';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import { parseConnInfo, type SslMode } from '../config/conninfo.js';
import type { TargetConfig } from '../config/schema.js';
import { describeError, registerSecret, sqlState } from '../util/errors.js';
import type { Db, QueryOptions } from './db.js';
import { withPoolerHint } from './pooler-hint.js';

// One connection pool per target. Every connection carries our application_name (so no replica
// of ours reaps it), TCP keepalives, and client- and server-side timeouts, so that a server that
// stops answering costs one failed run, never a stuck loop. TLS follows libpq's sslmode, with
// certificate files read at every new connection (like passwordFile), so rotated files are
// picked up without a restart.

export interface TargetDb extends Db {
  readonly name: string;
  /**
   * Runs `fn` on one connection held for its whole length. `connection` is a token that stays the
   * same for as long as the server session does: a new connection gets a new token.
   */
  withConnection<T>(fn: (db: Db, connection: object) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface TargetOptions {
  applicationName: string;
  onError?: (message: string) => void;
}

/** Where and how to connect: the connection string or host/port form, resolved. */
export interface Endpoint {
  pool: pg.PoolConfig;
  tls: { mode: SslMode; rootCert?: string | undefined; cert?: string | undefined; key?: string | undefined };
}

export function endpointOf(t: TargetConfig, opts: TargetOptions): Endpoint {
  registerSecret(t.password);
  const pool: pg.PoolConfig = {
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
  let tls: Endpoint['tls'] = { mode: t.ssl?.mode ?? 'prefer', rootCert: t.ssl?.rootCert, cert: t.ssl?.cert, key: t.ssl?.key };
  if (t.connectionString !== undefined) {
    const parsed = parseConnInfo(t.connectionString);
    // validated config: a string that does not parse never gets here
    if (!parsed.ok) throw new Error(`target ${t.name}: connectionString: ${parsed.error}`);
    const c = parsed.info;
    Object.assign(pool, { host: c.host, port: c.port, user: c.user, database: c.dbname });
    if (c.password) {
      registerSecret(c.password);
      pool.password = c.password;
    }
    if (c.connectTimeout !== undefined) pool.connectionTimeoutMillis = c.connectTimeout * 1000;
    if (c.sslmode || c.sslrootcert || c.sslcert || c.sslkey) tls = { mode: c.sslmode ?? 'prefer', rootCert: c.sslrootcert, cert: c.sslcert, key: c.sslkey };
  } else {
    Object.assign(pool, { host: t.host, port: t.port, user: t.user, database: t.database });
  }
  if (t.password !== undefined) pool.password = t.password;
  if (t.passwordFile !== undefined) {
    const file = t.passwordFile;
    // read at every connect, so a rotated secret is picked up without a restart
    pool.password = async () => {
      const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
        throw new Error(`cannot read passwordFile ${file}: ${err.code ?? err.message}`);
      });
      const password = text.replace(/\r?\n$/, '');
      registerSecret(password);
      return password;
    };
  }
  return { pool, tls };
}

type Tls = false | ConnectionOptions;

/**
 * The TLS settings to try, in order, for a new connection, as libpq's sslmode means them:
 * disable: plain; allow: plain, then TLS; prefer: TLS, then plain; require: TLS without checking
 * the certificate, unless a root certificate is given (then as verify-ca); verify-ca: the chain;
 * verify-full: the chain and the host name. Without a root certificate, verify-* check against
 * Node's built-in CAs.
 */
export async function tlsAttempts(tls: Endpoint['tls']): Promise<Tls[]> {
  const read = async (what: string, file: string | undefined) => {
    if (file === undefined) return undefined;
    try {
      return await readFile(file);
    } catch (err) {
      throw new Error(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const [ca, cert, key] = await Promise.all([read('sslrootcert', tls.rootCert), read('sslcert', tls.cert), read('sslkey', tls.key)]);
  const client = { ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
  const unchecked: ConnectionOptions = { ...client, rejectUnauthorized: false };
  const chain: ConnectionOptions = { ...client, ...(ca ? { ca } : {}), rejectUnauthorized: true, checkServerIdentity: () => undefined };
  const full: ConnectionOptions = { ...client, ...(ca ? { ca } : {}), rejectUnauthorized: true };
  switch (tls.mode) {
    case 'disable':
      return [false];
    case 'allow':
      return [false, unchecked];
    case 'prefer':
      return [unchecked, false];
    case 'require':
      return [ca ? chain : unchecked];
    case 'verify-ca':
      return [chain];
    case 'verify-full':
      return [full];
  }
}

// allow/prefer move on to their second way only when the first was refused for its encryption:
// the server has no TLS, or its pg_hba.conf has no entry for that kind of connection.
function refusedForEncryption(err: unknown): boolean {
  const e = err as { message?: string; code?: string };
  return /does not support SSL/i.test(e.message ?? '') || (e.code === '28000' && /pg_hba\.conf/.test(e.message ?? ''));
}

export function openTarget(t: TargetConfig, opts: TargetOptions): TargetDb {
  const endpoint = endpointOf(t, opts);
  const pool = new pg.Pool({ ...endpoint.pool, ssl: false });
  // An idle connection that the server closes must not crash the process: the next run reconnects.
  pool.on('error', (err) => opts.onError?.(describeError(err)));

  const connect = async (): Promise<pg.PoolClient> => {
    if (pool.totalCount > 0) return pool.connect();
    // a new connection: fresh certificate files, and libpq's order of attempts
    const attempts = await tlsAttempts(endpoint.tls);
    for (let i = 0; ; i++) {
      (pool.options as { ssl?: Tls }).ssl = attempts[i]!;
      try {
        return await pool.connect();
      } catch (err) {
        if (i + 1 >= attempts.length || !refusedForEncryption(err)) throw withPoolerHint(err, false);
      }
    }
  };

  // the token of each connection (one per server session)
  const tokens = new WeakMap<pg.PoolClient, object>();

  // A query on a held client. A server error (with a SQLSTATE) leaves the connection usable;
  // anything else, such as a client-side timeout or a dropped socket, leaves it in an unknown
  // state: it is discarded at release.
  const on = (client: pg.PoolClient, state: { broken?: Error }): Db => ({
    async query<R extends object>(sql: string, params?: readonly unknown[], opts?: QueryOptions) {
      const values = params as unknown[] | undefined;
      const prepared = opts?.prepare !== undefined && t.preparedStatements;
      try {
        // pg parses a named statement once per connection (a new connection prepares it afresh)
        return (await (prepared ? client.query<R>({ text: sql, values, name: opts.prepare }) : client.query<R>(sql, values))).rows;
      } catch (err) {
        if (sqlState(err) === undefined) state.broken = err as Error;
        throw withPoolerHint(err, prepared);
      }
    },
  });

  // connect() + client.query() rather than pool.query(): pg-pool keeps the callback of the call
  // that opened a connection reachable from that connection's listeners, so with pool.query()
  // every kept connection retained its first result set (a whole snapshot).
  const withConnection = async <T>(fn: (db: Db, connection: object) => Promise<T>): Promise<T> => {
    const client = await connect();
    const state: { broken?: Error } = {};
    // A connection that drops while held emits 'error' as well as failing the query; pg-pool
    // listens only to idle connections, and an unheard 'error' would end the process.
    const onError = (err: Error) => void (state.broken = err);
    client.on('error', onError);
    let token = tokens.get(client);
    if (!token) tokens.set(client, (token = {}));
    try {
      return await fn(on(client, state), token);
    } finally {
      client.off('error', onError);
      client.release(state.broken);
    }
  };

  return {
    name: t.name,
    query: (sql, params, opts) => withConnection((db) => db.query(sql, params, opts)),
    withConnection,
    close: () => pool.end(),
  };
}
