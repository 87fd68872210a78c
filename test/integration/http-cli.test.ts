import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// http.webConfigFile through the shipped CLI: a web config that cannot be used is a config error
// (exit 2, one line per problem, as for the config file itself) for check and run, and a reload
// that brings one is rejected with the old TLS and users still in force. The target refuses
// (127.0.0.1:1): these tests need no PostgreSQL.

const CLI = join(import.meta.dirname, '../../dist/pg-reaper/cli.js');
let dir: string;

const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
const write = (name: string, text: string) => {
  writeFileSync(join(dir, name), text);
  return join(dir, name);
};

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error('dist/pg-reaper/cli.js is missing: run "npm run build" (npm test does it first)');
  dir = mkdtempSync(join(tmpdir(), 'pg-reaper-http-cli-'));
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=test CA', '-keyout', 'ca.key', '-out', 'ca.crt');
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=pg-reaper', '-keyout', 'server.key', '-out', 'server.csr');
  write('ext.cnf', 'subjectAltName=IP:127.0.0.1\n');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'ext.cnf', '-out', 'server.crt');
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const config = (web: string, probes = '') => `schedule: "0 0 1 1 *"
http: { host: 127.0.0.1, port: 0, webConfigFile: ${web}${probes} }
targets: [{ name: main, host: 127.0.0.1, port: 1, user: reaper, database: postgres, connectTimeout: 2s }]
policies: [{ name: idle, maxIdle: 1h }]
`;

function run(args: string[]): { child: ChildProcess; out: () => string; exit: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return { child, out: () => stdout, exit: once(child, 'exit').then(([code]) => ({ code: code as number | null, stdout, stderr })) };
}

function scrape(port: number, path: string, auth?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = auth ? { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {};
    const req = request({ host: '127.0.0.1', port, path, ca: readFileSync(join(dir, 'ca.crt')), headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('http.webConfigFile from the command line', () => {
  it('a web config that cannot be used fails check and run with exit 2 and one line for the problem', async () => {
    const bad = write('web-bad.yml', 'tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n');
    const file = write('bad.yaml', config('web-bad.yml'));
    for (const verb of ['check', 'run']) {
      const r = await run([verb, '-c', file]).exit;
      expect(r.code, r.stdout + r.stderr).toBe(2);
      expect(r.stderr.trimEnd().split('\n')).toEqual([`${bad}:2:14 tls_server_config.cert_file: cannot read ${join(dir, 'missing.crt')}: no such file (ENOENT)`, `${file}: 1 problem, config not loaded`]);
      expect(r.stdout).toBe('');
    }
    const missing = write('missing.yaml', config('nowhere.yml'));
    const r = await run(['check', '-c', missing]).exit;
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe(`${missing}:2:50 http.webConfigFile: ${join(dir, 'nowhere.yml')}: cannot read the web config file: no such file (ENOENT)`);
  });

  it('serves TLS with basic auth and the probes on their own port; a reload with a broken web config is rejected and the old one stays in force', async () => {
    const hash = (pw: string) => bcrypt.hashSync(pw, 5);
    const web = (users: string) => `tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n${users}`;
    write('web.yml', web(`  prometheus: ${hash('pw-1')}\n`));
    const file = write('run.yaml', config('web.yml', ', probes: { port: 0 }'));
    const p = run(['run', '-c', file, '--log-format', 'json']);
    const waitFor = async (what: () => boolean, label: string) => {
      const deadline = Date.now() + 15_000;
      while (!what()) {
        if (Date.now() > deadline || p.child.exitCode !== null) throw new Error(`timed out waiting for ${label}:\n${p.out()}`);
        await sleep(20);
      }
    };
    try {
      await waitFor(() => p.out().includes('pg-reaper started'), 'start');
      const started = JSON.parse(p.out().split('\n').find((l) => l.includes('pg-reaper started'))!) as { port: number; probesPort: number; tls: boolean; msg: string };
      expect(started).toMatchObject({ tls: true, msg: expect.stringMatching(/^pg-reaper started; metrics on https:\/\/127\.0\.0\.1:\d+\/metrics$/) });
      expect((await scrape(started.port, '/metrics')).status).toBe(401);
      expect((await scrape(started.port, '/metrics', 'prometheus:pw-1')).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${started.probesPort}/livez`)).status).toBe(200);

      const metric = async () => Number(/^pg_reaper_config_last_reload_successful (\S+)$/m.exec((await scrape(started.port, '/metrics', 'prometheus:pw-1')).body)?.[1]);
      // a reload whose web config cannot be used: the config file itself has not changed
      write('web.yml', 'tls_server_config:\n  cert_file: server.crt\n');
      p.child.kill('SIGHUP');
      await waitFor(() => p.out().includes('config reload failed'), 'the rejected reload');
      expect(p.out()).toContain('tls_server_config: expected key_file (or key)');
      expect(await metric()).toBe(0);
      expect((await scrape(started.port, '/metrics')).status).toBe(401);

      // a good one: a new user, applied at the reload
      write('web.yml', web(`  prometheus: ${hash('pw-1')}\n  grafana: ${hash('pw-2')}\n`));
      p.child.kill('SIGHUP');
      await waitFor(() => p.out().includes('"msg":"config reloaded"'), 'the applied reload');
      expect((await scrape(started.port, '/metrics', 'grafana:pw-2')).status).toBe(200);
      expect(await metric()).toBe(1);
    } finally {
      p.child.kill('SIGTERM');
    }
    expect((await p.exit).code).toBe(0);
  });
});
