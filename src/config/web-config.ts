import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type * as Tls from 'node:tls';
import { createRequire } from 'node:module';
import { isMap, isScalar, LineCounter, parseDocument, type Node, type Pair, type YAMLMap } from 'yaml';
import { readError } from './files.js';

// http.webConfigFile: TLS and basic authentication for /metrics in the format of the Prometheus
// exporter-toolkit (docs/web-configuration.md there), so an operator can reuse the file and the
// habits of every other exporter. Read and checked as a whole: at load (check, start, reload)
// and whenever it or a file it names changes (see web-config-source.ts). Unknown keys are
// errors; keys of the format that pg-reaper does not implement are errors that say so, never
// silently ignored. Secret values (inline keys, password hashes) are never echoed.

// node:tls (with crypto, net and streams behind it) is loaded only when a web config names TLS
// files: `check` and `once` without one never pay for it at start-up
const createSecureContext = (options: Tls.SecureContextOptions) => (createRequire(import.meta.url)('node:tls') as typeof Tls).createSecureContext(options);

export const CLIENT_AUTH_TYPES = ['NoClientCert', 'RequestClientCert', 'RequireAnyClientCert', 'VerifyClientCertIfGiven', 'RequireAndVerifyClientCert'] as const;
export type ClientAuthType = (typeof CLIENT_AUTH_TYPES)[number];
const TLS_VERSIONS = { TLS10: 'TLSv1', TLS11: 'TLSv1.1', TLS12: 'TLSv1.2', TLS13: 'TLSv1.3' } as const;
const HEADERS = ['Content-Security-Policy', 'X-Frame-Options', 'X-Content-Type-Options', 'X-XSS-Protection', 'Strict-Transport-Security'] as const;
const NOT_IMPLEMENTED: Record<string, string> = {
  'tls_server_config.cipher_suites': 'Go cipher suite names',
  'tls_server_config.curve_preferences': 'Go curve names',
  'tls_server_config.client_allowed_sans': 'matching client certificate SANs',
  rate_limit: 'rate limiting',
};

export interface WebTls {
  /** Options for tls.createSecureContext / server.setSecureContext. */
  options: Tls.SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean };
  clientAuth: ClientAuthType;
}

export interface WebConfig {
  file: string;
  tls?: WebTls;
  /** User name → bcrypt hash; empty: no authentication. */
  users: Map<string, string>;
  headers: Record<string, string>;
  /** Every file read (the web config itself, certificates, keys, CAs): a change to any is a change of the config. */
  inputs: string[];
}

export interface WebConfigProblem {
  file: string;
  line: number;
  col: number;
  path: string;
  message: string;
}

export type WebConfigResult = { ok: true; web: WebConfig } | { ok: false; problems: WebConfigProblem[] };

export function loadWebConfig(file: string): WebConfigResult {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { ok: false, problems: [{ file, line: 0, col: 0, path: '', message: `cannot read the web config file: ${readError(err)}` }] };
  }
  return parseWebConfig(text, file);
}

export function parseWebConfig(text: string, file: string): WebConfigResult {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const problems: WebConfigProblem[] = [];
  const report = (node: Node | null | undefined, path: string, message: string) => {
    const pos = lines.linePos(node?.range?.[0] ?? 0);
    problems.push({ file, line: pos.line, col: pos.col, path, message });
  };
  for (const error of doc.errors) {
    const pos = lines.linePos(error.pos[0]);
    problems.push({ file, line: pos.line, col: pos.col, path: '', message: `invalid YAML: ${error.message.split('\n')[0]}` });
  }
  if (problems.length) return { ok: false, problems };

  const dir = dirname(resolve(file));
  const web: WebConfig = { file, users: new Map(), headers: {}, inputs: [resolve(file)] };
  const root = doc.contents;
  // an empty file is valid, as in the exporter-toolkit: plain HTTP, no authentication
  if (root === null || (isScalar(root) && (root.value === null || root.value === ''))) return { ok: true, web };
  const top = mapping(root, '', report);
  if (!top) return { ok: false, problems };

  for (const pair of top.items) {
    const key = keyOf(pair);
    const value = pair.value as Node | null;
    if (NOT_IMPLEMENTED[key]) report(pair.key as Node, key, notImplemented(key));
    else if (key === 'tls_server_config') {
      const tls = readTls(value, dir, report);
      if (tls) {
        web.tls = tls.tls;
        web.inputs.push(...tls.inputs);
      }
    } else if (key === 'http_server_config') readHttp(value, web, report);
    else if (key === 'basic_auth_users') readUsers(value, web, report);
    else report(pair.key as Node, key, `unknown key "${key}"; accepted keys: tls_server_config, http_server_config, basic_auth_users`);
  }
  return problems.length ? { ok: false, problems } : { ok: true, web };
}

type Report = (node: Node | null | undefined, path: string, message: string) => void;

function notImplemented(path: string): string {
  return `${NOT_IMPLEMENTED[path]} (${path}) is part of the exporter-toolkit format but pg-reaper does not implement it: remove the key`;
}

function keyOf(pair: Pair): string {
  return isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
}

function mapping(node: unknown, path: string, report: Report): YAMLMap | undefined {
  if (isMap(node)) return node;
  report(node as Node, path, 'expected a mapping');
  return undefined;
}

function string(node: Node | null, path: string, report: Report, secret = false): string | undefined {
  if (isScalar(node) && typeof node.value === 'string' && node.value !== '') return node.value;
  report(node, path, `expected a non-empty string${secret || !isScalar(node) ? '' : `, got ${JSON.stringify(node.value)}`}`);
  return undefined;
}

function readTls(node: Node | null, dir: string, report: Report): { tls: WebTls; inputs: string[] } | undefined {
  const map = mapping(node, 'tls_server_config', report);
  if (!map) return undefined;
  const at = (key: string) => `tls_server_config.${key}`;
  const nodes = new Map<string, Node | null>();
  for (const pair of map.items) {
    const key = keyOf(pair);
    if (NOT_IMPLEMENTED[at(key)]) report(pair.key as Node, at(key), notImplemented(at(key)));
    else if (!['cert_file', 'key_file', 'cert', 'key', 'client_ca_file', 'client_ca', 'client_auth_type', 'min_version', 'max_version', 'prefer_server_cipher_suites'].includes(key)) {
      report(pair.key as Node, at(key), `unknown key "${key}"; accepted keys: cert_file, key_file (or cert, key inline), client_ca_file (or client_ca), client_auth_type, min_version, max_version, prefer_server_cipher_suites`);
    } else nodes.set(key, pair.value as Node | null);
  }
  const inputs: string[] = [];
  let failed = false;
  const fail: Report = (n, p, m) => {
    failed = true;
    report(n, p, m);
  };
  // a PEM given inline or as a file (relative to the web config file, as in the exporter-toolkit)
  const pem = (fileKey: string, inlineKey: string, secret: boolean): Buffer | undefined => {
    const fileNode = nodes.get(fileKey);
    const inlineNode = nodes.get(inlineKey);
    if (fileNode !== undefined && inlineNode !== undefined) {
      fail(inlineNode, at(inlineKey), `give ${fileKey} or ${inlineKey}, not both`);
      return undefined;
    }
    if (inlineNode !== undefined) {
      const text = string(inlineNode, at(inlineKey), fail, secret);
      return text === undefined ? undefined : Buffer.from(text);
    }
    if (fileNode === undefined) return undefined;
    const name = string(fileNode, at(fileKey), fail);
    if (name === undefined) return undefined;
    const path = resolve(dir, name);
    inputs.push(path);
    try {
      return readFileSync(path);
    } catch (err) {
      fail(fileNode, at(fileKey), `cannot read ${path}: ${readError(err)}`);
      return undefined;
    }
  };
  const cert = pem('cert_file', 'cert', false);
  const key = pem('key_file', 'key', true);
  const ca = pem('client_ca_file', 'client_ca', false);
  if (!failed && cert === undefined) fail(map, 'tls_server_config', 'expected cert_file (or cert): the server certificate, PEM');
  if (!failed && key === undefined) fail(map, 'tls_server_config', 'expected key_file (or key): the private key of the server certificate, PEM');

  let clientAuth: ClientAuthType = 'NoClientCert';
  const authNode = nodes.get('client_auth_type');
  if (authNode !== undefined) {
    const value = isScalar(authNode) ? authNode.value : undefined;
    // RequireClientCert: the exporter-toolkit's older name for RequireAnyClientCert
    const name = value === 'RequireClientCert' ? 'RequireAnyClientCert' : value;
    if ((CLIENT_AUTH_TYPES as readonly unknown[]).includes(name)) clientAuth = name as ClientAuthType;
    else fail(authNode, at('client_auth_type'), `expected one of ${CLIENT_AUTH_TYPES.join(', ')}, got ${JSON.stringify(value ?? null)}`);
  }
  if (ca !== undefined && clientAuth === 'NoClientCert') fail(authNode ?? map, at('client_auth_type'), 'a client CA is given without a client_auth_type that asks for a client certificate: use RequireAndVerifyClientCert');
  if (ca === undefined && (clientAuth === 'VerifyClientCertIfGiven' || clientAuth === 'RequireAndVerifyClientCert')) {
    fail(authNode, at('client_auth_type'), `${clientAuth} needs client_ca_file (or client_ca): the CA that signs the client certificates`);
  }
  const version = (key: 'min_version' | 'max_version', fallback: keyof typeof TLS_VERSIONS) => {
    const n = nodes.get(key);
    if (n === undefined) return TLS_VERSIONS[fallback];
    const value = isScalar(n) ? n.value : undefined;
    if (typeof value === 'string' && value in TLS_VERSIONS) return TLS_VERSIONS[value as keyof typeof TLS_VERSIONS];
    fail(n, at(key), `expected one of ${Object.keys(TLS_VERSIONS).join(', ')}, got ${JSON.stringify(value ?? null)}`);
    return TLS_VERSIONS[fallback];
  };
  const minVersion = version('min_version', 'TLS12');
  const maxVersion = version('max_version', 'TLS13');
  let honorCipherOrder = true;
  const prefer = nodes.get('prefer_server_cipher_suites');
  if (prefer !== undefined) {
    if (isScalar(prefer) && typeof prefer.value === 'boolean') honorCipherOrder = prefer.value;
    else fail(prefer, at('prefer_server_cipher_suites'), 'expected true or false');
  }
  if (failed || cert === undefined || key === undefined) return undefined;

  const requestCert = clientAuth !== 'NoClientCert';
  const options: WebTls['options'] = {
    cert,
    key,
    ...(ca ? { ca } : {}),
    minVersion,
    maxVersion,
    honorCipherOrder,
    requestCert,
    rejectUnauthorized: clientAuth === 'RequireAndVerifyClientCert',
  };
  try {
    // what the server will do at each connection, done once now: a key that does not match the
    // certificate, or text that is not PEM, is an error of the file, not of a scrape
    const { requestCert: _r, rejectUnauthorized: _u, ...context } = options;
    createSecureContext(context);
  } catch (err) {
    fail(map, 'tls_server_config', `the certificate, key or CA cannot be used: ${(err as Error).message.split('\n')[0]} (each must be PEM, and the key must be the certificate's, without a passphrase)`);
    return undefined;
  }
  return { tls: { options, clientAuth }, inputs };
}

function readHttp(node: Node | null, web: WebConfig, report: Report): void {
  const map = mapping(node, 'http_server_config', report);
  if (!map) return;
  for (const pair of map.items) {
    const key = keyOf(pair);
    const value = pair.value as Node | null;
    const path = `http_server_config.${key}`;
    if (key === 'http2') {
      // accepted for compatibility: pg-reaper serves HTTP/1.1, which every scraper speaks
      if (!isScalar(value) || typeof value.value !== 'boolean') report(value, path, 'expected true or false');
    } else if (key === 'headers') {
      const headers = mapping(value, path, report);
      for (const h of headers?.items ?? []) {
        const name = keyOf(h);
        const hpath = `${path}.${name}`;
        if (!(HEADERS as readonly string[]).includes(name)) {
          report(h.key as Node, hpath, `unknown header "${name}"; accepted: ${HEADERS.join(', ')}`);
          continue;
        }
        const v = string(h.value as Node | null, hpath, report);
        if (v === undefined) continue;
        if (name === 'X-Frame-Options' && !/^(deny|sameorigin)$/i.test(v)) report(h.value as Node, hpath, `expected deny or sameorigin, got ${JSON.stringify(v)}`);
        else if (name === 'X-Content-Type-Options' && v.toLowerCase() !== 'nosniff') report(h.value as Node, hpath, `expected nosniff, got ${JSON.stringify(v)}`);
        else web.headers[name] = v;
      }
    } else report(pair.key as Node, path, `unknown key "${key}"; accepted keys: http2, headers`);
  }
}

// $2a$, $2b$ or $2y$, a two-digit cost, then 53 characters of salt and hash
const BCRYPT = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;

function readUsers(node: Node | null, web: WebConfig, report: Report): void {
  if (isScalar(node) && node.value === null) return;
  const map = mapping(node, 'basic_auth_users', report);
  for (const pair of map?.items ?? []) {
    const user = keyOf(pair);
    const path = `basic_auth_users.${user}`;
    const value = pair.value as Node | null;
    if (user === '' || user.includes(':')) report(pair.key as Node, path, 'a user name must be non-empty and hold no ":" (basic authentication sends user:password)');
    else if (isScalar(value) && typeof value.value === 'string' && BCRYPT.test(value.value)) web.users.set(user, value.value);
    // the value is never echoed: it may be a password written in clear by mistake
    else report(value, path, 'expected a bcrypt hash like "$2y$10$..." (htpasswd -nBC 10 "" | tr -d \':\\n\'), not the password itself');
  }
}

export function formatWebProblem(p: WebConfigProblem): string {
  const where = p.line > 0 ? `${p.file}:${p.line}:${p.col}` : `${p.file}:`;
  return `${where} ${p.path ? `${p.path}: ` : ''}${p.message}`;
}
