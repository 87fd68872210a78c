import { describe, expect, it } from 'vitest';
import { formatWebProblem, parseWebConfig } from '../../src/config/web-config.js';

// The exporter-toolkit web config format: what pg-reaper accepts, and a located message for all
// else, never echoing a secret. (TLS files that exist are covered in test/integration/http.test.ts.)

const problems = (text: string) => {
  const r = parseWebConfig(text, '/etc/web.yml');
  if (r.ok) throw new Error('expected a rejection');
  return r.problems.map(formatWebProblem);
};
const HASH = '$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG';

describe('web config', () => {
  it('an empty file is plain HTTP without authentication; users and headers are read', () => {
    for (const text of ['', '# nothing\n', '{}\n', 'basic_auth_users:\n']) {
      const r = parseWebConfig(text, 'w.yml');
      expect(r.ok && { tls: r.web.tls, users: r.web.users.size }).toEqual({ tls: undefined, users: 0 });
    }
    const r = parseWebConfig(`basic_auth_users:\n  prometheus: ${HASH}\n  "grafana agent": $2b$12$${'a'.repeat(53)}\nhttp_server_config:\n  http2: false\n  headers: { X-Frame-Options: deny, Strict-Transport-Security: max-age=31536000 }\n`, 'w.yml');
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    expect([...r.web.users.keys()]).toEqual(['prometheus', 'grafana agent']);
    expect(r.web.headers).toEqual({ 'X-Frame-Options': 'deny', 'Strict-Transport-Security': 'max-age=31536000' });
  });

  it('rejects unknown keys, and says which keys of the format pg-reaper does not implement', () => {
    expect(problems('tls_config:\n  cert_file: x\n')).toEqual(['/etc/web.yml:1:1 tls_config: unknown key "tls_config"; accepted keys: tls_server_config, http_server_config, basic_auth_users']);
    expect(problems('rate_limit: { interval: 1s, burst: 5 }\n')).toEqual(['/etc/web.yml:1:1 rate_limit: rate limiting (rate_limit) is part of the exporter-toolkit format but pg-reaper does not implement it: remove the key']);
    expect(problems('tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n')[0]).toBe(
      '/etc/web.yml:4:3 tls_server_config.cipher_suites: Go cipher suite names (tls_server_config.cipher_suites) is part of the exporter-toolkit format but pg-reaper does not implement it: remove the key',
    );
    expect(problems('http_server_config:\n  headers: { X-Powered-By: me }\n')[0]).toMatch(/^\/etc\/web\.yml:2:14 http_server_config\.headers\.X-Powered-By: unknown header "X-Powered-By"; accepted: Content-Security-Policy/);
    expect(problems('http_server_config:\n  headers: { X-Frame-Options: allow }\n')).toEqual(['/etc/web.yml:2:31 http_server_config.headers.X-Frame-Options: expected deny or sameorigin, got "allow"']);
  });

  it('wants bcrypt hashes and never echoes what it got instead', () => {
    const out = problems('basic_auth_users:\n  prometheus: Hunter9Secret\n  "a:b": ' + HASH + '\n');
    expect(out).toEqual([
      `/etc/web.yml:2:15 basic_auth_users.prometheus: expected a bcrypt hash like "$2y$10$..." (htpasswd -nBC 10 "" | tr -d ':\\n'), not the password itself`,
      '/etc/web.yml:3:3 basic_auth_users.a:b: a user name must be non-empty and hold no ":" (basic authentication sends user:password)',
    ]);
    expect(out.join('\n')).not.toContain('Hunter9Secret');
    expect(problems('basic_auth_users: [a, b]\n')).toEqual(['/etc/web.yml:1:19 basic_auth_users: expected a mapping']);
  });

  it('checks tls_server_config as a whole: files, client auth and versions', () => {
    expect(problems('tls_server_config:\n  cert_file: /nonexistent/c.pem\n  key_file: /nonexistent/k.pem\n')).toEqual([
      '/etc/web.yml:2:14 tls_server_config.cert_file: cannot read /nonexistent/c.pem: no such file (ENOENT)',
      '/etc/web.yml:3:13 tls_server_config.key_file: cannot read /nonexistent/k.pem: no such file (ENOENT)',
    ]);
    expect(problems('tls_server_config:\n  key_file: /nonexistent/k.pem\n')[0]).toMatch(/key_file: cannot read/);
    expect(problems('tls_server_config: {}\n')).toEqual(['/etc/web.yml:1:20 tls_server_config: expected cert_file (or cert): the server certificate, PEM']);
    expect(problems('tls_server_config:\n  cert: x\n  key: Hunter9Secret\n')).toEqual([
      expect.stringMatching(/^\/etc\/web\.yml:2:3 tls_server_config: the certificate, key or CA cannot be used: .* \(each must be PEM, and the key must be the certificate's, without a passphrase\)$/),
    ]);
    expect(problems('tls_server_config:\n  cert: x\n  key: Hunter9Secret\n').join()).not.toContain('Hunter9Secret');
    const base = 'tls_server_config:\n  cert: x\n  key: y\n';
    expect(problems(base + '  client_auth_type: RequireAndVerify\n')[0]).toBe(
      '/etc/web.yml:4:21 tls_server_config.client_auth_type: expected one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert, got "RequireAndVerify"',
    );
    expect(problems(base + '  client_auth_type: RequireAndVerifyClientCert\n')[0]).toBe('/etc/web.yml:4:21 tls_server_config.client_auth_type: RequireAndVerifyClientCert needs client_ca_file (or client_ca): the CA that signs the client certificates');
    expect(problems(base + '  client_ca: z\n')[0]).toMatch(/client_auth_type: a client CA is given without a client_auth_type that asks for a client certificate/);
    expect(problems(base + '  min_version: TLS14\n')[0]).toBe('/etc/web.yml:4:16 tls_server_config.min_version: expected one of TLS10, TLS11, TLS12, TLS13, got "TLS14"');
    expect(problems(base + '  cert_file: a.pem\n')[0]).toBe('/etc/web.yml:2:9 tls_server_config.cert: give cert_file or cert, not both');
  });

  it('reports invalid YAML with its position', () => {
    expect(problems('basic_auth_users:\n  a: [\n')[0]).toMatch(/^\/etc\/web\.yml:\d+:\d+ invalid YAML: /);
  });
});
