import { describe, expect, it } from 'vitest';
import { parseCommandLine, unknownOption } from '../../src/cli/args.js';

// The command line in pg-reaper's words: an unknown option names itself and the nearest known one.

const error = (argv: string[]) => {
  try {
    parseCommandLine(argv);
  } catch (err) {
    return (err as Error).message;
  }
  return undefined;
};

describe('the command line', () => {
  it('reads the options it knows, in every spelling', () => {
    expect(parseCommandLine(['once', '--dry-run', '-c', 'a.yaml', '--log-format=json'])).toEqual({ values: { 'dry-run': true, config: 'a.yaml', 'log-format': 'json' }, positionals: ['once'] });
    expect(parseCommandLine(['check', '--config=b.yaml', '--connect', '-V'])).toEqual({ values: { config: 'b.yaml', connect: true, version: true }, positionals: ['check'] });
  });

  it('an unknown option says what it is and suggests the nearest known one', () => {
    expect(error(['once', '--dryrun'])).toBe('unknown option --dryrun: did you mean --dry-run?');
    expect(error(['--DRY-RUN'])).toBe('unknown option --DRY-RUN: did you mean --dry-run?');
    expect(error(['check', '--conect'])).toBe('unknown option --conect: did you mean --connect?');
    expect(error(['--verison'])).toBe('unknown option --verison: did you mean --version?');
    expect(error(['--log-fromat', 'json'])).toBe('unknown option --log-fromat: did you mean --log-format?');
    expect(error(['-v'])).toBe('unknown option -v: did you mean -V?');
    expect(error(['--frobnicate'])).toBe('unknown option --frobnicate; the options are --config (-c), --dry-run, --json, --connect, --print, --from, --target, --output (-o), --with-query, --log-format, --help (-h), --version (-V)');
    expect(unknownOption('-x')).toBe('unknown option -x; the options are --config (-c), --dry-run, --json, --connect, --print, --from, --target, --output (-o), --with-query, --log-format, --help (-h), --version (-V)');
  });

  it('a value missing, or given where none is taken, names the option', () => {
    expect(error(['--config'])).toBe('--config needs a value, as in --config=VALUE or --config VALUE');
    expect(error(['-c'])).toBe('-c needs a value, as in -c VALUE');
    expect(error(['check', '--config', '--connect'])).toBe('--config needs a value, but the next argument is the option --connect (write --config=--connect if that is the value)');
    expect(error(['once', '--json=yes'])).toBe('--json takes no value (got "--json=yes")');
  });
});
