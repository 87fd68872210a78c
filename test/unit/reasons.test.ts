import { describe, expect, it } from 'vitest';
import { configJsonSchema } from '../../src/config/json-schema.js';
import { validateConfig } from '../../src/config/load.js';
import { reasonsOf } from '../../src/metrics/metrics.js';
import { snapshotFilter } from '../../src/plan/filter.js';
import { PROTECT_ALL } from '../../src/plan/protect.js';
import { compilePolicies } from '../../src/policy/compile.js';
import { ENTRIES, REASONS, THRESHOLD_KEYS } from '../../src/reasons/table.js';
import { victim } from '../../src/run/executor.js';
import { session, snapshot } from '../helpers/sessions.js';
import { plan } from '../../src/plan/planner.js';

// The table of reasons is the one place a threshold reason is described: the config keys, the
// JSON schema, the metrics' reasons, the pre-filter and the kill guard are all built from it.

const everyKey = Object.fromEntries(ENTRIES.map((e) => [e.key, e.value.example]));
const compiled = () => compilePolicies(validateConfig({ targets: [{ name: 't', host: 'db' }], policies: [{ name: 'all', ...everyKey }] }), 't');

describe('the table of reasons', () => {
  it('names each reason and each key once, in the documented order', () => {
    expect(REASONS).toEqual(['blocking', 'lock_wait', 'idle', 'idle_in_transaction', 'query_duration', 'transaction_duration', 'xmin_age', 'connection_age']);
    expect(new Set(REASONS).size).toBe(REASONS.length);
    expect(new Set(THRESHOLD_KEYS).size).toBe(THRESHOLD_KEYS.length);
  });

  it('is what the config accepts and config.schema.json describes, with each entry\'s own words', () => {
    const { schema } = configJsonSchema() as { schema: Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
    const props = schema.properties.policies.items.properties;
    for (const e of ENTRIES) expect(props[e.key].description).toBe(e.description);
    expect(compiled()[0]!.reasons).toHaveLength(ENTRIES.length);
  });

  it('gives every reason its metric series, its pre-filter threshold and its guard fact', () => {
    const [p] = compiled();
    expect(reasonsOf(p!)).toEqual(REASONS);
    expect(snapshotFilter([p!], PROTECT_ALL).thresholds.every((t) => typeof t === 'number' && t > 0)).toBe(true);
    const s = session({ idleFor: 90_000, connectedFor: 100_000 });
    const [d] = plan(snapshot([s]), [p!], { target: 't', applicationName: 'pg-reaper' });
    expect(d).toMatchObject({ reason: 'idle', age: 90_000, threshold: 600 });
    expect(victim(d!)).toEqual({ pid: s.pid, backendStart: s.backendStart, reason: 'idle', state: 'idle', fact: s.stateChange });
  });
});
