import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../dev/embedded/embedded-postgres.js';
import { adminUrl } from './pg.js';

// A real pg_dump and a server it can dump. pg_dump refuses a server of a newer major than its
// own, and the suite's server is usually the newest: then the server binaries installed beside
// that pg_dump (Debian's postgresql-N package puts both in /usr/lib/postgresql/N/bin) run a
// throwaway server of the same major, in the test's own temp directory.

export interface DumpServer {
  pgDump: string;
  /** Superuser URL of the server to dump (its postgres database). */
  url: string;
  major: number;
  stop(): Promise<void>;
}

function majorOf(pgDump: string): number | undefined {
  try {
    const out = execFileSync(pgDump, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const m = /\(PostgreSQL\) (\d+)/.exec(out);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The newest pg_dump on this machine: Debian's per-major directories, then PATH. */
function findPgDump(): { path: string; major: number } | undefined {
  const found: { path: string; major: number }[] = [];
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    for (const dir of readdirSync(debian)) {
      const path = join(debian, dir, 'bin', 'pg_dump');
      const major = existsSync(path) ? majorOf(path) : undefined;
      if (major !== undefined) found.push({ path, major });
    }
  }
  const onPath = majorOf('pg_dump');
  if (onPath !== undefined) found.push({ path: 'pg_dump', major: onPath });
  return found.sort((a, b) => b.major - a.major)[0];
}

async function serverMajor(url: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return Math.floor(Number((await c.query<{ v: string }>('SHOW server_version_num')).rows[0]!.v) / 10000);
  } finally {
    await c.end();
  }
}

/** A pg_dump and a server it can dump, or why there is none (the test is then skipped, saying so). */
export async function dumpServer(): Promise<DumpServer | { missing: string }> {
  const dump = findPgDump();
  if (!dump) return { missing: 'no pg_dump on this machine (Debian: apt-get install postgresql)' };
  const suiteMajor = await serverMajor(adminUrl());
  if (dump.major >= suiteMajor) return { pgDump: dump.path, url: adminUrl(), major: suiteMajor, stop: async () => undefined };
  const bin = join(dump.path, '..');
  if (!existsSync(join(bin, 'postgres')) || !existsSync(join(bin, 'initdb'))) {
    return { missing: `pg_dump ${dump.major} cannot dump the suite's PostgreSQL ${suiteMajor}, and there is no PostgreSQL ${dump.major} server beside it (Debian: apt-get install postgresql-${dump.major})` };
  }
  // bin/ as symlinks: PostgreSQL finds its share/ and lib/ from where its binaries really are
  const native = mkdtempSync(join(tmpdir(), 'pg-reaper-dump-native-'));
  try {
    for (const d of ['bin', 'lib', 'share']) mkdirSync(join(native, d));
    for (const b of ['postgres', 'initdb']) symlinkSync(join(bin, b), join(native, 'bin', b));
    const server = await startEmbeddedPostgres({ native, maxConnections: 50 });
    return {
      pgDump: dump.path,
      url: server.url,
      major: dump.major,
      stop: async () => {
        await server.stop();
        rmSync(native, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(native, { recursive: true, force: true });
    throw err;
  }
}
