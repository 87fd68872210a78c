import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import bcrypt from 'bcryptjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { startHttpServer, WebConfigError, type HttpServer } from '../../src/http/server.js';
import { DEFAULT_LIMITS, type HttpLimits } from '../../src/http/limits.js';
import { createMetrics } from '../../src/metrics/metrics.js';

// The HTTP endpoint as a scraper, a kubelet and an attacker meet it: TLS from a CA made here with
// openssl, basic auth with bcrypt hashes, probes without credentials where the operator says, a
// web config reread when it changes, and slow or idle clients closed while /metrics answers.
// Loopback only.

let dir: string;
const metrics = createMetrics('test');
const health = { live: () => true, ready: () => true };
const servers: HttpServer[] = [];
const webLog: { applied: string[]; rejected: string[][] } = { applied: [], rejected: [] };
const deps = (limits?: HttpLimits) => ({ webConfigLog: { applied: (f: string) => webLog.applied.push(f), rejected: (_f: string, p: string[]) => webLog.rejected.push(p) }, ...(limits ? { limits } : {}) });

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA, and a certificate it signs for `cn` with the given subjectAltName. */
function issue(ca: string, name: string, san: string, extra: string[] = []): void {
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`);
  writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\n${extra.join('\n')}\n`);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.crt`);
}

function newCa(name: string): void {
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.crt`);
}

/** htpasswd -B when apache2-utils is installed, else bcryptjs: either way a real bcrypt hash. */
function bcryptHash(password: string): string {
  try {
    return execFileSync('htpasswd', ['-nbBC', '5', '', password], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().replace(/^:/, '');
  } catch {
    return bcrypt.hashSync(password, 5);
  }
}

const file = (name: string, text: string) => {
  writeFileSync(join(dir, name), text);
  return join(dir, name);
};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pg-reaper-http-'));
  newCa('ca');
  newCa('other-ca');
  issue('ca', 'server', 'IP:127.0.0.1');
  issue('other-ca', 'server2', 'IP:127.0.0.1');
  issue('ca', 'client', 'DNS:scraper', ['extendedKeyUsage=clientAuth']);
  issue('other-ca', 'stranger', 'DNS:stranger', ['extendedKeyUsage=clientAuth']);
}, 60_000);
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  webLog.applied.length = 0;
  webLog.rejected.length = 0;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function start(http: Record<string, unknown>, limits?: HttpLimits): Promise<HttpServer> {
  const config = validateConfig({ http: { host: '127.0.0.1', port: 0, ...http }, targets: [{ name: 'a', host: '127.0.0.1' }], policies: [{ name: 'p', maxIdle: '1h' }] });
  const s = await startHttpServer(config.http, metrics.registry, health, deps(limits));
  servers.push(s);
  return s;
}

interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

function get(port: number, path: string, opts: { tls?: { ca?: string; cert?: string; key?: string }; auth?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = opts.auth ? { authorization: `Basic ${Buffer.from(opts.auth).toString('base64')}` } : {};
  if (!opts.tls) return fetch(`http://127.0.0.1:${port}${path}`, { headers }).then(async (r) => ({ status: r.status, body: await r.text(), headers: Object.fromEntries(r.headers) }));
  const read = (name?: string) => (name ? readFileSync(join(dir, name)) : undefined);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port, path, headers, ca: read(opts.tls!.ca), cert: read(opts.tls!.cert), key: read(opts.tls!.key), agent: false },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const tlsConfig = (extra = '') => `tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n${extra}`;

describe('TLS from the web config', () => {
  it('a scrape that trusts the CA gets /metrics; plain HTTP and a client that does not trust it fail', async () => {
    const s = await start({ webConfigFile: file('web-tls.yml', tlsConfig()) });
    expect(s.tls).toBe(true);
    const ok = await get(s.port, '/metrics', { tls: { ca: 'ca.crt' } });
    expect(ok.status).toBe(200);
    expect(ok.body).toContain('pg_reaper_build_info');
    await expect(get(s.port, '/metrics')).rejects.toThrow();
    await expect(get(s.port, '/metrics', { tls: { ca: 'other-ca.crt' } })).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
  });

  it('a certificate replaced on disk is served to the next connection, without a restart', async () => {
    file('rotating.crt', readFileSync(join(dir, 'server.crt'), 'utf8'));
    file('rotating.key', readFileSync(join(dir, 'server.key'), 'utf8'));
    const s = await start({ webConfigFile: file('web-rotating.yml', 'tls_server_config:\n  cert_file: rotating.crt\n  key_file: rotating.key\n') });
    expect((await get(s.port, '/livez', { tls: { ca: 'ca.crt' } })).status).toBe(200);
    // as cert-manager or a kubelet would: new files in place, each replaced whole
    file('rotating.key.new', readFileSync(join(dir, 'server2.key'), 'utf8'));
    file('rotating.crt.new', readFileSync(join(dir, 'server2.crt'), 'utf8'));
    renameSync(join(dir, 'rotating.key.new'), join(dir, 'rotating.key'));
    renameSync(join(dir, 'rotating.crt.new'), join(dir, 'rotating.crt'));
    expect((await get(s.port, '/livez', { tls: { ca: 'other-ca.crt' } })).status).toBe(200);
    await expect(get(s.port, '/livez', { tls: { ca: 'ca.crt' } })).rejects.toThrow();
    expect(webLog.applied).toHaveLength(1);
  });

  it('client_auth_type RequireAndVerifyClientCert: only a certificate from client_ca_file gets in', async () => {
    const s = await start({ webConfigFile: file('web-mtls.yml', tlsConfig('  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n')) });
    expect((await get(s.port, '/metrics', { tls: { ca: 'ca.crt', cert: 'client.crt', key: 'client.key' } })).status).toBe(200);
    await expect(get(s.port, '/metrics', { tls: { ca: 'ca.crt' } })).rejects.toThrow();
    await expect(get(s.port, '/metrics', { tls: { ca: 'ca.crt', cert: 'stranger.crt', key: 'stranger.key' } })).rejects.toThrow();
  });

  it('client_auth_type RequireAnyClientCert wants a certificate; VerifyClientCertIfGiven checks one only when given', async () => {
    const any = await start({ webConfigFile: file('web-any.yml', tlsConfig('  client_auth_type: RequireAnyClientCert\n')) });
    expect((await get(any.port, '/livez', { tls: { ca: 'ca.crt', cert: 'stranger.crt', key: 'stranger.key' } })).status).toBe(200);
    await expect(get(any.port, '/livez', { tls: { ca: 'ca.crt' } })).rejects.toThrow();
    const ifGiven = await start({ webConfigFile: file('web-ifgiven.yml', tlsConfig('  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n')) });
    expect((await get(ifGiven.port, '/livez', { tls: { ca: 'ca.crt' } })).status).toBe(200);
    expect((await get(ifGiven.port, '/livez', { tls: { ca: 'ca.crt', cert: 'client.crt', key: 'client.key' } })).status).toBe(200);
    await expect(get(ifGiven.port, '/livez', { tls: { ca: 'ca.crt', cert: 'stranger.crt', key: 'stranger.key' } })).rejects.toThrow();
  });
});

describe('basic auth from the web config', () => {
  it('401 without or with wrong credentials, 200 with them; probes need them too unless exempt or on their own port', async () => {
    const web = file('web-auth.yml', `basic_auth_users:\n  prometheus: ${bcryptHash('scrape-pw')}\n`);
    const s = await start({ webConfigFile: web, probes: { port: 0 } });
    const none = await get(s.port, '/metrics');
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Basic realm="pg-reaper"/);
    expect(none.body).not.toContain('pg_reaper');
    expect((await get(s.port, '/metrics', { auth: 'prometheus:wrong' })).status).toBe(401);
    expect((await get(s.port, '/metrics', { auth: 'nobody:scrape-pw' })).status).toBe(401);
    const ok = await get(s.port, '/metrics', { auth: 'prometheus:scrape-pw' });
    expect(ok.status).toBe(200);
    expect(ok.body).toContain('pg_reaper_build_info');
    expect((await get(s.port, '/readyz')).status).toBe(401);
    // the probes port: probes only, no credentials
    expect(s.probes?.port).toBeGreaterThan(0);
    expect((await get(s.probes!.port, '/livez')).status).toBe(200);
    expect((await get(s.probes!.port, '/readyz')).status).toBe(200);
    expect((await get(s.probes!.port, '/metrics')).status).toBe(404);

    const exempt = await start({ webConfigFile: web, probes: { requireAuth: false } });
    expect((await get(exempt.port, '/livez')).status).toBe(200);
    expect((await get(exempt.port, '/readyz')).status).toBe(200);
    expect((await get(exempt.port, '/metrics')).status).toBe(401);
  });

  it('TLS and basic auth together, with the headers of http_server_config', async () => {
    const s = await start({
      webConfigFile: file('web-both.yml', `${tlsConfig()}http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\nbasic_auth_users:\n  prometheus: ${bcryptHash('pw')}\n`),
    });
    expect((await get(s.port, '/metrics', { tls: { ca: 'ca.crt' } })).status).toBe(401);
    const ok = await get(s.port, '/metrics', { tls: { ca: 'ca.crt' }, auth: 'prometheus:pw' });
    expect(ok.status).toBe(200);
    expect(ok.headers['x-content-type-options']).toBe('nosniff');
  });

  it('a user added to the file is let in at the next request; a broken change keeps the users in force', async () => {
    const web = file('web-users.yml', `basic_auth_users:\n  a: ${bcryptHash('pw-a')}\n`);
    const s = await start({ webConfigFile: web });
    expect((await get(s.port, '/metrics', { auth: 'b:pw-b' })).status).toBe(401);
    file('web-users.yml', `basic_auth_users:\n  a: ${bcryptHash('pw-a')}\n  b: ${bcryptHash('pw-b')}\n`);
    expect((await get(s.port, '/metrics', { auth: 'b:pw-b' })).status).toBe(200);
    expect(webLog.applied).toHaveLength(1);
    file('web-users.yml', 'basic_auth_users:\n  a: pw-a-in-clear\n');
    expect((await get(s.port, '/metrics', { auth: 'b:pw-b' })).status).toBe(200);
    expect((await get(s.port, '/metrics')).status).toBe(401);
    expect(webLog.rejected).toEqual([[expect.stringMatching(/web-users\.yml:2:6 basic_auth_users\.a: expected a bcrypt hash/)]]);
    expect(JSON.stringify(webLog.rejected)).not.toContain('pw-a-in-clear');
  });
});

describe('a web config that cannot be used', () => {
  it('fails the start with its problems, and a reload that brings it is refused: the listener keeps what it had', async () => {
    const bad = file('web-bad.yml', 'tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n');
    const config = validateConfig({ http: { host: '127.0.0.1', port: 0, webConfigFile: bad }, targets: [{ name: 'a', host: '127.0.0.1' }], policies: [{ name: 'p', maxIdle: '1h' }] });
    const failed = await startHttpServer(config.http, metrics.registry, health, deps()).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failed).toBeInstanceOf(WebConfigError);
    expect((failed as WebConfigError).problems).toEqual([`${bad}:2:14 tls_server_config.cert_file: cannot read ${join(dir, 'missing.crt')}: no such file (ENOENT)`]);

    const s = await start({ webConfigFile: file('web-ok.yml', `basic_auth_users:\n  a: ${bcryptHash('pw')}\n`) });
    const reload = (http: Record<string, unknown>) => () => s.prepare(validateConfig({ http: { host: '127.0.0.1', port: 0, ...http }, targets: [{ name: 'a', host: '127.0.0.1' }], policies: [{ name: 'p', maxIdle: '1h' }] }).http);
    expect(reload({ webConfigFile: bad })).toThrow(WebConfigError);
    expect(reload({ webConfigFile: file('web-tls-now.yml', tlsConfig()) })).toThrow(/tls_server_config added: turning TLS on or off takes a restart; the listener keeps serving plain HTTP/);
    expect((await get(s.port, '/metrics')).status).toBe(401);
    expect((await get(s.port, '/metrics', { auth: 'a:pw' })).status).toBe(200);
    // a good one applies when the caller says so
    const apply = s.prepare(validateConfig({ http: { host: '127.0.0.1', port: 0 }, targets: [{ name: 'a', host: '127.0.0.1' }], policies: [{ name: 'p', maxIdle: '1h' }] }).http);
    expect((await get(s.port, '/metrics')).status).toBe(401);
    apply();
    expect((await get(s.port, '/metrics')).status).toBe(200);
  });
});

describe('slow and idle clients', () => {
  // the defaults, scaled down so the test takes seconds: one header line every 300 ms against a
  // 1.2 s header deadline stands for one every 10 s against 10 s
  const limits: HttpLimits = { ...DEFAULT_LIMITS, headersTimeout: 1200, requestTimeout: 1500, keepAliveTimeout: 500, idleTimeout: 3000, checkInterval: 100, maxConnections: 40 };

  const open = (port: number) =>
    new Promise<{ socket: Socket; closed: () => boolean }>((resolve, reject) => {
      let closed = false;
      const socket = connect(port, '127.0.0.1', () => resolve({ socket, closed: () => closed }));
      socket.on('error', () => undefined);
      socket.on('close', () => (closed = true));
      // flowing, so that the server's close is seen at once ('end' waits for a reader)
      socket.resume();
      socket.once('error', reject);
    });

  it('closes connections that trickle headers or say nothing, and refuses more than maxConnections, while /metrics answers', async () => {
    const s = await start({}, limits);
    const slow = await Promise.all(Array.from({ length: 10 }, () => open(s.port)));
    const idle = await Promise.all(Array.from({ length: 10 }, () => open(s.port)));
    for (const c of slow) c.socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n');
    const trickle = setInterval(() => {
      for (const c of slow) if (!c.closed()) c.socket.write(`X-Slow-${Date.now()}: 1\r\n`);
    }, 300);
    try {
      const started = Date.now();
      // while they are held, /metrics answers
      const during = await get(s.port, '/metrics');
      expect(during.status).toBe(200);
      const deadline = started + 6000;
      while ([...slow, ...idle].some((c) => !c.closed()) && Date.now() < deadline) await sleep(50);
      expect(slow.filter((c) => !c.closed())).toHaveLength(0);
      expect(idle.filter((c) => !c.closed())).toHaveLength(0);
      // closed by the header deadline, not by the idle timeout or the end of the test
      expect(Date.now() - started).toBeLessThan(limits.idleTimeout);
      expect((await get(s.port, '/metrics')).status).toBe(200);

      // past maxConnections, new connections are closed as they arrive
      const held = await Promise.all(Array.from({ length: limits.maxConnections }, () => open(s.port)));
      const extra = await open(s.port);
      const until = Date.now() + 2000;
      while (!extra.closed() && Date.now() < until) await sleep(20);
      expect(extra.closed()).toBe(true);
      for (const c of held) c.socket.destroy();
      const after = Date.now() + 2000;
      let status = 0;
      while (status !== 200 && Date.now() < after) status = await get(s.port, '/metrics').then((r) => r.status, () => 0);
      expect(status).toBe(200);
    } finally {
      clearInterval(trickle);
      for (const c of [...slow, ...idle]) c.socket.destroy();
    }
  });

  it('ends a kept-alive connection after keepAliveTimeout, and one that does not finish its TLS handshake', async () => {
    const s = await start({}, limits);
    const c = await open(s.port);
    c.socket.write('GET /livez HTTP/1.1\r\nHost: x\r\n\r\n');
    const until = Date.now() + 3000;
    while (!c.closed() && Date.now() < until) await sleep(20);
    expect(c.closed()).toBe(true);

    const t = await start({ webConfigFile: file('web-hs.yml', tlsConfig()) }, limits);
    const h = await open(t.port);
    h.socket.write(Buffer.from([0x16, 0x03, 0x01])); // the start of a ClientHello, then nothing
    const hsUntil = Date.now() + 4000;
    while (!h.closed() && Date.now() < hsUntil) await sleep(20);
    expect(h.closed()).toBe(true);
  });

  it('the defaults are those of a scrape endpoint', () => {
    expect(DEFAULT_LIMITS).toEqual({ headersTimeout: 10_000, requestTimeout: 15_000, keepAliveTimeout: 5_000, idleTimeout: 30_000, checkInterval: 1_000, maxConnections: 64, maxRequestsPerSocket: 100 });
  });
});

it('the test certificates exist', () => {
  expect(existsSync(join(dir, 'server.crt'))).toBe(true);
});
