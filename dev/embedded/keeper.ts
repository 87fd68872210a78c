import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, copyFile, link, mkdir, mkdtemp, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { EmbeddedOptions, KeeperReply, KeeperRequest } from './embedded-postgres.js';

// The embedded server's keeper: a process of its own (forked by embedded-postgres.ts) that owns
// one throwaway PostgreSQL from its temp directory to its removal. It stops the server and
// removes the directory when asked, when its parent's IPC channel closes (the parent exited or
// died), or on SIGTERM/SIGINT/SIGHUP. Everything lives in one fresh temp directory:
//   native/   as root, a private copy (hard links where possible) of the server binaries, so the
//             "postgres" OS user can run them wherever the checkout is, even under /root
//   data/     the cluster;  the Unix socket;  the password file only while initdb runs (0600)
// As root, PostgreSQL runs as the OS user "postgres" (created if missing), which owns the directory.

const run = promisify(execFile);
const READY = 'database system is ready to accept connections';

let dir: string | undefined;
let server: ChildProcess | undefined;
let exiting = false;

const reply = (m: KeeperReply) => new Promise<void>((done) => (process.send ? process.send(m, undefined, {}, () => done()) : done()));

async function start(opts: EmbeddedOptions & { native: string }): Promise<void> {
  const ids = process.getuid?.() === 0 ? await postgresUser() : undefined;
  dir = await mkdtemp(join(tmpdir(), 'pg-reaper-pg-'));
  await chmod(dir, 0o700);
  if (ids) await chown(dir, ids.uid, ids.gid);
  const native = ids ? await privateCopy(opts.native, join(dir, 'native')) : opts.native;
  const as = ids ? { uid: ids.uid, gid: ids.gid } : {};
  const env = { ...process.env, LC_ALL: 'C', LANG: 'C', ...(ids ? { HOME: dir } : {}) };

  const password = randomBytes(12).toString('hex');
  const pwfile = join(dir, 'pwfile');
  await writeFile(pwfile, password + '\n', { mode: 0o600 });
  if (ids) await chown(pwfile, ids.uid, ids.gid);
  const data = join(dir, 'data');
  try {
    await run(join(native, 'bin', 'initdb'), [`--pgdata=${data}`, `--auth=${opts.authMethod ?? 'scram-sha-256'}`, '--username=postgres', `--pwfile=${pwfile}`, '--locale=C', '--encoding=UTF8'], { ...as, env });
  } catch (err) {
    throw new Error(`initdb failed: ${lastLines((err as { stderr?: string }).stderr || (err as Error).message)}`);
  } finally {
    await rm(pwfile, { force: true });
  }

  const flags = ['-c', `max_connections=${opts.maxConnections ?? 200}`, '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dir}`, '-c', 'fsync=off'];
  if (opts.ssl) {
    for (const [name, text] of [['server.crt', opts.ssl.cert], ['server.key', opts.ssl.key]] as const) {
      await writeFile(join(data, name), text, { mode: 0o600 });
      if (ids) await chown(join(data, name), ids.uid, ids.gid);
    }
    flags.push('-c', 'ssl=on');
  }
  if (opts.hba) {
    const method = opts.authMethod ?? 'scram-sha-256';
    await writeFile(join(data, 'pg_hba.conf'), [`local all all ${method}`, `local replication all ${method}`, ...opts.hba, ''].join('\n'));
  }
  flags.push(...(opts.extraFlags ?? []));

  // A port found free can be taken before the server binds it: try a few.
  let lastError = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const started = await startServer(join(native, 'bin', 'postgres'), ['-D', data, '-p', String(port), ...flags], { ...as, env });
    if (started.ok) {
      const versionNum = Number((await run(join(native, 'bin', 'postgres'), ['-C', 'server_version_num', '-D', data], { ...as, env })).stdout.trim());
      await reply({ type: 'ready', port, password, socketDir: dir, dataDir: data, versionNum });
      return;
    }
    lastError = started.error;
    if (!/could not bind|already in use|could not create any TCP\/IP sockets/i.test(lastError)) break;
  }
  throw new Error(`postgres did not start: ${lastError}`);
}

function startServer(bin: string, args: string[], options: { uid?: number; gid?: number; env: NodeJS.ProcessEnv }): Promise<{ ok: true } | { ok: false; error: string }> {
  return new Promise((done) => {
    const child = spawn(bin, args, { ...options, stdio: ['ignore', 'ignore', 'pipe'] });
    server = child;
    let tail = '';
    let ready = false;
    // keep reading stderr for the server's whole life: a full pipe would block it
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      tail = (tail + chunk).slice(-4000);
      if (!ready && tail.includes(READY)) {
        ready = true;
        done({ ok: true });
      }
    });
    child.once('error', (err) => done({ ok: false, error: err.message }));
    child.once('exit', (code, signal) => {
      if (server === child) server = undefined;
      if (!ready) done({ ok: false, error: `exited (${signal ?? `code ${code}`}): ${lastLines(tail)}` });
      else if (!exiting) void shutdown(1);
    });
  });
}

async function postgresUser(): Promise<{ uid: number; gid: number }> {
  const ids = async () => ({ uid: Number((await run('id', ['-u', 'postgres'])).stdout), gid: Number((await run('id', ['-g', 'postgres'])).stdout) });
  try {
    return await ids();
  } catch {
    try {
      await run('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres']);
    } catch (err) {
      throw new Error(`PostgreSQL cannot run as root and there is no "postgres" OS user; creating one failed: ${lastLines((err as { stderr?: string }).stderr || (err as Error).message)}`);
    }
    return ids();
  }
}

// bin/, lib/ and share/ into `to`: hard links on the same file system, copies elsewhere; static
// libraries are left out. The files stay root's and readable; only the path to them changes.
async function privateCopy(from: string, to: string): Promise<string> {
  const walk = async (src: string, dst: string): Promise<void> => {
    await mkdir(dst, { mode: 0o755 });
    for (const entry of await readdir(src, { withFileTypes: true })) {
      const s = join(src, entry.name);
      const d = join(dst, entry.name);
      if (entry.isDirectory()) await walk(s, d);
      else if (entry.isSymbolicLink()) await symlink(await readlink(s), d);
      else if (entry.isFile() && !entry.name.endsWith('.a')) await link(s, d).catch(() => copyFile(s, d));
    }
  };
  await mkdir(to, { mode: 0o755 });
  for (const part of ['bin', 'lib', 'share']) await walk(join(from, part), join(to, part));
  return to;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function lastLines(text: string): string {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).slice(-6).join(' | ');
}

// Fast shutdown (SIGINT: sessions are ended, no checkpoint wait), then SIGKILL if it hangs; then
// the directory goes, whatever happened before.
async function shutdown(code: number): Promise<void> {
  if (exiting) return;
  exiting = true;
  const child = server;
  if (child && child.exitCode === null && child.signalCode === null) {
    const gone = new Promise<void>((done) => child.once('exit', () => done()));
    child.kill('SIGINT');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(timer);
  }
  if (dir) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  process.exit(code);
}

process.on('message', (m: KeeperRequest) => {
  if (m.type === 'stop') void shutdown(0);
  else if (m.type === 'start') {
    start(m.options).catch(async (err: unknown) => {
      await reply({ type: 'error', message: (err as Error).message });
      await shutdown(1);
    });
  }
});
process.on('disconnect', () => void shutdown(0));
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => void shutdown(0));
process.on('uncaughtException', () => void shutdown(1));
