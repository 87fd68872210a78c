// Connection strings as libpq reads them: a URL (postgres://user:pw@host:port/db?sslmode=require)
// or keyword/value pairs (host=db port=5432 dbname=app sslmode='verify-full'). A keyword we do not
// support is an error that names it, never silently ignored. Error messages never contain the
// password.

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

function keywordPairs(text: string): [string, string][] {
  const pairs: [string, string][] = [];
  let i = 0;
  const n = text.length;
  const space = () => {
    while (i < n && /\s/.test(text[i]!)) i++;
  };
  for (;;) {
    space();
    if (i >= n) break;
    const start = i;
    while (i < n && /[A-Za-z0-9_]/.test(text[i]!)) i++;
    const key = text.slice(start, i);
    space();
    if (!key || text[i] !== '=') {
      throw new ConnInfoError(`expected a URL (postgres://...) or keyword=value pairs; "${key || text[start]}" at character ${start + 1} is not followed by "="`);
    }
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
    } else {
      while (i < n && !/\s/.test(text[i]!)) {
        const c = text[i++]!;
        value += c === '\\' && i < n ? text[i++] : c;
      }
    }
    pairs.push([key, value]);
  }
  if (pairs.length === 0) throw new ConnInfoError('empty connection string');
  return pairs;
}

function urlPairs(text: string): [string, string][] {
  const rest = text.replace(/^postgres(?:ql)?:\/\//i, '');
  const queryAt = rest.indexOf('?');
  const main = queryAt < 0 ? rest : rest.slice(0, queryAt);
  const query = queryAt < 0 ? '' : rest.slice(queryAt + 1);
  const slash = main.indexOf('/');
  const authority = slash < 0 ? main : main.slice(0, slash);
  const path = slash < 0 ? '' : main.slice(slash + 1);
  const at = authority.lastIndexOf('@');
  const userinfo = at < 0 ? undefined : authority.slice(0, at);
  const hostport = at < 0 ? authority : authority.slice(at + 1);
  const pairs: [string, string][] = [];
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':');
    const user = colon < 0 ? userinfo : userinfo.slice(0, colon);
    if (user) pairs.push(['user', decode(user, 'user')]);
    if (colon >= 0) pairs.push(['password', decode(userinfo.slice(colon + 1), 'password')]);
  }
  if (hostport.includes(',')) throw new ConnInfoError('several hosts in one connection string are not supported: give each server its own target');
  if (hostport) {
    const m = /^(\[[^\]]*\]|[^:]*)(?::(.*))?$/.exec(hostport)!;
    const host = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : decode(m[1]!, 'host');
    if (host) pairs.push(['host', host]);
    if (m[2] !== undefined && m[2] !== '') pairs.push(['port', m[2]]);
  }
  if (path) pairs.push(['dbname', decode(path, 'dbname')]);
  if (query) {
    for (const part of query.split('&')) {
      if (!part) continue;
      const eq = part.indexOf('=');
      if (eq < 0) throw new ConnInfoError(`URL parameter "${decode(part, 'parameter')}" has no "=value"`);
      const key = decode(part.slice(0, eq), 'parameter');
      pairs.push([key, decode(part.slice(eq + 1), key)]);
    }
  }
  return pairs;
}

function decode(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new ConnInfoError(`invalid percent-encoding in the ${what === 'password' ? 'password' : `${what} "${text}"`}`);
  }
}

function normalize(pairs: [string, string][]): ConnInfo {
  const info: ConnInfo = {};
  for (const [key, value] of pairs) {
    if (!(CONNINFO_KEYWORDS as readonly string[]).includes(key)) {
      throw new ConnInfoError(`unsupported keyword "${key}"; pg-reaper understands ${CONNINFO_KEYWORDS.join(', ')}`);
    }
    switch (key as Keyword) {
      case 'host':
        if (value.includes(',')) throw new ConnInfoError('several hosts in one connection string are not supported: give each server its own target');
        info.host = value;
        break;
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
