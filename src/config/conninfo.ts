import { isIP, isIPv6 } from 'node:net';

// Connection strings as libpq reads them: a URL (postgres://user:pw@host:port/db?sslmode=require)
// or keyword/value pairs (host=db port=5432 dbname=app sslmode='verify-full'). A keyword we do not
// support is an error that names it, never silently ignored. Error messages never contain any
// part of the user name or password.

export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

export const CONNINFO_KEYWORDS = ['host', 'port', 'dbname', 'user', 'password', 'sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'connect_timeout', 'application_name'] as const;
type Keyword = (typeof CONNINFO_KEYWORDS)[number];

export interface ConnInfo {
  host?: string;
  port?: number;
  dbname?: string;
  user?: string;
  password?: string;
  sslmode?: SslMode;
  sslrootcert?: string;
  sslcert?: string;
  sslkey?: string;
  /** Seconds. */
  connectTimeout?: number;
  applicationName?: string;
}

export type ConnInfoResult = { ok: true; info: ConnInfo } | { ok: false; error: string };

export function parseConnInfo(text: string): ConnInfoResult {
  try {
    const pairs = /^postgres(?:ql)?:\/\//i.test(text) ? urlPairs(text) : keywordPairs(text);
    return { ok: true, info: normalize(pairs) };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}

class ConnInfoError extends Error {}

// Keys whose values are secret or identify who connects: no part of their value, nor text that
// may be the rest of a badly quoted or encoded value of theirs, is ever put in a message.
const PRIVATE_KEYS = new Set(['user', 'password']);

function keywordPairs(text: string): [string, string][] {
  const pairs: [string, string][] = [];
  let i = 0;
  const n = text.length;
  const space = () => {
    while (i < n && /\s/.test(text[i]!)) i++;
  };
  // the key of the previous pair when its value was unquoted: a value holding a space ends at it,
  // and the text after it then looks like a keyword of its own
  let lastBare: string | undefined;
  for (;;) {
    space();
    if (i >= n) break;
    const start = i;
    while (i < n && /[A-Za-z0-9_]/.test(text[i]!)) i++;
    const key = text.slice(start, i);
    space();
    if (!key || text[i] !== '=') {
      if (lastBare !== undefined && PRIVATE_KEYS.has(lastBare)) throw new ConnInfoError(afterPrivate(lastBare, start));
      // only a keyword is named: any other word may be part of a value
      const what = isKeyword(key) ? `"${key}" at character ${start + 1}` : `the word at character ${start + 1}`;
      throw new ConnInfoError(
        pairs.length === 0
          ? `expected a URL (postgres://...) or keyword=value pairs; ${what} is not followed by "="`
          : `expected keyword=value pairs; ${what} is not followed by "=" (a value holding spaces goes in single quotes: dbname='my db')`,
      );
    }
    if (lastBare !== undefined && PRIVATE_KEYS.has(lastBare) && !isKeyword(key)) throw new ConnInfoError(afterPrivate(lastBare, start));
    i++;
    space();
    let value = '';
    if (text[i] === "'") {
      i++;
      for (;;) {
        if (i >= n) throw new ConnInfoError(`unterminated quoted value for "${key}"`);
        const c = text[i++]!;
        if (c === "'") break;
        value += c === '\\' && i < n ? text[i++] : c;
      }
      lastBare = undefined;
    } else {
      while (i < n && !/\s/.test(text[i]!)) {
        const c = text[i++]!;
        value += c === '\\' && i < n ? text[i++] : c;
      }
      lastBare = key;
    }
    pairs.push([key, value]);
  }
  if (pairs.length === 0) throw new ConnInfoError('empty connection string');
  return pairs;
}

function afterPrivate(key: string, at: number): string {
  return `the word at character ${at + 1}, after the unquoted ${key} value, is not a keyword=value pair pg-reaper understands: if the ${key} holds spaces, put the value in single quotes (with \\' and \\\\ inside)`;
}

function isKeyword(key: string): boolean {
  return (CONNINFO_KEYWORDS as readonly string[]).includes(key);
}

const ENCODE_HINT = 'percent-encode them in a URL: "@" as %40, "/" as %2F, "?" as %3F, "#" as %23, "[" as %5B, "]" as %5D';

// The URL form. The user name and password are cut off first, by a rule that needs no other part
// of the URL to be valid, so that no error about a later part can hold any of them. Text that
// other programs would split differently (several "@", an "@" after "/" or "?", a "#") is an
// error, since the password is then wherever that program decides.
function urlPairs(text: string): [string, string][] {
  const rest = text.replace(/^postgres(?:ql)?:\/\//i, '');
  const at = rest.lastIndexOf('@');
  const pairs: [string, string][] = [];
  if (at >= 0) {
    const userinfo = rest.slice(0, at);
    if (/[@/?#[\]]/.test(userinfo)) {
      throw new ConnInfoError(`cannot tell where the user name and password end: one of them, or the database name or a parameter, holds "@", "/", "?", "#", "[" or "]"; ${ENCODE_HINT}`);
    }
    const colon = userinfo.indexOf(':');
    const user = colon < 0 ? userinfo : userinfo.slice(0, colon);
    if (user) pairs.push(['user', decodePrivate(user, 'user name')]);
    if (colon >= 0) pairs.push(['password', decodePrivate(userinfo.slice(colon + 1), 'password')]);
  }
  const after = at >= 0 ? rest.slice(at + 1) : rest;
  if (after.includes('#')) {
    throw new ConnInfoError('the URL holds a "#", which starts a fragment: other programs cut the URL there; percent-encode "#" as %23');
  }
  const queryAt = after.indexOf('?');
  const main = queryAt < 0 ? after : after.slice(0, queryAt);
  const query = queryAt < 0 ? '' : after.slice(queryAt + 1);
  const slash = main.indexOf('/');
  const hostport = slash < 0 ? main : main.slice(0, slash);
  const path = slash < 0 ? '' : main.slice(slash + 1);
  if (hostport.includes(',')) throw new ConnInfoError('several hosts in one connection string are not supported: give each server its own target');
  if (hostport) {
    let host: string;
    let port: string | undefined;
    if (hostport.startsWith('[')) {
      const close = hostport.indexOf(']');
      if (close < 0) throw new ConnInfoError(`the host ${JSON.stringify(hostport)} opens "[" without closing it; an IPv6 address is written in brackets, like [::1]:5432`);
      host = hostport.slice(1, close);
      if (!isIPv6(host)) throw new ConnInfoError(`expected an IPv6 address inside "[...]", got ${JSON.stringify(host)}`);
      const tail = hostport.slice(close + 1);
      if (tail !== '' && !tail.startsWith(':')) throw new ConnInfoError(`expected ":port" or "/database" after the "]" of the host, got ${JSON.stringify(tail)}`);
      port = tail === '' ? undefined : tail.slice(1);
    } else {
      const colon = hostport.indexOf(':');
      host = decode(colon < 0 ? hostport : hostport.slice(0, colon), 'host');
      port = colon < 0 ? undefined : hostport.slice(colon + 1);
    }
    if (host) pairs.push(['host', host]);
    if (port !== undefined && port !== '') pairs.push(['port', port]);
  }
  if (path) pairs.push(['dbname', decode(path, 'database name')]);
  if (query) {
    let previous: string | undefined;
    query.split('&').forEach((part, index) => {
      if (!part) return;
      const eq = part.indexOf('=');
      // text after a password or user parameter may be the rest of its value, cut at an unencoded "&"
      const privateTail = previous !== undefined && PRIVATE_KEYS.has(previous);
      const name = eq < 0 ? part : part.slice(0, eq);
      if (eq < 0 || (privateTail && !isKeyword(name))) {
        if (privateTail) throw new ConnInfoError(`URL parameter ${index + 1}, after the ${previous} parameter, is not a keyword=value pair: percent-encode "&" as %26 and "=" as %3D in the ${previous === 'user' ? 'user name' : previous}`);
        if (eq < 0) throw new ConnInfoError(`URL parameter ${isKeyword(part) ? `"${part}"` : index + 1} has no "=value"`);
      }
      const key = decode(name, 'parameter name');
      const raw = part.slice(eq + 1);
      pairs.push([key, PRIVATE_KEYS.has(key) ? decodePrivate(raw, key === 'user' ? 'user name' : 'password') : decode(raw, key)]);
      previous = key;
    });
  }
  return pairs;
}

function decode(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new ConnInfoError(`invalid percent-encoding in the ${what} ${JSON.stringify(text)}`);
  }
}

function decodePrivate(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new ConnInfoError(`invalid percent-encoding in the ${what}: "%" starts a two-digit hex code (%25 for "%" itself)`);
  }
}

/**
 * Why `host` cannot be a host to connect to, or undefined when it can: a Unix-socket directory
 * (an absolute path), an IP address, or a DNS name. A name whose last label is all digits is
 * neither an address nor a name (like "127.0.0."): it would only fail later, in a DNS lookup.
 */
export function hostError(host: string): string | undefined {
  if (host.startsWith('/') || isIP(host) !== 0) return undefined;
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  const labels = name.split('.');
  const label = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;
  if (name.length > 0 && name.length <= 253 && labels.every((l) => label.test(l)) && !/^\d+$/.test(labels.at(-1)!)) return undefined;
  return `expected a host name, an IP address (IPv6 in brackets in a URL: [::1]) or a Unix-socket directory (an absolute path), got ${JSON.stringify(host)}`;
}

function normalize(pairs: [string, string][]): ConnInfo {
  const info: ConnInfo = {};
  for (const [key, value] of pairs) {
    if (!isKeyword(key)) {
      throw new ConnInfoError(`unsupported keyword "${key}"; pg-reaper understands ${CONNINFO_KEYWORDS.join(', ')}`);
    }
    switch (key as Keyword) {
      case 'host': {
        if (value.includes(',')) throw new ConnInfoError('several hosts in one connection string are not supported: give each server its own target');
        const error = value === '' ? undefined : hostError(value);
        if (error) throw new ConnInfoError(error);
        info.host = value;
        break;
      }
      case 'port': {
        const port = /^\d+$/.test(value) ? Number(value) : NaN;
        if (!(port >= 1 && port <= 65535)) throw new ConnInfoError(`port must be a number from 1 to 65535, got "${value}"`);
        info.port = port;
        break;
      }
      case 'connect_timeout': {
        const seconds = /^\d+$/.test(value) ? Number(value) : NaN;
        if (!(seconds >= 1)) throw new ConnInfoError(`connect_timeout must be a whole number of seconds >= 1, got "${value}"`);
        info.connectTimeout = seconds;
        break;
      }
      case 'sslmode':
        if (!(SSL_MODES as readonly string[]).includes(value)) throw new ConnInfoError(`sslmode must be one of ${SSL_MODES.join(', ')}, got "${value}"`);
        info.sslmode = value as SslMode;
        break;
      case 'dbname':
        info.dbname = value;
        break;
      case 'user':
        info.user = value;
        break;
      case 'password':
        info.password = value;
        break;
      case 'sslrootcert':
        info.sslrootcert = value;
        break;
      case 'sslcert':
        info.sslcert = value;
        break;
      case 'sslkey':
        info.sslkey = value;
        break;
      case 'application_name':
        info.applicationName = value;
        break;
    }
  }
  return info;
}
