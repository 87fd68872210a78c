import { describe, expect, it } from 'vitest';
import { parseConnInfo } from '../../src/config/conninfo.js';
import { formatProblem, parseConfigText } from '../../src/config/load.js';
import { endpointOf, tlsAttempts } from '../../src/db/target.js';
import { validateConfig } from '../../src/config/load.js';
import { redact } from '../../src/util/errors.js';

// Connection strings as libpq reads them: both forms, every supported keyword, and an error
// (without the password) for everything else.

const ok = (text: string) => {
  const r = parseConnInfo(text);
  if (!r.ok) throw new Error(`rejected: ${r.error}`);
  return r.info;
};
const error = (text: string) => {
  const r = parseConnInfo(text);
  if (r.ok) throw new Error('expected a rejection');
  return r.error;
};

describe('URL form', () => {
  it('reads user, percent-encoded password, host, port, database and parameters', () => {
    expect(ok('postgresql://re%40per:p%40ss%3Aw%2Fd@db.internal:6432/my%20db?sslmode=verify-full&sslrootcert=/etc/ca.pem&connect_timeout=7&application_name=pg-reaper')).toEqual({
      user: 're@per',
      password: 'p@ss:w/d',
      host: 'db.internal',
      port: 6432,
      dbname: 'my db',
      sslmode: 'verify-full',
      sslrootcert: '/etc/ca.pem',
      connectTimeout: 7,
      applicationName: 'pg-reaper',
    });
  });

  it('reads IPv6 hosts, a Unix socket directory as host parameter, and the bare forms', () => {
    expect(ok('postgres://[::1]:5433/db')).toEqual({ host: '::1', port: 5433, dbname: 'db' });
    expect(ok('postgres:///db?host=/var/run/postgresql&port=5432')).toEqual({ dbname: 'db', host: '/var/run/postgresql', port: 5432 });
    expect(ok('postgres://%2Ftmp%2Fsock/db')).toEqual({ host: '/tmp/sock', dbname: 'db' });
    expect(ok('postgres://')).toEqual({});
    expect(ok('postgres://u@h')).toEqual({ user: 'u', host: 'h' });
  });

  it('rejects what it cannot honour, naming it', () => {
    expect(error('postgres://u@h/db?target_session_attrs=read-write')).toBe('unsupported keyword "target_session_attrs"; pg-reaper understands host, port, dbname, user, password, sslmode, sslrootcert, sslcert, sslkey, connect_timeout, application_name');
    expect(error('postgres://h:99999/db')).toBe('port must be a number from 1 to 65535, got "99999"');
    expect(error('postgres://h:5x/db')).toBe('port must be a number from 1 to 65535, got "5x"');
    expect(error('postgres://a,b/db')).toMatch(/several hosts/);
    expect(error('postgres://h/db?sslmode=required')).toBe('sslmode must be one of disable, allow, prefer, require, verify-ca, verify-full, got "required"');
    expect(error('postgres://h/db?connect_timeout=0')).toMatch(/connect_timeout must be a whole number of seconds >= 1/);
    expect(error('postgres://h/db?sslmode')).toBe('URL parameter "sslmode" has no "=value"');
    expect(error('postgres://u:bad%zzsecret@h/db')).toBe('invalid percent-encoding in the password: "%" starts a two-digit hex code (%25 for "%" itself)');
  });
});

describe('URL form: the user name and password never reach a message', () => {
  const SECRET = 'Hunter9';
  const CANNOT_TELL = /^cannot tell where the user name and password end: .*percent-encode them in a URL: "@" as %40, "\/" as %2F, "\?" as %3F, "#" as %23/;

  it.each([
    ['a "/" in the password', `postgres://reaper:${SECRET}/Secret@127.0.0.1:55432/postgres`],
    ['a "?" in the password', `postgres://reaper:${SECRET}?Secret@127.0.0.1:55432/postgres`],
    ['a "#" in the password', `postgres://reaper:${SECRET}#Secret@127.0.0.1:55432/postgres`],
    ['an "@" in the password', `postgres://reaper:${SECRET}@Secret@127.0.0.1:55432/postgres`],
    ['a "[" in the password', `postgres://reaper:${SECRET}[x@127.0.0.1/postgres`],
    ['a "/" in the user name', `postgres://re/${SECRET}:pw@127.0.0.1/postgres`],
    ['an "@" in a parameter', `postgres://127.0.0.1/postgres?application_name=${SECRET}@x`],
  ])('%s is an error that suggests percent-encoding and holds none of it', (_, url) => {
    const e = error(url);
    expect(e).toMatch(CANNOT_TELL);
    expect(e).not.toContain(SECRET);
    expect(e).not.toContain('Secret');
    expect(e).not.toContain('reaper');
  });

  it('a "#" after the host is an error too: other programs cut the URL there', () => {
    expect(error('postgres://reaper:pw@127.0.0.1/post#gres')).toBe('the URL holds a "#", which starts a fragment: other programs cut the URL there; percent-encode "#" as %23');
  });

  it('a host that opens "[" without closing it, or is no host at all, is an error before anything connects', () => {
    expect(error(`postgres://reaper:${SECRET}@[127.0.0.1:55432/postgres`)).toBe('the host "[127.0.0.1:55432" opens "[" without closing it; an IPv6 address is written in brackets, like [::1]:5432');
    expect(error('postgres://[127.0.0.1]:5432/db')).toBe('expected an IPv6 address inside "[...]", got "127.0.0.1"');
    expect(error('postgres://[::1]x/db')).toBe('expected ":port" or "/database" after the "]" of the host, got "x"');
    expect(error('postgres://127.0.0./db')).toMatch(/^expected a host name, an IP address .* got "127\.0\.0\."$/);
    expect(error('host=127.0.0.')).toMatch(/got "127\.0\.0\."$/);
    expect(error("host='db internal'")).toMatch(/got "db internal"$/);
    expect(ok('postgres://db-1.internal_x.:5432/db').host).toBe('db-1.internal_x.');
  });

  it('percent-encoded, the same characters are read as they are', () => {
    expect(ok('postgres://reaper:a%2Fb%3Fc%23d%40e%5Bf%5D@127.0.0.1/postgres').password).toBe('a/b?c#d@e[f]');
  });

  it('text that may be the rest of a password parameter cut at "&" is not echoed', () => {
    expect(error(`postgres://127.0.0.1/db?password=a&${SECRET}`)).toBe('URL parameter 2, after the password parameter, is not a keyword=value pair: percent-encode "&" as %26 and "=" as %3D in the password');
    expect(error(`postgres://127.0.0.1/db?password=a&${SECRET}=b`)).not.toContain(SECRET);
    expect(error(`postgres://127.0.0.1/db?password=a%zz${SECRET}`)).not.toContain(SECRET);
  });
});

describe('keyword/value form', () => {
  it('reads pairs with spaces around "=", quoted values and backslash escapes', () => {
    expect(ok("host=db.internal port = 5432 dbname='my db' user=reaper password='it\\'s a \\\\secret' sslmode=require")).toEqual({
      host: 'db.internal',
      port: 5432,
      dbname: 'my db',
      user: 'reaper',
      password: "it's a \\secret",
      sslmode: 'require',
    });
    expect(ok("host=/tmp dbname=''")).toEqual({ host: '/tmp', dbname: '' });
    expect(ok('  host=h\tsslcert=/c.pem sslkey=/k.pem  ')).toEqual({ host: 'h', sslcert: '/c.pem', sslkey: '/k.pem' });
  });

  it('rejects unsupported keywords, bad values and malformed text', () => {
    expect(error('host=h target_session_attrs=any')).toMatch(/^unsupported keyword "target_session_attrs"/);
    expect(error('host=h port=0')).toBe('port must be a number from 1 to 65535, got "0"');
    expect(error('host=a,b')).toMatch(/several hosts/);
    expect(error('host')).toMatch(/"host" at character 1 is not followed by "="/);
    expect(error("host='h")).toBe('unterminated quoted value for "host"');
    expect(error('')).toBe('empty connection string');
  });

  it('never echoes what may be the rest of an unquoted password or user name', () => {
    for (const text of ["host=h password=Hunter9 Secret user=x", 'host=h password=Hunter9 Secret=x', 'host=h user=Hunter9 Secret']) {
      const e = error(text);
      expect(e).toMatch(/after the unquoted (password|user) value, is not a keyword=value pair pg-reaper understands: if the (password|user) holds spaces, put the value in single quotes/);
      expect(e).not.toMatch(/Hunter9|Secret/);
    }
    expect(error('Hunter9Secret')).toBe('expected a URL (postgres://...) or keyword=value pairs; the word at character 1 is not followed by "="');
  });
});

describe('redaction', () => {
  it('removes URL passwords and password= values, quoted or not', () => {
    expect(redact('postgres://u:s3cret@h/db')).toBe('postgres://u:***@h/db');
    expect(redact('postgres://u:p@ss@h/db')).toBe('postgres://u:***@h/db');
    expect(redact("host=h password='a b\\'c' user=u")).toBe('host=h password=*** user=u');
    expect(redact('host=h password=plain user=u')).toBe('host=h password=*** user=u');
    expect(redact('postgres://h/db?password=x1&sslmode=require')).toBe('postgres://h/db?password=***&sslmode=require');
  });
});

describe('connection strings in the config', () => {
  const target = (line: string) => `targets:\n  - name: a\n    ${line}\npolicies:\n  - name: idle\n    maxIdle: 1m\n`;
  const problems = (text: string) => {
    const r = parseConfigText(text, 'c.yaml', {});
    if (r.ok) throw new Error('expected a rejection');
    return r.problems.map(formatProblem);
  };

  it('validates both forms at check time, with the location', () => {
    expect(problems(target('connectionString: "host=db port=99999"'))).toEqual(['c.yaml:3:23 targets[0].connectionString: port must be a number from 1 to 65535, got "99999"']);
    expect(problems(target('connectionString: "postgres://u:pw12345@db:99999/x"'))).toEqual(['c.yaml:3:23 targets[0].connectionString: port must be a number from 1 to 65535, got "99999"']);
    expect(problems(target('connectionString: "host=db target_session_attrs=any"'))[0]).toMatch(/^c\.yaml:3:23 targets\[0\]\.connectionString: unsupported keyword "target_session_attrs"/);
  });

  it('never echoes a password, even where a connection string lands in the wrong place', () => {
    const text = `targets: "postgres://reaper:hunter2secret@db/postgres"\npolicies: "host=db password='also secret' user=x"\n`;
    const out = problems(text).join('\n');
    expect(out).toContain('targets: expected a list, got "postgres://reaper:***@db/postgres"');
    expect(out).not.toMatch(/hunter2secret|also secret/);
  });

  it('refuses a password in the connection string together with password or passwordFile', () => {
    expect(problems(target('connectionString: "postgres://u:pw12345@db/x"\n    password: other'))).toEqual([
      'c.yaml:4:15 targets[0].password: the connection string already holds a password: give it in one place (drop password, or the password from the connection string)',
    ]);
    expect(problems(target("connectionString: \"host=db password='pw 12345'\"\n    passwordFile: /run/pw"))).toEqual([
      'c.yaml:4:19 targets[0].passwordFile: the connection string already holds a password: give it in one place (drop passwordFile, or the password from the connection string)',
    ]);
    expect(parseConfigText(target('connectionString: "postgres://u@db/x"\n    passwordFile: /run/pw'), 'c.yaml', {}).ok).toBe(true);
  });

  it('checks the host of the host/port form as it checks the one in a connection string', () => {
    expect(problems(target('host: "127.0.0."'))).toEqual(['c.yaml:3:11 targets[0].host: expected a host name, an IP address or a Unix-socket directory (an absolute path), got "127.0.0."']);
    expect(parseConfigText(target('host: /var/run/postgresql'), 'c.yaml', {}).ok).toBe(true);
    expect(parseConfigText(target('host: "::1"'), 'c.yaml', {}).ok).toBe(true);
  });

  it('refuses an application_name other than applicationName, and TLS settings in two places', () => {
    expect(problems(target('connectionString: "host=db application_name=psql"'))[0]).toMatch(/application_name "psql" differs from applicationName "pg-reaper"/);
    expect(parseConfigText(target('connectionString: "host=db application_name=pg-reaper"'), 'c.yaml', {}).ok).toBe(true);
    expect(problems(target('connectionString: "host=db sslmode=require"\n    ssl: { mode: verify-full }'))[0]).toMatch(/targets\[0\]\.ssl: the connection string already sets sslmode/);
    expect(problems(target('host: db\n    ssl: { mode: require, cert: /c.pem }'))[0]).toMatch(/targets\[0\]\.ssl: cert and key go together/);
    expect(problems(target('host: db\n    ssl: { mode: strict }'))[0]).toMatch(/targets\[0\]\.ssl\.mode: expected one of "disable", "allow", "prefer", "require", "verify-ca", "verify-full"/);
  });
});

describe('endpoint and TLS attempts', () => {
  const endpoint = (t: Record<string, unknown>) => endpointOf(validateConfig({ targets: [{ name: 'a', ...t }], policies: [{ name: 'p', maxIdle: '1m' }] }).targets[0]!, { applicationName: 'pg-reaper' });

  it('maps a keyword/value string onto the driver, connect_timeout over connectTimeout', () => {
    const e = endpoint({ connectionString: "host=/run/pg port=5433 dbname='app db' user=r password=pw connect_timeout=3 sslmode=verify-ca sslrootcert=/ca.pem" });
    expect(e.pool).toMatchObject({ host: '/run/pg', port: 5433, database: 'app db', user: 'r', password: 'pw', connectionTimeoutMillis: 3000, application_name: 'pg-reaper' });
    expect(e.tls).toEqual({ mode: 'verify-ca', rootCert: '/ca.pem', cert: undefined, key: undefined });
    expect(endpoint({ host: 'h', port: 1 }).tls.mode).toBe('prefer');
  });

  it('orders the attempts as libpq does for each sslmode', async () => {
    const kinds = async (mode: string, rootCert?: string) =>
      (await tlsAttempts({ mode: mode as never, rootCert })).map((a) => (a === false ? 'plain' : a.rejectUnauthorized === false ? 'unchecked' : a.checkServerIdentity ? 'chain' : 'full'));
    expect(await kinds('disable')).toEqual(['plain']);
    expect(await kinds('allow')).toEqual(['plain', 'unchecked']);
    expect(await kinds('prefer')).toEqual(['unchecked', 'plain']);
    expect(await kinds('require')).toEqual(['unchecked']);
    expect(await kinds('require', import.meta.filename)).toEqual(['chain']);
    expect(await kinds('verify-ca')).toEqual(['chain']);
    expect(await kinds('verify-full')).toEqual(['full']);
    await expect(tlsAttempts({ mode: 'verify-full', rootCert: '/nonexistent/ca.pem' })).rejects.toThrow('cannot read sslrootcert /nonexistent/ca.pem: ENOENT');
  });
});
