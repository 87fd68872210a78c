import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatProblem, loadConfigFile, parseConfigText } from '../../src/config/load.js';

// Files the config points at are read when it is loaded (check, start, reload): a missing or
// unreadable one is a config error with its location, not a target that goes down later.

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pg-reaper-files-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const config = (passwordFile: string) => `targets:
  - name: a
    connectionString: postgres://reaper@127.0.0.1:1/postgres
    passwordFile: ${passwordFile}
policies: [{ name: idle, maxIdle: 1m }]
`;

const load = (body: string) => {
  const file = join(dir, 'c.yaml');
  writeFileSync(file, body);
  const r = loadConfigFile(file, {});
  return r.ok ? 'ok' : r.problems.map(formatProblem);
};

describe('passwordFile', () => {
  it('a readable file with a password passes', () => {
    writeFileSync(join(dir, 'pw'), 'Hunter9Secret\n');
    expect(load(config('pw'))).toBe('ok');
  });

  it('a missing file, a directory or an empty file is an error with the location, never the content', () => {
    expect(load(config('missing'))).toEqual([`${join(dir, 'c.yaml')}:4:19 targets[0].passwordFile: cannot read ${join(dir, 'missing')}: no such file (ENOENT)`]);
    expect(load(config('.'))).toEqual([`${join(dir, 'c.yaml')}:4:19 targets[0].passwordFile: cannot read ${dir}: it is a directory (EISDIR)`]);
    writeFileSync(join(dir, 'empty'), '\n');
    expect(load(config('empty'))).toEqual([`${join(dir, 'c.yaml')}:4:19 targets[0].passwordFile: ${join(dir, 'empty')} is empty: it should hold the password (a final newline is dropped)`]);
  });

  it.skipIf(process.getuid?.() === 0)('a file this user may not read is an error', () => {
    writeFileSync(join(dir, 'locked'), 'Hunter9Secret\n');
    chmodSync(join(dir, 'locked'), 0o000);
    const out = load(config('locked'));
    expect(out).toEqual([`${join(dir, 'c.yaml')}:4:19 targets[0].passwordFile: cannot read ${join(dir, 'locked')}: permission denied for this user (EACCES)`]);
  });

  it('parsing the text alone (as the deploy tests do) does not read files', () => {
    expect(parseConfigText(config('/nonexistent/pw'), 'c.yaml', {}).ok).toBe(true);
  });
});
