import { describe, expect, it } from 'vitest';
import { addressError } from '../../src/config/address.js';
import { AddressSet, toBytes } from '../../src/policy/address.js';
import { compileGlob, GlobSet } from '../../src/policy/glob.js';
import { formatCount, parseCount } from '../../src/config/count.js';
import { formatDuration, parseDuration } from '../../src/config/duration.js';
import { substituteEnv } from '../../src/config/env.js';
import { stateLabel } from '../../src/db/session.js';
import { redact, describeError, registerSecret } from '../../src/util/errors.js';

describe('globs', () => {
  it.each([
    ['pg_dump*', 'pg_dump', true],
    ['pg_dump*', 'pg_dumpall', true],
    ['pg_dump*', 'xpg_dump', false],
    ['app_?', 'app_1', true],
    ['app_?', 'app_12', false],
    ['App', 'app', false],
    ['a.b', 'axb', false],
    ['a.b', 'a.b', true],
    ['(x)+[y]', '(x)+[y]', true],
    ['*', '', true],
    ['*-api', 'checkout-api', true],
  ])('%s vs %j → %s', (pattern, value, expected) => {
    expect(compileGlob(pattern).test(value)).toBe(expected);
    expect(new GlobSet([pattern]).test(value)).toBe(expected);
    expect(new GlobSet(['zzz', 'y*z', pattern]).test(value)).toBe(expected);
  });

  it('a null value (not visible) matches nothing', () => {
    expect(new GlobSet(['*'])).toBeDefined();
    expect(new GlobSet(['*']).test(null)).toBe(false);
  });
});

describe('addresses', () => {
  it.each([
    ['10.0.0.0/8', '10.255.1.2', true],
    ['10.0.0.0/8', '11.0.0.1', false],
    ['192.168.1.7', '192.168.1.7', true],
    ['192.168.1.7', '192.168.1.8', false],
    ['172.16.0.0/12', '172.31.255.255', true],
    ['172.16.0.0/12', '172.32.0.0', false],
    ['0.0.0.0/0', '8.8.8.8', true],
    ['fd00::/8', 'fdab::1', true],
    ['fd00::/8', 'fe80::1', false],
    ['::1', '::1', true],
    ['2001:db8::/32', '2001:db8:0:1::5', true],
    ['10.0.0.0/8', '::ffff:10.1.1.1', true],
    ['::ffff:10.0.0.0/104', '10.2.3.4', true],
    ['10.0.0.0/8', 'fd00::1', false],
    ['10.0.0.5/30', '10.0.0.6', true],
  ])('%s contains %s → %s', (entry, addr, expected) => {
    expect(new AddressSet([entry]).test(addr, false)).toBe(expected);
  });

  it('"local" matches Unix-socket sessions only', () => {
    expect(new AddressSet(['local']).test(null, true)).toBe(true);
    expect(new AddressSet(['10.0.0.0/8']).test(null, true)).toBe(false);
    expect(new AddressSet(['0.0.0.0/0']).test(null, false)).toBe(false);
    expect(new AddressSet(['local']).test('127.0.0.1', false)).toBe(false);
  });

  it.each(['10.0.0.0/33', 'fd00::/129', '10.0.0/8', 'db.internal', '10.0.0.0/8/8', '10.0.0.0/x', ''])('rejects %j', (entry) => {
    expect(addressError(entry)).toMatch(/expected/);
  });

  it('parses IPv6 with embedded IPv4 and zones', () => {
    expect([...toBytes('::ffff:1.2.3.4')!]).toEqual([1, 2, 3, 4]);
    expect(toBytes('fe80::1%eth0')![15]).toBe(1);
    expect(toBytes('not-an-ip')).toBeUndefined();
  });
});

describe('durations', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['10m', 600_000],
    ['1h30m', 5_400_000],
    ['2d', 172_800_000],
    ['1.5s', 1500],
    [90, 90_000],
    ['90', 90_000],
    [0.25, 250],
  ])('%j → %d ms', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each(['ten', '10w', '', 'm', '1h 30m', '-5s', null, true, {}])('rejects %j', (input) => {
    expect(parseDuration(input)).toBeUndefined();
  });

  it('formats for people', () => {
    expect([500, 1500, 90_000, 5_400_000, 172_800_000].map(formatDuration)).toEqual(['500ms', '1.5s', '1.5m', '1.5h', '2d']);
  });
});

describe('counts', () => {
  it.each([
    ['5000', 5000],
    [5000, 5000],
    ['100k', 100_000],
    ['100K', 100_000],
    ['10M', 10_000_000],
    ['1.5G', 1_500_000_000],
    [' 2.5k ', 2500],
    ['1.50k', 1500],
    ['0.001M', 1000],
  ])('%j → %d', (input, n) => {
    expect(parseCount(input)).toBe(n);
  });

  it.each(['ten', '10m', '', 'k', '1 M', '-5', '1e6', 1.5, '1.2345k', '0.0001k', '1.5', null, true, {}])('rejects %j', (input) => {
    expect(parseCount(input)).toBeUndefined();
  });

  it('formats for people', () => {
    expect([950, 9999, 150_000, 12_500_000, 2_000_000_000].map(formatCount)).toEqual(['950', '9999', '150k', '12.5M', '2G']);
  });

  it('never rounds a count across a threshold: the short form only where it is exact', () => {
    expect([99_999, 100_000, 1_500_001, 1_500_000, 10_050].map(formatCount)).toEqual(['99999', '100k', '1500001', '1.5M', '10050']);
  });
});

describe('environment substitution', () => {
  it('replaces ${VAR} and ${VAR:-default}, reports unset ones', () => {
    expect(substituteEnv('a ${X} b', { X: '1' })).toEqual({ value: 'a 1 b', missing: [] });
    expect(substituteEnv('${X:-d}', {})).toEqual({ value: 'd', missing: [] });
    expect(substituteEnv('${X:-d}', { X: '' })).toEqual({ value: 'd', missing: [] });
    expect(substituteEnv('${X:-}', {})).toEqual({ value: '', missing: [] });
    expect(substituteEnv('${A}${B}', { A: 'x' })).toEqual({ value: 'x', missing: ['B'] });
    expect(substituteEnv('${E}', { E: '' })).toEqual({ value: '', missing: ['E'] });
    expect(substituteEnv('$${X} $X', { X: '1' })).toEqual({ value: '${X} $X', missing: [] });
  });
});

describe('labels and redaction', () => {
  it('turns pg_stat_activity states into metric labels', () => {
    expect(['active', 'idle in transaction (aborted)', 'fastpath function call', 'starting', 'some new state', null].map(stateLabel)).toEqual(['active', 'idle_in_transaction_aborted', 'fastpath_function_call', 'starting', 'other', 'unknown']);
  });

  it('removes passwords from URLs, key=value strings and registered secrets', () => {
    expect(redact('postgres://u:hunter2@h/db')).toBe('postgres://u:***@h/db');
    expect(redact('host=h password=hunter2 user=u')).toBe('host=h password=*** user=u');
    registerSecret('swordfish-9');
    expect(describeError(Object.assign(new Error('auth with swordfish-9 failed'), { code: '28P01' }))).toBe('auth with *** failed (SQLSTATE 28P01)');
  });
});
