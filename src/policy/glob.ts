// Glob patterns for users, databases and applications: "*" any run of characters, "?" one
// character, everything else literal; the whole string must match, case-sensitively.
export type StringMatcher = (value: string | null) => boolean;

export function compileGlob(pattern: string): RegExp {
  let source = '';
  for (const ch of pattern) {
    if (ch === '*') source += '[\\s\\S]*';
    else if (ch === '?') source += '[\\s\\S]';
    else source += ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return new RegExp(`^${source}$`, 'u');
}

/** One predicate for a list of globs; plain names are looked up in a set. */
export function compileGlobs(patterns: readonly string[]): StringMatcher {
  const exact = new Set(patterns.filter((p) => !/[*?]/.test(p)));
  const wild = patterns.filter((p) => /[*?]/.test(p)).map(compileGlob);
  return (value) => value !== null && (exact.has(value) || wild.some((re) => re.test(value)));
}
