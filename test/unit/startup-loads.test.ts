import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Start-up: each verb loads only what it uses (the bundle is split at each verb's dynamic import,
// and heavy built-in modules are required where they are needed). What a process loaded is read
// from Node's own list, process.moduleLoadList, written at exit by a preloaded script: the
// built-in modules stand for the libraries behind them (pg needs crypto, net, tls and dns; the
// logger's pino needs os and worker_threads; the HTTP server needs http).

const CLI = join(import.meta.dirname, '../../dist/pg-reaper/cli.js');
let dir: string;

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error('dist/pg-reaper/cli.js is missing: run "npm run build" (npm test does it first)');
  dir = mkdtempSync(join(tmpdir(), 'pg-reaper-loads-'));
  writeFileSync(join(dir, 'preload.cjs'), `const fs = require('fs');\nprocess.on('exit', () => fs.writeFileSync(${JSON.stringify(join(dir, 'loaded.json'))}, JSON.stringify(process.moduleLoadList)));\n`);
  // the files read with readFileSync, noted the same way
  writeFileSync(
    join(dir, 'reads.cjs'),
    `const fs = require('fs');\nconst read = fs.readFileSync;\nconst files = [];\nfs.readFileSync = function (f, ...rest) { files.push(String(f)); return read.call(this, f, ...rest); };\nrequire('module').syncBuiltinESMExports();\nprocess.on('exit', () => fs.writeFileSync(${JSON.stringify(join(dir, 'reads.json'))}, JSON.stringify(files)));\n`,
  );
  // a target that is never reached: check does not connect
  writeFileSync(join(dir, 'config.yaml'), 'targets: [{ name: main, host: 127.0.0.1, port: 1, user: u, database: d }]\npolicies: [{ name: idle, maxIdle: 1h }]\n');
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The built-in modules (`tls`, `crypto`, …) the CLI loaded running `args`. */
function builtinsLoaded(args: string[], status = 0): string[] {
  const r = spawnSync(process.execPath, ['--require', join(dir, 'preload.cjs'), CLI, ...args], { cwd: dir, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  if (status === 0) expect(r.stderr).toBe('');
  expect(r.status).toBe(status);
  const list = JSON.parse(readFileSync(join(dir, 'loaded.json'), 'utf8')) as string[];
  return list.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice('NativeModule '.length));
}

const PG = ['crypto', 'tls', 'dns'];
const LOGGER = ['worker_threads'];
const SERVER = ['http', 'https'];
// what a `Response` loads: Node's fetch (undici) with its web streams, http2 and zlib
const FETCH = ['internal/deps/undici/undici', 'http2', 'zlib'];

describe('what each verb loads at start-up', () => {
  it('check loads neither pg nor the logger nor TLS nor the HTTP server', () => {
    const loaded = builtinsLoaded(['check', '-c', 'config.yaml']);
    expect(loaded).toContain('internal/modules/esm/loader'); // the list is real
    expect([...PG, ...LOGGER, ...SERVER, ...FETCH, 'perf_hooks'].filter((m) => loaded.includes(m))).toEqual([]);
  });

  it('once loads pg but not the HTTP server, nor fetch (pg asks whether it runs on Cloudflare)', () => {
    // the target refuses the connection (port 1): once reports it and exits 1, having loaded pg
    const loaded = builtinsLoaded(['once', '--dry-run', '-c', 'config.yaml'], 1);
    expect(loaded).toContain('dns'); // pg's
    expect([...SERVER, ...FETCH].filter((m) => loaded.includes(m))).toEqual([]);
  });

  it('--version and --help load none of them either', () => {
    for (const args of [['--version'], ['--help'], ['check', '--help']]) {
      const loaded = builtinsLoaded(args);
      expect([...PG, ...LOGGER, ...SERVER, 'perf_hooks'].filter((m) => loaded.includes(m))).toEqual([]);
    }
  });
});

describe('the version', () => {
  it('is written into the bundle: --version reads no package.json', () => {
    const r = spawnSync(process.execPath, ['--require', join(dir, 'reads.cjs'), CLI, '--version'], { cwd: dir, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string };
    expect(r.stdout).toBe(`pg-reaper ${pkg.version}\n`);
    const reads = JSON.parse(readFileSync(join(dir, 'reads.json'), 'utf8')) as string[];
    expect(reads.filter((f) => f.endsWith('package.json'))).toEqual([]);
  });
});

describe('the bundle in memory', () => {
  it('is ASCII, so V8 keeps each file as a one-byte string (a single em dash in a comment doubles a file on the heap)', () => {
    const bundle = join(import.meta.dirname, '../../dist/pg-reaper');
    const wide = readdirSync(bundle)
      .filter((f) => f.endsWith('.js'))
      .filter((f) => /[^\x00-\x7f]/.test(readFileSync(join(bundle, f), 'utf8')));
    expect(wide).toEqual([]);
  });
});
