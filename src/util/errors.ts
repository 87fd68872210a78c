// Error text that is safe to log: the message and SQLSTATE, with any password removed.
const secrets = new Set<string>();

/** Passwords that must never appear in an error or log line. */
export function registerSecret(secret: string | undefined): void {
  if (secret && secret.length >= 3) secrets.add(secret);
}

export function redact(text: string): string {
  // the userinfo password of a URL, and the value of password= in a URL or a keyword/value
  // string (quoted values may hold spaces and escaped quotes)
  let out = text
    .replace(/(postgres(?:ql)?:\/\/[^:/@\s]*:)\S*@/gi, '$1***@')
    .replace(/(\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|[^\s&"]+)/gi, '$1***');
  for (const s of secrets) out = out.split(s).join('***');
  return out;
}

export function describeError(err: unknown): string {
  const e = err as { message?: string; code?: string } | undefined;
  const message = e?.message ?? String(err);
  const state = sqlState(err);
  const code = state ? ` (SQLSTATE ${state})` : '';
  return redact(message + code);
}

/** The SQLSTATE of a server error; undefined for anything else (a dropped socket, a client-side timeout). */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}
