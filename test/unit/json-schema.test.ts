import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configJsonSchema, renderJsonSchema } from '../../src/config/json-schema.js';
import { parseConfigText } from '../../src/config/load.js';

// config.schema.json (for editors) is generated from the zod schema: it must never be stale,
// every key must say what it is, and the example config must point at it and pass check.

const ROOT = join(import.meta.dirname, '../..');

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

  it('shows every top-level, target and policy key (commented out where it has no place in the example)', () => {
    const text = readFileSync(join(ROOT, 'config.example.yaml'), 'utf8');
    const { schema } = configJsonSchema() as { schema: Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
    const keys = [
      ...Object.keys(schema.properties),
      ...Object.keys(schema.properties.targets.items.properties),
      ...Object.keys(schema.properties.policies.items.properties),
    ];
    expect(keys.filter((k) => !new RegExp(`(^|[\\s{#-])${k}:`, 'm').test(text))).toEqual([]);
  });
});
