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
  const code = typeof e?.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) ? ` (SQLSTATE ${e.code})` : '';
  return redact(message + code);
}
