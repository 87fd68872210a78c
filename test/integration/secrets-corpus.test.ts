import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminUrl, ensureReaperRole, Sessions } from '../helpers/pg.js';

// A corpus of malformed (and a few well-formed but failing) connection strings, each holding one
// known password, fed to the shipped CLI as an operator would: `check --connect`, `once`, and a
// reload of a running daemon. The password must appear in none of their output.
//
// Hosts are loopback only: a string that parses connects to 127.0.0.1:1 (refused at once) or to
// the suite's server with a wrong password; every other host is rejected by the parser before
// anything connects, so no name is ever resolved.

const CLI = join(import.meta.dirname, '../../dist/pg-reaper/cli.js');
// every password below contains this token; none of the outputs may
const TOKEN = 'HuNt3r';
const s = new Sessions();
let dir: string;
let server: URL;
let reaper: string;

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error('dist/pg-reaper/cli.js is missing: run "npm run build" (npm test does it first)');
  await s.start();
  reaper = await ensureReaperRole(s.admin);
  server = new URL(adminUrl());
  dir = mkdtempSync(join(tmpdir(), 'pg-reaper-secrets-'));
  writeFileSync(join(dir, 'password'), `${TOKEN}-from-a-file\n`);
});
afterAll(async () => {
  await s.end();
  rmSync(dir, { recursive: true, force: true });
});

const R = '127.0.0.1:1'; // refuses at once

/** [label, the target's keys as YAML flow entries, whether `check` accepts it]. */
function corpus(): [string, string, boolean][] {
  const cs = (text: string) => `connectionString: ${JSON.stringify(text)}`;
  const live = `${server.hostname}:${server.port}`;
  return [
    // the URL form: every part broken in turn
    ['"/" in the password', cs(`postgres://reaper:${TOKEN}/Secret@${R}/postgres`), false],
    ['"?" in the password', cs(`postgres://reaper:${TOKEN}?Secret@${R}/postgres`), false],
    ['"#" in the password', cs(`postgres://reaper:${TOKEN}#Secret@${R}/postgres`), false],
    ['"@" in the password', cs(`postgres://reaper:${TOKEN}@Secret@${R}/postgres`), false],
    ['"[" in the password', cs(`postgres://reaper:${TOKEN}[x@${R}/postgres`), false],
    ['"]" in the password', cs(`postgres://reaper:${TOKEN}]x@${R}/postgres`), false],
    ['a bad percent-encoding in the password', cs(`postgres://reaper:${TOKEN}%zz@${R}/postgres`), false],
    ['a "%" at the end of the password', cs(`postgres://reaper:${TOKEN}%@${R}/postgres`), false],
    ['a bad percent-encoding in the user name', cs(`postgres://re%zz${TOKEN}:pw@${R}/postgres`), false],
    ['"/" in the user name', cs(`postgres://${TOKEN}/x@${R}/postgres`), false],
    ['a host that opens "[" without closing it', cs(`postgres://reaper:${TOKEN}@[127.0.0.1:55432/postgres`), false],
    ['an IPv4 address in brackets', cs(`postgres://reaper:${TOKEN}@[127.0.0.1]:1/postgres`), false],
    ['text after "]"', cs(`postgres://reaper:${TOKEN}@[::1]x/postgres`), false],
    ['a host cut short', cs(`postgres://reaper:${TOKEN}@127.0.0./postgres`), false],
    ['a host with a space', cs(`postgres://reaper:${TOKEN}@127.0.0.1 x:1/postgres`), false],
    ['several hosts', cs(`postgres://reaper:${TOKEN}@127.0.0.1,127.0.0.2/postgres`), false],
    ['a port out of range', cs(`postgres://reaper:${TOKEN}@127.0.0.1:99999/postgres`), false],
    ['a port that is not a number', cs(`postgres://reaper:${TOKEN}@127.0.0.1:5x/postgres`), false],
    ['a bad percent-encoding in the database', cs(`postgres://reaper:${TOKEN}@${R}/post%zzgres`), false],
    ['a "#" in the database', cs(`postgres://reaper:${TOKEN}@${R}/post#gres`), false],
    ['a bad sslmode', cs(`postgres://reaper:${TOKEN}@${R}/postgres?sslmode=required`), false],
    ['an unsupported parameter', cs(`postgres://reaper:${TOKEN}@${R}/postgres?target_session_attrs=any`), false],
    ['a parameter without a value', cs(`postgres://reaper:${TOKEN}@${R}/postgres?sslmode`), false],
    ['a bad connect_timeout', cs(`postgres://reaper:${TOKEN}@${R}/postgres?connect_timeout=0`), false],
    ['sslcert without sslkey', cs(`postgres://reaper:${TOKEN}@${R}/postgres?sslcert=/nonexistent.pem`), false],
    ['another application_name', cs(`postgres://reaper:${TOKEN}@${R}/postgres?application_name=psql`), false],
    ['a password parameter cut at "&"', cs(`postgres://${R}/postgres?password=a&${TOKEN}`), false],
    ['a password parameter cut at "&" before "="', cs(`postgres://${R}/postgres?password=a&${TOKEN}=b`), false],
    ['a bad percent-encoding in the password parameter', cs(`postgres://${R}/postgres?password=${TOKEN}%zz`), false],
    ['a URL password and password:', `${cs(`postgres://reaper:${TOKEN}@${R}/postgres`)}, password: other`, false],
    ['a URL password and passwordFile:', `${cs(`postgres://reaper:${TOKEN}@${R}/postgres`)}, passwordFile: password`, false],
    // the keyword/value form
    ['an unquoted password with a space', cs(`host=127.0.0.1 port=1 password=${TOKEN} Secret user=reaper`), false],
    ['an unquoted password with a space and "="', cs(`host=127.0.0.1 port=1 password=${TOKEN} Se=cret`), false],
    ['an unquoted user name with a space', cs(`host=127.0.0.1 port=1 user=${TOKEN} x`), false],
    ['an unterminated quoted password', cs(`host=127.0.0.1 port=1 password='${TOKEN} x`), false],
    ['a port out of range (keyword form)', cs(`host=127.0.0.1 port=99999 password=${TOKEN}`), false],
    ['a host cut short (keyword form)', cs(`host=127.0.0. port=1 password=${TOKEN}`), false],
    ['a bad sslmode (keyword form)', cs(`host=127.0.0.1 port=1 password=${TOKEN} sslmode=bogus`), false],
    ['an unsupported keyword after the password', cs(`host=127.0.0.1 port=1 password=${TOKEN} target_session_attrs=any`), false],
    ['no keyword at all', cs(`${TOKEN}`), false],
    ['a keyword password and password:', `${cs(`host=127.0.0.1 port=1 password='${TOKEN}'`)}, password: other`, false],
    // the host/port form
    ['a host cut short (host/port form)', `host: "127.0.0.", port: 1, user: reaper, password: "${TOKEN}"`, false],
    ['password and passwordFile', `host: 127.0.0.1, port: 1, user: reaper, password: "${TOKEN}", passwordFile: password`, false],
    // well-formed, with odd characters: they parse, connect and fail
    ['odd characters, percent-encoded, refused', cs(`postgresql://reaper:${TOKEN}%2F%3F%23%40%5B%5D%25%20'%22@${R}/postgres`), true],
    ['odd characters, quoted, refused', cs(`host=127.0.0.1 port=1 user=reaper password='${TOKEN} \\' \\\\ " # @ / ?' dbname=postgres`), true],
    ['a wrong password for the real server', cs(`postgres://${reaper}:${TOKEN}%2F%3Fx@${live}/postgres`), true],
    ['a passwordFile, refused', `host: 127.0.0.1, port: 1, user: reaper, database: postgres, passwordFile: password`, true],
    ['a password in the host/port form, refused', `host: 127.0.0.1, port: 1, user: reaper, database: postgres, password: "${TOKEN} #@/?"`, true],
  ];
}

const yaml = (target: string) => `schedule: "0 0 1 1 *"
logLevel: debug
http: { host: 127.0.0.1, port: 0 }
targets:
  - { name: main, connectTimeout: 2s, ${target} }
policies: [{ name: idle, maxIdle: 1h }]
`;

interface Result {
  code: number | null;
  output: string;
}

async function cli(args: string[]): Promise<Result> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DATABASE_URL: undefined } as NodeJS.ProcessEnv });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, output };
}

/** Runs `fn` over `items`, `width` at a time (the machine is shared). */
async function pool<T, R>(items: T[], width: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

describe('no password in any output, for a corpus of connection strings', () => {
  it('has at least 30 malformed strings, of both forms', () => {
    const bad = corpus().filter(([, , valid]) => !valid);
    expect(bad.length).toBeGreaterThanOrEqual(30);
    expect(bad.filter(([, t]) => t.includes('postgres://')).length).toBeGreaterThanOrEqual(20);
    expect(bad.filter(([, t]) => t.includes('host=')).length).toBeGreaterThanOrEqual(8);
  });

  it('check --connect and once: config errors exit 2 in one line each, failed connections exit 1, and the password is in neither', async () => {
    const results = await pool(corpus(), 3, async ([label, target, valid], i) => {
      const file = join(dir, `corpus-${i}.yaml`);
      writeFileSync(file, yaml(target));
      const check = await cli(['check', '--connect', '-c', file]);
      const run = await cli(['once', '--log-format', 'json', '-c', file]);
      return { label, valid, check, run };
    });
    for (const { label, valid, check, run } of results) {
      expect(check.output, label).not.toContain(TOKEN);
      expect(run.output, label).not.toContain(TOKEN);
      expect([check.code, run.code], `${label}: ${check.output}`).toEqual(valid ? [1, 1] : [2, 2]);
      if (!valid) {
        // one problem line with its location, then the count; no stack trace
        expect(check.output, label).toMatch(/^\S+corpus-\d+\.yaml:5:\d+ targets\[0\]\.\w+: .+\n\S+: 1 problem, config not loaded\n$/);
      }
    }
  }, 180_000);

  it('a running daemon, reloaded with each of them, logs no password', async () => {
    const file = join(dir, 'daemon.yaml');
    writeFileSync(file, yaml(`host: 127.0.0.1, port: 1, user: reaper, database: postgres`));
    const child = spawn(process.execPath, [CLI, 'run', '-c', file, '--log-format', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const count = (re: RegExp) => output.split('\n').filter((l) => re.test(l)).length;
    const waitFor = async (what: () => boolean, label: string) => {
      const deadline = Date.now() + 15_000;
      while (!what()) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`timed out waiting for ${label}:\n${output}`);
        await sleep(20);
      }
    };
    try {
      await waitFor(() => output.includes('pg-reaper started'), 'start');
      let rejected = 0;
      let applied = 0;
      for (const [label, target, valid] of corpus()) {
        writeFileSync(file, yaml(target));
        child.kill('SIGHUP');
        if (valid) {
          applied++;
          await waitFor(() => count(/"msg":"config reloaded"/) === applied, `the reload of ${label}`);
          // the target's run at reload, which fails to connect and logs why
          await waitFor(() => count(/"msg":"run (finished|failed)"/) > applied, `the run after ${label}`);
        } else {
          rejected++;
          await waitFor(() => count(/"msg":"config reload failed/) === rejected, `the rejection of ${label}`);
        }
      }
      expect(rejected).toBeGreaterThanOrEqual(30);
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    expect(output).not.toContain(TOKEN);
  }, 120_000);
});
