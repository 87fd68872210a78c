import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LOCK_KEY } from '../../src/config/schema.js';
import { targetKey } from '../../src/coord/lock-key.js';
import { leaseWindowMs } from '../../src/coord/advisory-lease.js';
import { dashboardExpr } from '../helpers/dashboard.js';
import { ensureReaperRole, ensureRole, Sessions, unique, urlFor } from '../helpers/pg.js';
import { checkPromql, havePromtool, type Scrape } from '../helpers/promql.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { endReplica, leaderOf, sample, scrape, startReplica, until, type Replica } from '../helpers/replica.js';

// What two replicas (two real `pg-reaper run` processes) export, as Prometheus scrapes them: the
// shipped dashboard's expressions count each session once through a failover, and a holder cut
// off by a network partition stops calling itself leader once its lease has run out.

const s = new Sessions();
let dir: string;
let reaper: string;
let app: string;
const running: Replica[] = [];
const proxies: Proxy[] = [];

beforeAll(async () => {
  await s.start();
  reaper = await ensureReaperRole(s.admin);
  app = await ensureRole(s.admin, 'app_t');
  dir = mkdtempSync(join(tmpdir(), 'pg-reaper-replica-signals-'));
});
afterEach(async () => {
  await Promise.all(running.splice(0).map(endReplica));
  for (const p of proxies.splice(0)) await p.close();
  await s.closeAll();
});
afterAll(async () => {
  await s.end();
  rmSync(dir, { recursive: true, force: true });
});

const LEASE = '6s';
const config = (tag: string) => `schedule: "* * * * * *"
http: { host: 127.0.0.1, port: 0 }
coordination: { mode: advisory-lock, leaseTimeout: ${LEASE} }
targets: [{ name: main, connectionString: "\${REAPER_URL}", connectTimeout: 1s }]
policies: [{ name: idle, maxIdle: 1h, maxBlocking: 1h, match: { applications: ["${tag}-*"] } }]
`;

/** A replica connecting through a proxy it can lose, and one connecting directly. */
async function twoReplicas(tag: string): Promise<{ a: Replica; b: Replica; proxy: Proxy }> {
  const file = join(dir, `${tag}.yaml`);
  writeFileSync(file, config(tag));
  const proxy = await startProxy(Number(new URL(urlFor({})).port));
  proxies.push(proxy);
  const viaProxy = new URL(urlFor({ user: reaper }));
  viaProxy.port = String(proxy.port);
  const a = await startReplica('a', file, { REAPER_URL: viaProxy.toString() });
  running.push(a);
  await until('a leads', async () => (await leaderOf(a)) === 1);
  const b = await startReplica('b', file, { REAPER_URL: urlFor({ user: reaper }) });
  running.push(b);
  await until('b stands by', async () => (sample(await scrape(b), 'pg_reaper_runs_total{target="main",result="standby"}') ?? 0) >= 1);
  return { a, b, proxy };
}

const unsigned = (n: number) => (n < 0 ? n + 2 ** 32 : n);
const holderPid = async () =>
  (await s.admin.query<{ pid: number }>("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 2", [unsigned(DEFAULT_LOCK_KEY), unsigned(targetKey('main'))])).rows[0]?.pid;

// what the last run read on the target: a replica that does not lead it must export none of it
const LAST_RUN_SERIES = ['pg_reaper_sessions{', 'pg_reaper_max_state_age_seconds{', 'pg_reaper_connections{', 'pg_reaper_max_connections{', 'pg_reaper_blocked_sessions{', 'pg_reaper_matched_sessions{', 'pg_reaper_target_info{'];
const lastRunSeries = (body: string) => body.split('\n').filter((l) => LAST_RUN_SERIES.some((p) => l.startsWith(p)));

/** `{state="idle"} 3`-style samples of one replica's series, for comparing with an aggregate over both. */
function samplesOf(body: string, metric: string, label: string): { labels: string; value: number }[] {
  return body
    .split('\n')
    .filter((l) => l.startsWith(`${metric}{`))
    .map((l) => {
      const value = /^[^{]+\{.*\} (\S+)$/.exec(l)![1]!;
      const v = new RegExp(`${label}="([^"]*)"`).exec(l)![1]!;
      return { labels: `{${label}="${v}"}`, value: Number(value) };
    });
}

describe('two replicas as Prometheus sees them', () => {
  it.skipIf(!havePromtool)('only the leader exports what the last run read: through a failover the dashboard counts each session once (skipped without promtool)', async () => {
    const tag = unique('t-gauges');
    for (let i = 0; i < 3; i++) await s.session({ user: app, application: `${tag}-${i}` });
    const { a, b, proxy } = await twoReplicas(tag);
    const minute0: Scrape[] = [
      { instance: 'a:9188', body: (await scrape(a))! },
      { instance: 'b:9188', body: (await scrape(b))! },
    ];
    expect(lastRunSeries(minute0[0]!.body).length).toBeGreaterThan(10);
    expect(lastRunSeries(minute0[1]!.body)).toEqual([]);

    // failover: a loses its connection (the lock with it), b takes over; a lives on, its runs
    // failing, then standing by once it reaches the server again
    await proxy.down();
    await until('b leads', async () => (await leaderOf(b)) === 1);
    await until('a has noticed', async () => (await leaderOf(a)) === 0);
    const failing = (await scrape(a))!;
    await proxy.up();
    await until('a stands by', async () => {
      const before = sample(failing, 'pg_reaper_runs_total{target="main",result="standby"}') ?? 0;
      return (sample(await scrape(a), 'pg_reaper_runs_total{target="main",result="standby"}') ?? 0) > before;
    });
    const minute1: Scrape[] = [
      { instance: 'a:9188', body: (await scrape(a))! },
      { instance: 'b:9188', body: (await scrape(b))! },
    ];
    const leader = minute1[1]!.body;

    // the shipped dashboard's expressions over both replicas give the leader's values alone
    const sessions = samplesOf(leader, 'pg_reaper_sessions', 'state');
    expect(sessions.find((x) => x.labels === '{state="idle"}')!.value).toBeGreaterThanOrEqual(3);
    const connections = sample(leader, 'pg_reaper_connections{target="main"}')! / sample(leader, 'pg_reaper_max_connections{target="main"}')!;
    const r = checkPromql(
      [minute0, minute1],
      [
        { expr: dashboardExpr('Client sessions by state'), evalMinute: 1, samples: sessions },
        { expr: dashboardExpr('Oldest session per state'), evalMinute: 1, samples: samplesOf(leader, 'pg_reaper_max_state_age_seconds', 'state') },
        { expr: dashboardExpr('Sessions waiting on a lock'), evalMinute: 1, samples: [{ labels: '{target="main"}', value: sample(leader, 'pg_reaper_blocked_sessions{target="main"}')! }] },
        { expr: dashboardExpr('Connection use (client connections / client slots)'), evalMinute: 1, samples: [{ labels: '{target="main"}', value: connections }] },
        { expr: dashboardExpr('Matched sessions by policy and reason (last run)'), evalMinute: 1, samples: samplesOf(leader, 'pg_reaper_matched_sessions', 'reason').map((x) => ({ ...x, labels: x.labels.replace('{', '{policy="idle",') })) },
        { expr: dashboardExpr('Leader per target (replicas acting)'), evalMinute: 1, samples: [{ labels: '{target="main"}', value: 1 }] },
        { expr: dashboardExpr('Leader per target (replicas acting)'), evalMinute: 0, samples: [{ labels: '{target="main"}', value: 1 }] },
      ],
    );
    expect(r.output).toContain('SUCCESS');
    expect(lastRunSeries(failing)).toEqual([]);
    expect(lastRunSeries(minute1[0]!.body)).toEqual([]);
    expect(lastRunSeries(minute1[1]!.body).length).toBeGreaterThan(10);
  }, 60_000);

  it('a holder cut off by a partition (no FIN) reports leader 0 once its lease has run out, before another replica can take the lock', async () => {
    const tag = unique('t-lease');
    const { a, b, proxy } = await twoReplicas(tag);
    const held = await holderPid();
    expect(held).toBeDefined();
    const windowMs = leaseWindowMs(6000);
    const samples: { at: number; a?: number; b?: number }[] = [];
    const t0 = Date.now();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const [la, lb] = await Promise.all([leaderOf(a, 'main'), leaderOf(b, 'main')]);
        samples.push({ at: Date.now() - t0, ...(la === undefined ? {} : { a: la }), ...(lb === undefined ? {} : { b: lb }) });
        await sleep(100);
      }
    })();

    // packets dropped both ways: a's run hangs on its snapshot (queryTimeout is 30 s)
    proxy.partition();
    const partitionedAt = Date.now() - t0;
    // the server ends a's session when its keepalives fail, at the soonest after the window
    // they give; here it is ended then from outside (the proxy keeps the server's side alive)
    await sleep(windowMs + 300);
    await s.admin.query('SELECT pg_terminate_backend($1)', [held]);
    const endedAt = Date.now() - t0;
    await until('b takes over', async () => (await leaderOf(b)) === 1);
    await sleep(3000);
    sampling = false;
    await sampler;

    const answered = samples.filter((x) => x.a !== undefined && x.b !== undefined);
    // a's /metrics answers while its run hangs
    expect(answered.filter((x) => x.at > partitionedAt).length).toBeGreaterThan(20);
    // never two leaders; a is 0 from the end of its lease on, b is 1 at the end
    expect(answered.filter((x) => x.a === 1 && x.b === 1)).toEqual([]);
    expect(answered.filter((x) => x.at > partitionedAt + windowMs + 200 && x.a !== 0)).toEqual([]);
    expect(answered.filter((x) => x.at < partitionedAt).every((x) => x.a === 1 && x.b === 0)).toBe(true);
    expect(answered.at(-1)).toMatchObject({ a: 0, b: 1 });
    expect(answered.some((x) => x.at > endedAt && x.b === 1)).toBe(true);
  }, 60_000);
});
