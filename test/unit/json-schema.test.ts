import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { configJsonSchema, renderJsonSchema } from '../../src/config/json-schema.js';
import { parseConfigText } from '../../src/config/load.js';

// config.schema.json (for editors) is generated from the zod schema: it must never be stale,
// every key must say what it is, and the example config must point at it and pass check.

const ROOT = join(import.meta.dirname, '../..');
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Every key path of the JSON schema: "http.port", "targets[].ssl.cert", ... (through anyOf and oneOf too). */
function schemaPaths(node: Json, prefix = ''): string[] {
  const out = new Set<string>();
  const variants = [node, ...((node.anyOf ?? []) as Json[]), ...((node.oneOf ?? []) as Json[])];
  for (const variant of variants) {
    for (const [key, child] of Object.entries((variant.properties ?? {}) as Record<string, Json>)) {
      out.add(prefix + key);
      for (const p of schemaPaths(child, `${prefix}${key}.`)) out.add(p);
      for (const item of [child.items, ...((child.anyOf ?? []) as Json[]).map((v) => v.items)].filter(Boolean) as Json[]) for (const p of schemaPaths(item, `${prefix}${key}[].`)) out.add(p);
    }
  }
  return [...out];
}

/** Every key path of a YAML value, list items merged: the same notation as schemaPaths. */
function keyPaths(value: unknown, prefix = ''): string[] {
  if (Array.isArray(value)) return [...new Set(value.flatMap((item) => keyPaths(item, `${prefix.replace(/\.$/, '')}[].`)))];
  if (value === null || typeof value !== 'object') return [];
  return [...new Set(Object.entries(value).flatMap(([key, child]) => [prefix + key, ...keyPaths(child, `${prefix}${key}.`)]))];
}

/**
 * The example with its commented-out keys put back: a comment line that holds `key: value` or
 * `- key: value` (a key is camelCase, so prose never matches) loses its "# ". The commented lines
 * are written at the indentation they would have.
 */
function uncommented(text: string): string {
  return text
    .split('\n')
    .map((line) => {
      const m = /^(\s*)# ?(\s*(- )?[a-z][A-Za-z0-9]*:( .*)?)$/.exec(line);
      return m ? m[1]! + m[2]! : line;
    })
    .join('\n');
}

describe('config.schema.json', () => {
  it('is what npm run schema generates now (run it after changing the config schema)', () => {
    expect(readFileSync(join(ROOT, 'config.schema.json'), 'utf8')).toBe(renderJsonSchema());
  });

  it('has a description on every key', () => {
    expect(configJsonSchema().undocumented).toEqual([]);
  });

  it('describes what the loader accepts: the keys, enums and required lists of the zod schema', () => {
    const { schema } = configJsonSchema() as { schema: Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(schema.required).toEqual(['targets', 'policies']);
    expect(schema.additionalProperties).toBe(false);
    const policy = schema.properties.policies.items;
    expect(Object.keys(policy.properties)).toContain('maxBlocking');
    expect(policy.properties.action.enum).toEqual(['terminate', 'cancel']);
    expect(schema.properties.targets.items.properties.connectTimeout.default).toBe('5s');
  });
});

describe('config.example.yaml', () => {
  it('starts with the yaml-language-server modeline and passes check', () => {
    const text = readFileSync(join(ROOT, 'config.example.yaml'), 'utf8');
    expect(text.split('\n')[0]).toBe('# yaml-language-server: $schema=./config.schema.json');
    const r = parseConfigText(text, 'config.example.yaml', { DATABASE_URL: 'postgres://reaper@127.0.0.1:5432/postgres' });
    expect(r.ok ? 'ok' : r.problems).toBe('ok');
  });

  it('shows every key of the schema, nested ones too, as a key (commented out where it has no place in the example), and no key the schema lacks', () => {
    const text = readFileSync(join(ROOT, 'config.example.yaml'), 'utf8');
    const { schema } = configJsonSchema() as { schema: Json };
    const shown = keyPaths(parse(uncommented(text)));
    const expected = schemaPaths(schema);
    expect(expected.filter((k) => !shown.includes(k)), 'keys of the schema that the example does not show').toEqual([]);
    expect(shown.filter((k) => !expected.includes(k)), 'keys in the example that the schema does not have').toEqual([]);
  });
});

describe('policy-test.schema.json and the example policy tests', () => {
  it('is what npm run schema generates now, with a description on every key', async () => {
    const { renderTestFileJsonSchema, testFileJsonSchema } = await import('../../src/replay/json-schema.js');
    expect(readFileSync(join(ROOT, 'policy-test.schema.json'), 'utf8')).toBe(renderTestFileJsonSchema());
    expect(testFileJsonSchema().undocumented).toEqual([]);
  });

  it('deploy/examples/policies.test.yaml points at it, passes, and tests every policy of config.example.yaml', async () => {
    const { runTestFiles } = await import('../../src/cli/test.js');
    const file = join(ROOT, 'deploy/examples/policies.test.yaml');
    const text = readFileSync(file, 'utf8');
    expect(text.split('\n')[0]).toBe('# yaml-language-server: $schema=../../policy-test.schema.json');
    let out = '';
    expect(runTestFiles([file], { out: (t) => (out += t), err: (t) => (out += t) })).toBe(0);
    expect(out).toMatch(/\d+ tests in 1 file: (\d+) passed, 0 failed\n$/);
    const example = parseConfigText(readFileSync(join(ROOT, 'config.example.yaml'), 'utf8'), 'config.example.yaml', { DATABASE_URL: 'postgres://x@127.0.0.1/postgres' });
    if (!example.ok) throw new Error('config.example.yaml does not load');
    const untested = example.config.policies.map((p) => p.name).filter((name) => !new RegExp(`policy: ${name}\\b`).test(text));
    expect(untested).toEqual([]);
  });
});
