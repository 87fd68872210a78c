import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeDir, startEmbeddedPostgres } from '../../dev/embedded/embedded-postgres.js';

// The front door: the embedded server behind `npm run demo` and `npm test` starts from any
// checkout (as root too), fails in one line, and leaves nothing behind however it ends.

const ROOT = join(import.meta.dirname, '../..');
const isRoot = process.getuid?.() === 0;
// The servers started here get a temp directory of their own (TMPDIR), so what is left behind is
// counted exactly even while other suites run on the machine. 0711: the postgres OS user (as root)
// must be able to pass through it.
let scratch: string;
let tmp: string;
let savedTmpdir: string | undefined;
const ours = () => new Set(readdirSync(tmp).filter((n) => n.startsWith('pg-reaper-pg-')));
const newDirs = (before: Set<string>) => [...ours()].filter((n) => !before.has(n));

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'pg-reaper-embedded-test-'));
  tmp = join(scratch, 'tmp');
  mkdirSync(tmp, { mode: 0o711 });
  chmodSync(scratch, 0o711);
  chmodSync(tmp, 0o711);
  savedTmpdir = process.env.TMPDIR;
  process.env.TMPDIR = tmp;
});
afterAll(() => {
  if (savedTmpdir === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = savedTmpdir;
  rmSync(scratch, { recursive: true, force: true });
});

async function waitUntil(check: () => boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('embedded PostgreSQL', () => {
  it.skipIf(!isRoot)('as root, runs from binaries under a directory only root can read, and removes its directory at stop', async () => {
    const privateHome = join(scratch, 'root-only');
    mkdirSync(privateHome, { mode: 0o700 });
    chmodSync(privateHome, 0o700);
    execFileSync('cp', ['-a', '--link', await nativeDir(), join(privateHome, 'native')]);
    const before = ours();
    const server = await startEmbeddedPostgres({ native: join(privateHome, 'native') });
    try {
      const [dir] = newDirs(before);
      expect(dir).toBeDefined();
      const c = new pg.Client(server.url);
      await c.connect();
      expect((await c.query<{ user: string }>('SELECT current_user AS user')).rows[0]!.user).toBe('postgres');
      await c.end();
      // no password file outlives initdb
      expect(readdirSync(join(tmp, dir!)).filter((n) => /pw/.test(n))).toEqual([]);
    } finally {
      await server.stop();
    }
    expect(newDirs(before)).toEqual([]);
  });

  it('a server that cannot start is one line, and nothing is left in the temp directory', async () => {
    const fake = join(scratch, 'broken');
    for (const d of ['bin', 'lib', 'share']) mkdirSync(join(fake, d), { recursive: true });
    for (const bin of ['initdb', 'postgres']) writeFileSync(join(fake, 'bin', bin), '#!/bin/sh\necho "FATAL: broken on purpose" >&2\nexit 3\n', { mode: 0o755 });
    const before = ours();
    const err = await startEmbeddedPostgres({ native: fake }).then(() => undefined, (e: Error) => e);
    expect(err?.message).toMatch(/^embedded PostgreSQL did not start: initdb failed: FATAL: broken on purpose$/);
    await waitUntil(() => newDirs(before).length === 0, 'the temp directory to be removed');
  });

  it('stops the server and removes its directory when the process that started it is killed', async () => {
    const before = ours();
    const script = `import { startEmbeddedPostgres } from ${JSON.stringify(join(ROOT, 'dist/dev/embedded/embedded-postgres.js'))};
const s = await startEmbeddedPostgres({}); console.log(s.port); setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
    const port = Number(chunk.toString().trim());
    expect(newDirs(before)).toHaveLength(1);
    child.kill('SIGKILL');
    await waitUntil(() => newDirs(before).length === 0, 'the temp directory to be removed');
    const probe = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', connectionTimeoutMillis: 2000 });
    await expect(probe.connect()).rejects.toThrow(/ECONNREFUSED/);
  });

  it('Ctrl-C during the demo stops the daemon, then the server, prints one line and exits 130', async () => {
    const before = ours();
    const child = spawn(process.execPath, [join(ROOT, 'dist/dev/demo/main.js')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    await waitUntil(() => out.includes('metrics: http://'), 'the demo daemon', 60_000);
    child.kill('SIGINT');
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(130);
    const lines = out.trimEnd().split('\n');
    expect(lines.at(-1)).toBe('interrupted (SIGINT): daemon stopped, throwaway server stopped and removed');
    expect(lines.indexOf(lines.find((l) => /\d\d:\d\d:\d\d stopped$/.test(l))!)).toBeLessThan(lines.length - 1);
    expect(out).not.toMatch(/\n\s+at /); // no stack trace
    expect(newDirs(before)).toEqual([]);
  });
});
