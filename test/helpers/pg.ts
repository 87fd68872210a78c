import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { openTarget } from '../../src/db/target.js';
import { runTarget, settingsFor, systemDeps, type RunReport } from '../../src/run/run-target.js';
import type { Outcome } from '../../src/run/outcome.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { SUITE_DATABASES, SUITE_ROLES } from './suite-objects.js';

// Real sessions on the suite's PostgreSQL, and the checks the scenarios make on them.

export const HARNESS_APP = 'test-harness';
export const adminUrl = () => inject('databaseUrl');
export const socketDir = () => inject('socketDir');
export const PASSWORD = `pw_${randomBytes(6).toString('hex')}`;

/** A URL to the suite's server, or to `server` (a superuser URL: a test's own server), as this user. */
export function urlFor(opts: { user?: string; database?: string; application?: string; password?: string; server?: string }): string {
  const url = new URL(opts.server ?? adminUrl());
  if (opts.user) {
    url.username = opts.user;
    url.password = opts.password ?? PASSWORD;
  }
  if (opts.database) url.pathname = `/${opts.database}`;
  if (opts.application) url.searchParams.set('application_name', opts.application);
  return url.toString();
}

export interface TestSession {
  client: pg.Client;
  pid: number;
  /** Errors the session saw (a terminated session gets 57P01 here). */
  errors: Error[];
}

/** Opens sessions (on the suite's server, or on `server`, a test's own) and closes whatever is left of them at the end of each test. */
export class Sessions {
  private readonly open: pg.Client[] = [];
  admin!: pg.Client;

  constructor(private readonly server?: () => string) {}

  async start(): Promise<void> {
    this.admin = new pg.Client({ connectionString: this.server?.() ?? adminUrl(), application_name: HARNESS_APP });
    this.admin.on('error', () => undefined);
    await this.admin.connect();
  }

  async session(opts: { user?: string; database?: string; application: string; socket?: boolean; replication?: boolean }): Promise<TestSession> {
    const url = new URL(urlFor({ ...opts, ...(this.server ? { server: this.server() } : {}) }));
    const errors: Error[] = [];
    const config: pg.ClientConfig = opts.socket
      ? { host: socketDir(), port: Number(url.port), user: decodeURIComponent(url.username), password: decodeURIComponent(url.password), database: url.pathname.slice(1), application_name: opts.application }
      : { connectionString: url.toString() };
    if (opts.replication) (config as { replication?: string }).replication = 'database';
    const client = new pg.Client(config);
    client.on('error', (err) => errors.push(err));
    this.open.push(client);
    await client.connect();
    const pid = (client as unknown as { processID: number }).processID;
    return { client, pid, errors };
  }

  async alive(pids: number[]): Promise<Set<number>> {
    const rows = (await this.admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE pid = ANY($1)', [pids])).rows;
    return new Set(rows.map((r) => r.pid));
  }

  async isAlive(pid: number): Promise<boolean> {
    return (await this.alive([pid])).has(pid);
  }

  /** Waits (polling the server, with a deadline) until the session has been in its state for `ms`. */
  async agedOver(pid: number, ms: number, column: 'state_change' | 'query_start' | 'xact_start' | 'backend_start' = 'state_change'): Promise<void> {
    const deadline = Date.now() + ms + 10_000;
    for (;;) {
      const row = (await this.admin.query<{ ms: number }>(`SELECT extract(epoch FROM clock_timestamp() - ${column})::float8 * 1000 AS ms FROM pg_stat_activity WHERE pid = $1`, [pid])).rows[0];
      if (row && row.ms > ms) return;
      if (Date.now() > deadline) throw new Error(`session ${pid} did not age past ${ms} ms`);
      await sleep(Math.max(10, Math.min(200, ms - (row?.ms ?? 0) + 5)));
    }
  }

  /** Waits (with a deadline) until the backend has exited. */
  async gone(pid: number): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (await this.isAlive(pid)) {
      if (Date.now() > deadline) throw new Error(`backend ${pid} did not exit`);
      await sleep(10);
    }
  }

  async waitForState(pid: number, state: string): Promise<void> {
    const deadline = Date.now() + 10_000;
    while ((await this.admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = $2', [pid, state])).rowCount === 0) {
      if (Date.now() > deadline) throw new Error(`session ${pid} never reached state ${state}`);
      await sleep(20);
    }
  }

  async closeAll(): Promise<void> {
    for (const c of this.open.splice(0)) await c.end().catch(() => undefined);
  }

  async end(): Promise<void> {
    await this.closeAll();
    await this.admin.end().catch(() => undefined);
  }
}

/** Creates a role (login, with the suite password) unless it exists; returns its name. */
export async function ensureRole(admin: pg.Client, name: string, extra = ''): Promise<string> {
  if (!SUITE_ROLES.includes(name)) throw new Error(`role ${name} is not in SUITE_ROLES (test/helpers/suite-objects.ts): it would be left behind`);
  await admin.query(`DO $$ BEGIN CREATE ROLE ${name} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`);
  await admin.query(`ALTER ROLE ${name} LOGIN PASSWORD '${PASSWORD}' ${extra}`);
  return name;
}

export async function ensureDatabase(admin: pg.Client, name: string): Promise<string> {
  if (!SUITE_DATABASES.includes(name)) throw new Error(`database ${name} is not in SUITE_DATABASES (test/helpers/suite-objects.ts): it would be left behind`);
  const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
  if (exists.rowCount === 0) await admin.query(`CREATE DATABASE ${name}`);
  return name;
}

/** The least-privileged reaper role of the README. */
export async function ensureReaperRole(admin: pg.Client): Promise<string> {
  await ensureRole(admin, 'reaper_t', 'NOSUPERUSER');
  await admin.query('GRANT pg_read_all_stats, pg_signal_backend TO reaper_t');
  return 'reaper_t';
}

export const unique = (prefix: string) => `${prefix}-${randomBytes(3).toString('hex')}`;

/** A validated config with one target; `reaperUser` undefined runs as the suite's superuser. */
export function testConfig(overrides: Record<string, unknown>, reaperUser?: string): Config {
  return validateConfig({
    terminateTimeout: '5s',
    targets: [{ name: 'main', connectionString: urlFor({ user: reaperUser }) }],
    ...overrides,
  });
}

/** One run of the real code path (snapshot, plan, execute) against the suite's server. */
export async function reap(config: Config, db = openTarget(config.targets[0]!, { applicationName: config.applicationName })): Promise<RunReport> {
  try {
    return await runTarget(settingsFor(config, config.targets[0]!.name), systemDeps(db));
  } finally {
    await db.close();
  }
}

export function outcomeOf(report: RunReport, pid: number): Outcome | undefined {
  return report.results.find((r) => r.decision.session.pid === pid)?.outcome;
}

export function resultOf(report: RunReport, pid: number) {
  return report.results.find((r) => r.decision.session.pid === pid);
}
