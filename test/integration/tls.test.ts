import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { openTarget } from '../../src/db/target.js';
import { startEmbeddedPostgres, type EmbeddedServer } from '../../dev/embedded/embedded-postgres.js';
import { adminUrl } from '../helpers/pg.js';

// libpq's sslmode against a real server with TLS on, a CA and a server certificate made here
// (for "localhost" only), and a pg_hba.conf that accepts TLS connections only.

let dir: string;
let server: EmbeddedServer;
let ca: string;
let wrongCa: string;
const warnings: string[] = [];
const stderrWrites: string[] = [];

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pg-reaper-tls-'));
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=pg-reaper test CA', '-keyout', 'ca.key', '-out', 'ca.crt');
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=someone else', '-keyout', 'wrong.key', '-out', 'wrong.crt');
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', 'server.key', '-out', 'server.csr');
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost\n');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'ext.cnf', '-out', 'server.crt');
  ca = join(dir, 'ca.crt');
  wrongCa = join(dir, 'wrong.crt');
  server = await startEmbeddedPostgres({
    ssl: { cert: readFileSync(join(dir, 'server.crt'), 'utf8'), key: readFileSync(join(dir, 'server.key'), 'utf8') },
    hba: ['hostssl all all 127.0.0.1/32 scram-sha-256', 'hostssl all all ::1/128 scram-sha-256'],
  });
  process.on('warning', (w) => warnings.push(w.message));
  const write = process.stderr.write.bind(process.stderr);
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array, ...rest: unknown[]) => {
    stderrWrites.push(String(chunk));
    return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
  });
}, 120_000);

afterAll(async () => {
  vi.restoreAllMocks();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Connects with the given target settings; the TLS state of the session, or the error text. */
async function attempt(target: Record<string, unknown>): Promise<{ ssl: boolean } | { error: string }> {
  const config = validateConfig({ targets: [{ name: 'tls', connectTimeout: '5s', ...target }], policies: [{ name: 'p', maxIdle: '1h' }] });
  const db = openTarget(config.targets[0]!, { applicationName: 'pg-reaper' });
  try {
    const rows = await db.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    return { ssl: rows[0]!.ssl };
  } catch (err) {
    return { error: (err as Error).message };
  } finally {
    await db.close();
  }
}

const url = (host: string, params: string) => `postgres://postgres:${server.password}@${host}:${server.port}/postgres?${params}`;
const kv = (host: string, params: string) => `host=${host} port=${server.port} dbname=postgres user=postgres password='${server.password}' ${params}`;

describe('sslmode, as libpq means it', () => {
  it('require: encrypted without a CA, though the certificate is from a private CA', async () => {
    expect(await attempt({ connectionString: url('127.0.0.1', 'sslmode=require') })).toEqual({ ssl: true });
    expect(await attempt({ connectionString: kv('127.0.0.1', 'sslmode=require') })).toEqual({ ssl: true });
  });

  it('require with a root certificate checks the chain like verify-ca', async () => {
    expect(await attempt({ connectionString: url('127.0.0.1', `sslmode=require&sslrootcert=${ca}`) })).toEqual({ ssl: true });
    const wrong = await attempt({ connectionString: url('127.0.0.1', `sslmode=require&sslrootcert=${wrongCa}`) });
    expect('error' in wrong && wrong.error).toMatch(/certificate/);
  });

  it('verify-full: the right CA and host connect; the wrong CA or a host the certificate does not name fail in one line', async () => {
    expect(await attempt({ connectionString: kv('localhost', `sslmode=verify-full sslrootcert=${ca}`) })).toEqual({ ssl: true });
    const wrongCaResult = await attempt({ connectionString: kv('localhost', `sslmode=verify-full sslrootcert=${wrongCa}`) });
    expect('error' in wrongCaResult && wrongCaResult.error).toMatch(/^(self-signed certificate in certificate chain|unable to verify the first certificate|unable to get local issuer certificate)$/);
    const wrongHost = await attempt({ connectionString: kv('127.0.0.1', `sslmode=verify-full sslrootcert=${ca}`) });
    expect('error' in wrongHost && wrongHost.error).toMatch(/^Hostname\/IP does not match certificate's altnames: IP: 127\.0\.0\.1 is not in the cert's list: *$/);
    // verify-ca checks the chain only
    expect(await attempt({ connectionString: kv('127.0.0.1', `sslmode=verify-ca sslrootcert=${ca}`) })).toEqual({ ssl: true });
  });

  it('the host/port form takes the same through an ssl block', async () => {
    const base = { host: 'localhost', port: server.port, user: 'postgres', password: server.password, database: 'postgres' };
    expect(await attempt({ ...base, ssl: { mode: 'verify-full', rootCert: ca } })).toEqual({ ssl: true });
    const wrong = await attempt({ ...base, ssl: { mode: 'verify-full', rootCert: wrongCa } });
    expect('error' in wrong && wrong.error).toMatch(/certificate/);
    const missing = await attempt({ ...base, ssl: { mode: 'verify-full', rootCert: join(dir, 'nope.crt') } });
    expect(missing).toEqual({ error: `cannot read sslrootcert ${join(dir, 'nope.crt')}: ENOENT` });
  });

  it('disable against a server that only accepts TLS fails clearly', async () => {
    const r = await attempt({ connectionString: url('127.0.0.1', 'sslmode=disable') });
    expect('error' in r && r.error).toMatch(/^no pg_hba\.conf entry for host "127\.0\.0\.1", user "postgres", database "postgres", (no encryption|SSL off)$/); // 14+ / 13
  });

  it('prefer (the default) uses TLS when offered and plain when not; allow falls back to TLS when plain is refused', async () => {
    expect(await attempt({ connectionString: url('127.0.0.1', 'connect_timeout=5') })).toEqual({ ssl: true });
    expect(await attempt({ connectionString: adminUrl() })).toEqual({ ssl: false });
    expect(await attempt({ connectionString: url('127.0.0.1', 'sslmode=allow') })).toEqual({ ssl: true });
    expect(await attempt({ connectionString: `${adminUrl()}?sslmode=allow` })).toEqual({ ssl: false });
    const required = await attempt({ connectionString: `${adminUrl()}?sslmode=require` });
    expect(required).toEqual({ error: 'The server does not support SSL connections' });
  });

  it('printed no warning on stderr', () => {
    expect(warnings).toEqual([]);
    expect(stderrWrites.join('')).not.toMatch(/WARNING|sslmode/i);
  });
});
