import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { baseline } from './lib/baseline.js';
import { CLI, nodeFlags } from './lib/daemon-process.js';
import { nodes } from './lib/nodes.js';
import { settings } from './lib/options.js';
import { log, thisBuild, writeResult, type PartResult } from './lib/results.js';
import { startBenchServer } from './lib/server.js';
import { pairedRatio, round, summarize } from './lib/stats.js';
import { check, type Check } from './lib/verdict.js';

// 8. Start-up: `pg-reaper once` with one target and nothing to do, from spawn to exit and to its
// first query (the first Query or Parse message seen by a proxy in front of the server), and
// `pg-reaper check`, each beside a bare `node -e 0`, alternating, on Node 20 and Node 24; with
// --baseline another build beside this one. Ratios are the medians of each repetition's pair.

export const SETTINGS = { reps: 15 };
const QUICK = { reps: 3 };

/** A proxy that notes when a client sends its first query after the startup exchange. */
async function queryWatcher(toPort: number): Promise<{ port: number; firstQueryAt: () => number | undefined; reset(): void; close(): void }> {
  let first: number | undefined;
  const server = createServer((client) => {
    const upstream = createConnection(toPort, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let started = false;
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk);
      if (first !== undefined) return;
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (!started) {
          // untyped messages: SSLRequest / GSSENCRequest, then the StartupMessage
          if (buf.length < 8) break;
          const len = buf.readInt32BE(0);
          if (buf.length < len) break;
          const code = buf.readInt32BE(4);
          if (code === 196608) started = true;
          buf = buf.subarray(len);
          continue;
        }
        if (buf.length < 5) break;
        const type = String.fromCharCode(buf[0]!);
        if (type === 'Q' || type === 'P') {
          first = performance.now();
          break;
        }
        const len = buf.readInt32BE(1);
        if (buf.length < len + 1) break;
        buf = buf.subarray(len + 1);
      }
    });
    upstream.on('data', (d) => client.write(d));
    for (const s of [client, upstream]) s.on('error', () => undefined).on('close', () => (s === client ? upstream : client).destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, firstQueryAt: () => first, reset: () => (first = undefined), close: () => server.close() };
}

function timed(node: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ exitMs: number; startedAt: number; code: number | null }> {
  const startedAt = performance.now();
  const child = spawn(node, args, { env, stdio: ['ignore', 'ignore', 'ignore'] });
  return new Promise((resolve) => child.once('exit', (code) => resolve({ exitMs: performance.now() - startedAt, startedAt, code })));
}

export async function benchStartup(): Promise<Record<string, unknown>> {
  const t0 = Date.now();
  const s = settings('startup', SETTINGS, QUICK);
  const server = await startBenchServer(50);
  const watcher = await queryWatcher(server.port);
  const dir = mkdtempSync(join(tmpdir(), 'pg-reaper-bench-'));
  try {
    const url = new URL(server.reaperUrl);
    url.port = String(watcher.port);
    const file = join(dir, 'config.yaml');
    writeFileSync(file, `targets: [{ name: main, connectionString: "${url}" }]\npolicies: [{ name: idle, maxIdle: 1h }]\n`);
    const base = baseline();
    const builds = [{ label: 'this', cli: CLI }, ...(base ? [{ label: 'baseline', cli: base.cli }] : [])];
    // the compile cache (Node 22.1+) is where the program keeps it: beside the bundle, warm after
    // the first start, as for an installed package or the image
    const env = { ...process.env, NODE_COMPILE_CACHE: undefined } as NodeJS.ProcessEnv;
    // one round trip: the floor a query adds to a run
    const c = new pg.Client(server.reaperUrl);
    await c.connect();
    const rtt: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      await c.query('SELECT 1');
      rtt.push(performance.now() - t);
    }
    await c.end();
    const roundTripMs = summarize(rtt).median;
    const byNode: Record<string, unknown>[] = [];
    const checks: Check[] = [];
    const changes: Record<string, unknown>[] = [];
    for (const { path: node, version } of nodes()) {
      const major = version.slice(1).split('.')[0]!;
      const bare: number[] = [];
      const m = builds.map(() => ({ once: [] as number[], firstQuery: [] as number[], check: [] as number[] }));
      // warm-up: fill the compile cache and the page cache, untimed
      for (const b of builds) {
        await timed(node, [...nodeFlags(b.cli), b.cli, 'once', '-c', file], env);
        await timed(node, [...nodeFlags(b.cli), b.cli, 'check', '-c', file], env);
      }
      await timed(node, ['-e', '0'], env);
      for (let rep = 0; rep < s.reps; rep++) {
        bare.push((await timed(node, ['-e', '0'], env)).exitMs);
        for (const [i, b] of builds.entries()) {
          watcher.reset();
          const once = await timed(node, [...nodeFlags(b.cli), b.cli, 'once', '-c', file], env);
          if (once.code !== 0) throw new Error(`${b.label} on ${version}: once exited ${once.code}`);
          m[i]!.once.push(once.exitMs);
          m[i]!.firstQuery.push(watcher.firstQueryAt()! - once.startedAt);
          const chk = await timed(node, [...nodeFlags(b.cli), b.cli, 'check', '-c', file], env);
          if (chk.code !== 0) throw new Error(`${b.label} on ${version}: check exited ${chk.code}`);
          m[i]!.check.push(chk.exitMs);
        }
      }
      const results = builds.map((b, i) => {
        const x = m[i]!;
        const r = {
          build: b.label,
          onceMs: summarize(x.once),
          onceFirstQueryMs: summarize(x.firstQuery),
          checkMs: summarize(x.check),
          onceRatio: pairedRatio(x.once, bare.map((e) => e + roundTripMs)),
          checkRatio: pairedRatio(x.check, bare),
        };
        log(`startup ${version} ${b.label}: once ${round(r.onceMs.median)} ms (first query at ${round(r.onceFirstQueryMs.median)} ms), check ${round(r.checkMs.median)} ms; node -e 0 ${round(summarize(bare).median)} ms`);
        return r;
      });
      byNode.push({ node: version, nodeEMs: summarize(bare), builds: results });
      const ours = results[0]!;
      if (major === '20') checks.push(check(`Node ${major}: once, spawn to first query (median)`, ours.onceFirstQueryMs.median, '<=', 120, 'ms', 'issue 10'));
      checks.push(check(`Node ${major}: once, spawn to exit (median)`, ours.onceMs.median, '<=', 120, 'ms', 'issue 19'));
      checks.push(check(`Node ${major}: once ÷ (node -e 0 + one round trip), median of paired ratios`, ours.onceRatio.median, '<=', 1.6, '×', 'issue 10'));
      checks.push(check(`Node ${major}: check ÷ node -e 0, median of paired ratios`, ours.checkRatio.median, '<=', 1.5, '×', 'issue 10'));
      const before = results.find((r) => r.build === 'baseline');
      if (before) {
        changes.push(
          { figure: `startup ${version}: once, spawn to exit (median)`, before: round(before.onceMs.median, 1), after: round(ours.onceMs.median, 1), unit: 'ms' },
          { figure: `startup ${version}: check, spawn to exit (median)`, before: round(before.checkMs.median, 1), after: round(ours.checkMs.median, 1), unit: 'ms' },
        );
      }
    }
    const result: PartResult = {
      describes:
        `${s.reps} alternating repetitions per Node, after one untimed warm-up of each command (the compile cache, where Node has it, is then warm, as for an installed package). ` +
        '`once`: `pg-reaper once -c config.yaml`, one target and nothing to do, from spawn to exit and from spawn to its first query (the first Query or Parse message seen by a proxy in front of the server). ' +
        '`check`: `pg-reaper check -c config.yaml`, spawn to exit. Both with the flags of the shebang. Beside them `node -e 0`, and one round trip (`SELECT 1` on an open connection).' +
        (base ? ` The baseline build (${base.build.label}) alternates with this one.` : ''),
      settings: s,
      postgres: server.version,
      reps: s.reps,
      roundTripMs: round(roundTripMs, 3),
      byNode,
      ...(base ? { baselineBuild: base.build } : {}),
      thisBuild: thisBuild().label,
      changes,
      checks,
    };
    writeResult('startup', t0, result);
    return result;
  } finally {
    watcher.close();
    rmSync(dir, { recursive: true, force: true });
    await server.stop();
  }
}
