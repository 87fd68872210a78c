// Glob patterns for users, databases and applications: "*" any run of characters, "?" one
// character, everything else literal; the whole string must match, case-sensitively.
function globSource(pattern: string): string {
  let source = '';
  for (const ch of pattern) {
    if (ch === '*') source += '[\\s\\S]*';
    else if (ch === '?') source += '[\\s\\S]';
    else source += ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return source;
}

export function compileGlob(pattern: string): RegExp {
  return new RegExp(`^${globSource(pattern)}$`, 'u');
}

/**
 * A list of globs as one matcher: plain names in a set, "prefix*" as startsWith, the rest as a
 * single alternation, so a long list costs one regex test at most. A class, so that the planner's
 * call sites stay monomorphic however many policies there are.
 */
export class GlobSet {
  private readonly exact = new Set<string>();
  private readonly prefixes: string[] = [];
  private readonly re: RegExp | undefined;

  constructor(patterns: readonly string[]) {
    const wild: string[] = [];
    for (const p of patterns) {
      if (!/[*?]/.test(p)) this.exact.add(p);
      else if (p.indexOf('*') === p.length - 1 && !p.includes('?')) this.prefixes.push(p.slice(0, -1));
      else wild.push(globSource(p));
    }
    this.re = wild.length ? new RegExp(`^(?:${wild.join('|')})$`, 'u') : undefined;
  }

  /** A null value (not visible to our role) matches nothing. */
  test(value: string | null): boolean {
    if (value === null) return false;
    if (this.exact.size !== 0 && this.exact.has(value)) return true;
    const prefixes = this.prefixes;
    for (let i = 0; i < prefixes.length; i++) if (value.startsWith(prefixes[i]!)) return true;
    return this.re !== undefined && this.re.test(value);
  }
}
