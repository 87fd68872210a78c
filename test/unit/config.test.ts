import { describe, expect, it } from 'vitest';
import { formatProblem, parseConfigText, validateConfig } from '../../src/config/load.js';

// The config file is the operator's interface: every malformed input gets a message that says
// where (file, line, column, path) and what would be accepted.

const MINIMAL = `targets:
  - name: primary
    connectionString: postgres://reaper@db/postgres
policies:
  - name: idle
    maxIdle: 10m
`;

const problems = (text: string, env: NodeJS.ProcessEnv = {}) => {
  const r = parseConfigText(text, 'c.yaml', env);
  if (r.ok) throw new Error('expected the config to be rejected');
  return r.problems.map(formatProblem);
};

describe('valid config', () => {
  it('fills every default', () => {
    const r = parseConfigText(MINIMAL, 'c.yaml', {});
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config).toMatchObject({
      schedule: '*/30 * * * * *',
      dryRun: false,
      logLevel: 'info',
      applicationName: 'pg-reaper',
      http: { host: '127.0.0.1', port: 9188, probes: { requireAuth: true } },
      terminateTimeout: 5000,
      shutdownTimeout: 10_000,
      logQueryText: false,
      protect: { backups: true, maintenance: true },
      budget: { maxActions: 100, window: 600_000 },
      exempt: { users: [], databases: [], applications: [], clientAddresses: [] },
    });
    expect(r.config.maxActionsPerRun).toBeUndefined();
    expect(r.config.policies[0]!.budget).toBeUndefined();
    expect(r.config.targets[0]).toMatchObject({ name: 'primary', connectTimeout: 5000, queryTimeout: 30_000 });
    expect(r.config.policies[0]).toMatchObject({ name: 'idle', maxIdle: 600_000, action: 'terminate', dryRun: false });
  });

  it('accepts every key of the documented interface', () => {
    const r = parseConfigText(
      `schedule: "*/5 * * * *"
timezone: Europe/Berlin
dryRun: true
logLevel: debug
applicationName: reaper-a
http: { host: 127.0.0.1, port: 0 }
maxActionsPerRun: 100
terminateTimeout: 2s
shutdownTimeout: 1m
logQueryText: true
protect: { backups: false, maintenance: "false" }
budget: off
exempt: { users: [postgres], applications: ["pg_dump*"], databases: [template1], clientAddresses: [local, "10.0.0.0/8", "fd00::/8"] }
targets:
  - name: a
    connectionString: \${URL}
    connectTimeout: 1500ms
  - name: b
    host: db.internal
    port: "\${PORT:-5433}"
    user: reaper
    passwordFile: /run/secrets/pw
    database: postgres
    queryTimeout: 10
policies:
  - name: p1
    targets: [a]
    maxIdle: 1h30m
    maxIdleInTransaction: 2m
    maxTransactionDuration: 1h
    maxConnectionAge: 2d
    match: { users: ["app_*"], databases: [shop], applications: ["web-?"], clientAddresses: ["192.168.1.7"] }
    exempt: { users: [], databases: [], applications: [], clientAddresses: [] }
    dryRun: "true"
    maxActionsPerRun: 5
    budget: { maxActions: "5", window: 1m }
  - name: p2
    maxQueryDuration: 0.5
    action: cancel
    budget: off
`,
      'c.yaml',
      { URL: 'postgres://u:p@h/d' },
    );
    if (!r.ok) throw new Error(r.problems.map(formatProblem).join('\n'));
    const c = r.config;
    expect(c.targets[0]!.connectionString).toBe('postgres://u:p@h/d');
    expect(c.targets[1]!.port).toBe(5433);
    expect(c.targets[1]!.queryTimeout).toBe(10_000);
    expect(c.policies[0]!.maxIdle).toBe(5_400_000);
    expect(c.policies[0]!.maxConnectionAge).toBe(172_800_000);
    expect(c.policies[0]!.dryRun).toBe(true);
    expect(c.policies[1]!.maxQueryDuration).toBe(500);
    expect(c.http.port).toBe(0);
    expect(c.protect).toEqual({ backups: false, maintenance: false });
    expect(c.budget).toBeNull();
    expect(c.policies[0]!.budget).toEqual({ maxActions: 5, window: 60_000 });
    expect(c.policies[1]!.budget).toBeNull();
  });

  it('reads budget: false as off (YAML 1.1 spells off that way)', () => {
    const r = parseConfigText(MINIMAL + 'budget: false\n', 'c.yaml', {});
    expect(r.ok && r.config.budget).toBeNull();
  });

  it('keeps a value from the environment as one string, whatever YAML it looks like', () => {
    const r = parseConfigText(MINIMAL.replace('postgres://reaper@db/postgres', "host=db password='${PW}'"), 'c.yaml', { PW: 'a: b # [c]' });
    expect(r.ok && r.config.targets[0]!.connectionString).toBe("host=db password='a: b # [c]'");
  });

  it('writes $${ for a literal ${', () => {
    const r = parseConfigText(MINIMAL.replace('postgres://reaper@db/postgres', () => '"postgres://reaper@db/x$${HOME}"'), 'c.yaml', { HOME: '/root' });
    expect(r.ok && r.config.targets[0]!.connectionString).toBe('postgres://reaper@db/x${HOME}');
  });
});

// Each malformed example, with the exact problem it must produce.
const MALFORMED: [string, string, string][] = [
  ['unknown top-level key', MINIMAL + 'colour: red\n', 'c.yaml:7:1 colour: unknown key "colour"; accepted keys: schedule, timezone, scheduleJitter, maxConcurrentRuns, coordination, dryRun, logLevel, logFormat, applicationName, http, maxActionsPerRun, terminateTimeout, shutdownTimeout, logQueryText, exemptListeners, protect, budget, watchConfig, exempt, audit, targets, policies'],
  ['unknown policy key', MINIMAL + '    maxIdel: 5m\n', 'c.yaml:7:5 policies[0].maxIdel: unknown key "maxIdel"; accepted keys: name, targets, maxBlocking, maxLockWait, maxIdle, maxIdleInTransaction,'],
  ['unknown target key', MINIMAL.replace('    connectionString', '    sslmode: require\n    connectionString'), 'c.yaml:3:5 targets[0].sslmode: unknown key "sslmode"'],
  ['duration is a word', MINIMAL.replace('10m', 'ten'), 'c.yaml:6:14 policies[0].maxIdle: expected a duration like "10m" (ms, s, m, h, d, or a number of seconds) greater than 0, got "ten"'],
  ['duration is zero', MINIMAL.replace('10m', '0s'), 'c.yaml:6:14 policies[0].maxIdle: expected a duration like "10m" (ms, s, m, h, d, or a number of seconds) greater than 0, got "0s"'],
  ['duration is negative', MINIMAL.replace('10m', '-5'), 'policies[0].maxIdle: expected a duration like "10m"'],
  ['duration has an unknown unit', MINIMAL.replace('10m', '10w'), 'got "10w"'],
  ['keepIdle without maxIdle', MINIMAL.replace('    maxIdle: 10m\n', '    maxConnectionAge: 1h\n    keepIdle: 2\n'), 'c.yaml:7:15 policies[0].keepIdle: keepIdle only works with maxIdle: it spares the most recently active of the idle sessions that maxIdle would terminate'],
  ['terminateAfter without maxQueryDuration', MINIMAL.replace('    maxIdle: 10m\n', '    maxLockWait: 10s\n    action: cancel\n    terminateAfter: 30s\n'), 'c.yaml:8:21 policies[0].terminateAfter: terminateAfter only works with maxQueryDuration: it terminates a query still running terminateAfter past maxQueryDuration, after its cancel; add maxQueryDuration or remove terminateAfter'],
  ['terminateAfter without cancel', MINIMAL.replace('    maxIdle: 10m\n', '    maxQueryDuration: 1m\n    terminateAfter: 30s\n'), 'c.yaml:7:21 policies[0].terminateAfter: terminateAfter only works with action "cancel": it terminates a query that outlived its cancel'],
  ['when over 100%', MINIMAL + '    when: { connectionsAbove: "120%" }\n', 'c.yaml:7:31 policies[0].when.connectionsAbove: expected a percentage of the client slots from "1%" to "100%", or a whole number of connections >= 1, got "120%"'],
  ['when of 0', MINIMAL + '    when: { connectionsAbove: 0 }\n', 'c.yaml:7:31 policies[0].when.connectionsAbove: expected a percentage of the client slots from "1%" to "100%", or a whole number of connections >= 1, got 0'],
  ['leaseTimeout too short', MINIMAL + 'coordination: { mode: advisory-lock, leaseTimeout: 2s }\n', 'c.yaml:7:52 coordination.leaseTimeout: expected a leaseTimeout of at least 6s (keepalive probes are counted in whole seconds)'],
  ['budget is a word', MINIMAL + 'budget: lots\n', 'c.yaml:7:9 budget: expected { maxActions: N, window: DURATION } or off, got "lots"'],
  ['budget of 0 actions', MINIMAL + 'budget: { maxActions: 0, window: 1m }\n', 'c.yaml:7:23 budget.maxActions: expected a number >= 1, got 0'],
  ['budget without a window', MINIMAL + 'budget: { maxActions: 5 }\n', 'c.yaml:7:9 budget.window: expected a duration like "10m" (ms, s, m, h, d, or a number of seconds) greater than 0, got nothing'],
  ['policy budget with an unknown key', MINIMAL + '    budget: { maxActions: 5, window: 1m, per: run }\n', 'c.yaml:7:42 policies[0].budget.per: unknown key "per"; accepted keys: maxActions, window'],
  ['protect with an unknown key', MINIMAL + 'protect: { backups: true, pg_cron: true }\n', 'c.yaml:7:27 protect.pg_cron: unknown key "pg_cron"; accepted keys: backups, maintenance'],
  ['protect.backups not a boolean', MINIMAL + 'protect: { backups: sometimes }\n', 'c.yaml:7:21 protect.backups: expected a boolean, got "sometimes"'],
  ['no threshold', MINIMAL.replace('    maxIdle: 10m\n', ''), 'c.yaml:5:5 policies[0]: a policy needs at least one threshold: maxBlocking, maxLockWait, maxIdle, maxIdleInTransaction, maxQueryDuration, maxTransactionDuration, maxXminAge, maxConnectionAge'],
  ['cancel with maxIdle', MINIMAL + '    action: cancel\n', 'c.yaml:7:13 policies[0].action: action "cancel" only works with maxLockWait or maxQueryDuration, and no other threshold'],
  ['cancel with two thresholds', MINIMAL + '    maxQueryDuration: 1m\n    action: cancel\n', 'policies[0].action: action "cancel" only works with maxLockWait or maxQueryDuration, and no other threshold'],
  ['unknown action', MINIMAL + '    action: kill\n', 'c.yaml:7:13 policies[0].action: expected one of "terminate", "cancel", got "kill"'],
  ['bad policy name', MINIMAL.replace('name: idle', 'name: Idle Sessions'), 'c.yaml:5:11 policies[0].name: expected lowercase letters, digits, "_" or "-", got "Idle Sessions"'],
  ['duplicate policy name', MINIMAL + '  - name: idle\n    maxIdle: 1h\n', 'c.yaml:7:11 policies[1].name: duplicate policy name "idle"; names must be unique'],
  ['duplicate target name', MINIMAL.replace('policies:', '  - name: primary\n    host: other\npolicies:'), 'c.yaml:4:11 targets[1].name: duplicate target name "primary"'],
  ['policy names an unknown target', MINIMAL + '    targets: [primary, replica]\n', 'c.yaml:7:24 policies[0].targets[1]: unknown target "replica"; defined targets: primary'],
  ['target without a server', MINIMAL.replace('    connectionString: postgres://reaper@db/postgres\n', '    user: reaper\n'), 'c.yaml:2:5 targets[0]: expected either connectionString or host (with port, user, database)'],
  ['connectionString and host together', MINIMAL.replace('    connectionString', '    host: db\n    connectionString'), 'c.yaml:3:11 targets[0].host: "host" cannot be combined with connectionString'],
  ['password and passwordFile together', MINIMAL.replace('    connectionString', '    password: x\n    passwordFile: /pw\n    connectionString'), 'c.yaml:4:19 targets[0].passwordFile: expected password or passwordFile, not both'],
  ['missing environment variable', MINIMAL.replace('postgres://reaper@db/postgres', '${PRIMARY_URL}'), 'c.yaml:3:23 targets[0].connectionString: environment variable PRIMARY_URL is not set (or empty); set it or write ${PRIMARY_URL:-default}'],
  ['invalid CIDR', MINIMAL + '    match: { clientAddresses: ["10.0.0.0/40"] }\n', 'c.yaml:7:32 policies[0].match.clientAddresses[0]: expected a prefix length 0-32 after "/", got "10.0.0.0/40"'],
  ['not an address', MINIMAL + '    exempt: { clientAddresses: ["db.internal"] }\n', 'policies[0].exempt.clientAddresses[0]: expected an IP address, a CIDR like "10.0.0.0/8" or "fd00::/8", or "local", got "db.internal"'],
  ['bad cron pattern', 'schedule: "every minute"\n' + MINIMAL, 'c.yaml:1:11 schedule: expected a cron pattern with 5 or 6 fields like "*/30 * * * * *"'],
  ['unknown time zone', 'timezone: Mars/Olympus\n' + MINIMAL, 'c.yaml:1:11 timezone: expected an IANA time zone like "UTC" or "Europe/Berlin", got "Mars/Olympus"'],
  ['port out of range', 'http: { port: 70000 }\n' + MINIMAL, 'c.yaml:1:15 http.port: expected a number <= 65535, got 70000'],
  ['log level', 'logLevel: loud\n' + MINIMAL, 'c.yaml:1:11 logLevel: expected one of "fatal", "error", "warn", "info", "debug", "trace", "silent", got "loud"'],
  ['dryRun not a boolean', 'dryRun: maybe\n' + MINIMAL, 'c.yaml:1:9 dryRun: expected a boolean, got "maybe"'],
  ['maxActionsPerRun zero', 'maxActionsPerRun: 0\n' + MINIMAL, 'c.yaml:1:19 maxActionsPerRun: expected a number >= 1, got 0'],
  ['maxActionsPerRun fractional', 'maxActionsPerRun: 2.5\n' + MINIMAL, 'c.yaml:1:19 maxActionsPerRun: expected an integer, got 2.5'],
  ['no targets', MINIMAL.replace(/targets:\n.*\n.*\n/, 'targets: []\n'), 'c.yaml:1:10 targets: expected at least 1 entry'],
  ['policies missing', MINIMAL.replace(/policies:[\s\S]*/, ''), 'c.yaml:1:1 policies: required: expected a list'],
  ['match list is a string', MINIMAL + '    match: { users: app }\n', 'c.yaml:7:21 policies[0].match.users: expected a list, got "app"'],
  ['targets is a mapping', 'targets: { name: a }\npolicies: []\n', 'c.yaml:1:10 targets: expected a list, got a mapping'],
  ['empty glob', MINIMAL + '    match: { applications: [""] }\n', 'policies[0].match.applications[0]: expected a non-empty string, got ""'],
  ['YAML syntax error', 'targets: [\n', 'c.yaml:2:1 invalid YAML:'],
  ['duplicate YAML key', MINIMAL + '    maxIdle: 5m\n', 'invalid YAML: Map keys must be unique'],
  ['empty file', '', 'c.yaml:1:1 targets: required: expected a list'],
];

describe('malformed config', () => {
  it.each(MALFORMED)('%s', (_name, text, expected) => {
    const found = problems(text);
    expect(found.some((p) => p.includes(expected)), `expected a problem containing:\n  ${expected}\ngot:\n  ${found.join('\n  ')}`).toBe(true);
  });

  it('reports every problem at once, in file order', () => {
    const found = problems(`dryRun: maybe
targets:
  - name: Primary
    connectionString: \${NOPE}
policies:
  - name: idle
    maxIdle: ten
    action: cancel
`);
    expect(found).toEqual([
      'c.yaml:1:9 dryRun: expected a boolean, got "maybe"',
      'c.yaml:3:11 targets[0].name: expected lowercase letters, digits, "_" or "-", got "Primary"',
      'c.yaml:4:23 targets[0].connectionString: environment variable NOPE is not set (or empty); set it or write ${NOPE:-default}',
      'c.yaml:7:14 policies[0].maxIdle: expected a duration like "10m" (ms, s, m, h, d, or a number of seconds) greater than 0, got "ten"',
      'c.yaml:8:13 policies[0].action: action "cancel" only works with maxLockWait or maxQueryDuration, and no other threshold (cancelling an idle session does nothing); use action "terminate" or a separate policy',
    ]);
  });

  it('never echoes a password or connection string value', () => {
    const found = problems(MINIMAL.replace('postgres://reaper@db/postgres', '[hunter2]').replace('    connectionString', '    password: [swordfish]\n    connectionString'));
    expect(found.join('\n')).toContain('targets[0].password: expected a string');
    expect(found.join('\n')).toContain('targets[0].connectionString: expected a string');
    expect(found.join('\n')).not.toMatch(/hunter2|swordfish/);
  });

  it('validateConfig (for in-memory configs) throws with paths', () => {
    expect(() => validateConfig({ targets: [], policies: [{ name: 'x' }] })).toThrow(/targets: expected at least 1 entry[\s\S]*policies\[0\]: a policy needs at least one threshold/);
  });
});
