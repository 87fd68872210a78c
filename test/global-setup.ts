import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../src/embedded/embedded-postgres.js';

// One PostgreSQL for the whole suite: DATABASE_URL (a superuser URL) if set, else an embedded
// server in a fresh temp directory, removed at the end.
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env.DATABASE_URL;
  if (external) {
    project.provide('databaseUrl', external);
    project.provide('socketDir', process.env.PG_SOCKET_DIR ?? '');
    return async () => undefined;
  }
  const server = await startEmbeddedPostgres({ maxConnections: 300 });
  project.provide('databaseUrl', server.url);
  project.provide('socketDir', server.socketDir);
  return () => server.stop();
}

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    socketDir: string;
  }
}
