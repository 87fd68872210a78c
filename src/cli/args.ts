import { parseArgs } from 'node:util';

// The command line's options, read without Node's own error texts: an unknown option says what
// it was and the nearest known one ("--dryrun": did you mean --dry-run?), a missing or unwanted
// value says which option.

/** A mistake on the command line: one line on stderr, exit 2. */
export class UsageError extends Error {}

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  'dry-run': { type: 'boolean' },
  json: { type: 'boolean' },
  connect: { type: 'boolean' },
  print: { type: 'boolean' },
  from: { type: 'string' },
  target: { type: 'string' },
  output: { type: 'string', short: 'o' },
  'with-query': { type: 'boolean' },
  'log-format': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const;

type Name = keyof typeof OPTIONS;
type StringName = 'config' | 'log-format' | 'from' | 'target' | 'output';
export type Values = { [K in StringName]?: string } & { [K in Exclude<Name, StringName>]?: boolean };

const spelled = (name: Name) => {
  const short = (OPTIONS[name] as { short?: string }).short;
  return short ? `--${name} (-${short})` : `--${name}`;
};

export function parseCommandLine(argv: string[]): { values: Values; positionals: string[] } {
  const { values, positionals, tokens } = parseArgs({ args: argv, allowPositionals: true, strict: false, tokens: true, options: OPTIONS });
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    const known = t.name in OPTIONS ? (t.name as Name) : undefined;
    if (!known) throw new UsageError(unknownOption(t.rawName));
    if (OPTIONS[known].type === 'string' && typeof t.value !== 'string') throw new UsageError(`${t.rawName} needs a value, as in ${t.rawName.startsWith('--') ? `${t.rawName}=VALUE or ${t.rawName} VALUE` : `${t.rawName} VALUE`}`);
    // "--config --json": the next option is no value (write --config=--json for a file named so)
    if (OPTIONS[known].type === 'string' && !t.inlineValue && /^-./.test(t.value as string)) throw new UsageError(`${t.rawName} needs a value, but the next argument is the option ${t.value as string} (write ${t.rawName}=${t.value as string} if that is the value)`);
    if (OPTIONS[known].type === 'boolean' && t.inlineValue) throw new UsageError(`${t.rawName} takes no value (got "${t.rawName}=${t.value}")`);
  }
  return { values: values as Values, positionals };
}

/** "unknown option --dryrun: did you mean --dry-run?", or the list of options when nothing is near. */
export function unknownOption(raw: string): string {
  const candidates = (Object.keys(OPTIONS) as Name[]).flatMap((name) => {
    const short = (OPTIONS[name] as { short?: string }).short;
    return [{ name, text: `--${name}` }, ...(short ? [{ name, text: `-${short}` }] : [])];
  });
  const typed = raw.toLowerCase();
  let best: { text: string; d: number } | undefined;
  for (const c of candidates) {
    // a short option is near only when it is the same letter in the other case (-v for -V)
    const d = c.text.startsWith('--') ? distance(typed, c.text) : typed === c.text.toLowerCase() ? 0 : Infinity;
    if (!best || d < best.d) best = { text: c.text, d };
  }
  if (best && best.d <= Math.max(2, Math.floor(raw.length / 4))) return `unknown option ${raw}: did you mean ${best.text}?`;
  return `unknown option ${raw}; the options are ${(Object.keys(OPTIONS) as Name[]).map(spelled).join(', ')}`;
}

/** Edit distance (insertions, deletions, substitutions, and swaps of two neighbours). */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}
