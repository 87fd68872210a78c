import { createHash } from 'node:crypto';
import bcrypt from 'bcryptjs';

// HTTP basic authentication against the bcrypt hashes of the web config. bcryptjs (pure
// JavaScript: no native build, nothing to compile in the image) computes each hash in slices
// between event-loop turns, so a check never stalls the scheduler; a cost-10 hash takes about
// 0.1 s. As in the exporter-toolkit, each answer is cached for the same user, password and hash,
// so a scraper pays the cost once, not at every scrape; the cache is bounded and a changed hash
// never matches an old entry.

// A hash of a password nobody has: an unknown user costs a comparison too, so the time of an
// answer does not tell which user names exist.
const NO_SUCH_USER = '$2b$10$ad.sfdM2AAyiBJo.7RfEwe2IRXJ/Yc6wOp3jI/XMIcQjGp3JJC9FK';
const CACHE_SIZE = 256;

export interface Credentials {
  user: string;
  password: string;
}

/** The user and password of an `Authorization: Basic ...` header, or undefined. */
export function credentialsOf(header: string | undefined): Credentials | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!m) return undefined;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) return undefined;
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

export class BasicAuth {
  private readonly cache = new Map<string, boolean>();

  /** Whether the header names a user of `users` with the right password. */
  async check(header: string | undefined, users: ReadonlyMap<string, string>): Promise<boolean> {
    const c = credentialsOf(header);
    if (!c) return false;
    const known = users.get(c.user);
    const hash = known ?? NO_SUCH_USER;
    const key = createHash('sha256').update(`${c.user}\0${hash}\0${c.password}`).digest('base64');
    let ok = this.cache.get(key);
    if (ok === undefined) {
      ok = await bcrypt.compare(c.password, hash);
      if (this.cache.size >= CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(key, ok);
    }
    return ok && known !== undefined;
  }
}
