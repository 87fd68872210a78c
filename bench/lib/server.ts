import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedServer } from '../../dev/embedded/embedded-postgres.js';

// Benchmark servers: embedded PostgreSQL with room for thousands of sessions and md5 auth (SCRAM
// would make opening 5,000 sessions a benchmark of PBKDF2). The reaper connects as the README's
// least-privileged role.

export interface BenchServer extends EmbeddedServer {
  /** The least-privileged reaper role's URL. */
  reaperUrl: string;
  /** An application role's URL for the sessions. */
  appUrl: string;
  version: string;
}

export async function startBenchServer(maxConnections: number): Promise<BenchServer> {
  const server = await startEmbeddedPostgres({ maxConnections, authMethod: 'md5', extraFlags: ['-c', 'shared_buffers=128MB'] });
  const admin = new pg.Client(server.url);
  await admin.connect();
  const pw = server.password;
  await admin.query(`CREATE ROLE reaper LOGIN PASSWORD '${pw}'`);
  await admin.query('GRANT pg_read_all_stats, pg_signal_backend TO reaper');
  await admin.query(`CREATE ROLE app LOGIN PASSWORD '${pw}'`);
  const version = (await admin.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v;
  await admin.end();
  const url = (user: string) => `postgres://${user}:${pw}@127.0.0.1:${server.port}/postgres`;
  return { ...server, reaperUrl: url('reaper'), appUrl: url('app'), version };
}
