import { existsSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../dev/embedded/embedded-postgres.js';
import { SUITE_DATABASES, SUITE_ROLES } from './helpers/suite-objects.js';

// One PostgreSQL for the whole suite: DATABASE_URL (a superuser URL) if set, else an embedded
// server in a fresh temp directory, removed at the end. With DATABASE_URL the Unix socket
// directory comes from the server itself (PG_SOCKET_DIR overrides), and the roles and databases
// the suite created are dropped at the end.
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env.DATABASE_URL;
  if (external) {
    project.provide('databaseUrl', external);
    project.provide('socketDir', process.env.PG_SOCKET_DIR ?? (await socketDirOf(external)));
    return () => dropSuiteObjects(external);
  }
  const server = await startEmbeddedPostgres({ maxConnections: 300 });
  project.provide('databaseUrl', server.url);
  project.provide('socketDir', server.socketDir);
  return () => server.stop();
}

/** The server's first unix_socket_directories entry, if its socket is on this machine. */
async function socketDirOf(url: string): Promise<string> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const rows = (await c.query<{ dirs: string; port: string }>("SELECT current_setting('unix_socket_directories') AS dirs, current_setting('port') AS port")).rows;
    const dir = rows[0]?.dirs.split(',')[0]?.trim() ?? '';
    return dir && existsSync(join(dir, `.s.PGSQL.${rows[0]!.port}`)) ? dir : '';
  } finally {
    await c.end();
  }
}

async function dropSuiteObjects(url: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY($1) OR datname = ANY($2)', [SUITE_ROLES, SUITE_DATABASES]);
    for (const db of SUITE_DATABASES) await c.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    for (const role of SUITE_ROLES) {
      if ((await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).rowCount) {
        await c.query(`DROP OWNED BY ${role}`);
        await c.query(`DROP ROLE ${role}`);
      }
    }
  } finally {
    await c.end();
  }
}

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    socketDir: string;
  }
}
