import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { nodeFlags } from './lib/daemon-process.js';
import { log, writeResult } from './lib/results.js';
import { startBenchServer } from './lib/server.js';
import { round, summarize } from './lib/stats.js';

// 8. Start-up: `pg-reaper once` with one target and nothing to do, from spawn to exit and to its
// first query (the first Query or Parse message seen by a proxy in front of the server), and
// `pg-reaper check`, each against a bare `node -e 0`, alternating, BENCH_STARTUP_REPS times.
// BENCH_BASELINE_CLI adds another build (dist/pg-reaper/cli.js) to compare against.

const REPS = Number(process.env.BENCH_STARTUP_REPS ?? 15);
const CLI = join(import.meta.dirname, '../pg-reaper/cli.js');

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

function timed(args: string[], env: NodeJS.ProcessEnv): Promise<{ exitMs: number; startedAt: number; code: number | null }> {
  const startedAt = performance.now();
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'ignore'] });
  return new Promise((resolve) => child.once('exit', (code) => resolve({ exitMs: performance.now() - startedAt, startedAt, code })));
}

export async function benchStartup(): Promise<Record<string, unknown>> {
  const server = await startBenchServer(50);
  const watcher = await queryWatcher(server.port);
  const dir = mkdtempSync(join(tmpdir(), 'pg-reaper-bench-'));
  try {
    const url = new URL(server.reaperUrl);
    url.port = String(watcher.port);
    const file = join(dir, 'config.yaml');
    writeFileSync(file, `targets: [{ name: main, connectionString: "${url}" }]\npolicies: [{ name: idle, maxIdle: 1h }]\n`);
    const builds = [{ label: 'this build', cli: CLI }, ...(process.env.BENCH_BASELINE_CLI ? [{ label: 'baseline build', cli: process.env.BENCH_BASELINE_CLI }] : [])];
    const env = { ...process.env, NODE_COMPILE_CACHE: undefined } as NodeJS.ProcessEnv;
    const bare: number[] = [];
    const byBuild = builds.map(() => ({ once: [] as number[], firstQuery: [] as number[], check: [] as number[] }));
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
    for (let rep = 0; rep < REPS; rep++) {
      bare.push((await timed(['-e', '0'], env)).exitMs);
      for (const [i, b] of builds.entries()) {
        watcher.reset();
        const once = await timed([...nodeFlags(), b.cli, 'once', '-c', file], env);
        if (once.code !== 0) throw new Error(`${b.label}: once exited ${once.code}`);
        byBuild[i]!.once.push(once.exitMs);
        byBuild[i]!.firstQuery.push(watcher.firstQueryAt()! - once.startedAt);
        byBuild[i]!.check.push((await timed([...nodeFlags(), b.cli, 'check', '-c', file], env)).exitMs);
      }
    }
    const nodeMs = summarize(bare).median;
    const roundTripMs = summarize(rtt).median;
    const results = builds.map((b, i) => {
      const m = byBuild[i]!;
      const r = {
        build: b.label,
        onceMs: summarize(m.once),
        onceFirstQueryMs: summarize(m.firstQuery),
        checkMs: summarize(m.check),
        onceRatio: round(summarize(m.once).median / (nodeMs + roundTripMs), 2),
        checkRatio: round(summarize(m.check).median / nodeMs, 2),
      };
      log(`startup ${b.label}: once ${round(r.onceMs.median)} ms (first query at ${round(r.onceFirstQueryMs.median)} ms), check ${round(r.checkMs.median)} ms; node -e 0 ${round(nodeMs)} ms, round trip ${round(roundTripMs, 2)} ms`);
      return r;
    });
    const ours = results[0]!;
    const result = {
      postgres: server.version,
      node: execFileSync(process.execPath, ['--version'], { encoding: 'utf8' }).trim(),
      reps: REPS,
      nodeEMs: summarize(bare),
      roundTripMs: round(roundTripMs, 3),
      builds: results,
      goals: { firstQueryMs: 120, onceVsNodePlusRoundTrip: 1.6, checkVsNode: 1.5 },
      met: ours.onceFirstQueryMs.median <= 120 && ours.onceRatio <= 1.6 && ours.checkRatio <= 1.5,
    };
    writeResult('startup', 'npm run bench:startup', result);
    return result;
  } finally {
    watcher.close();
    rmSync(dir, { recursive: true, force: true });
    await server.stop();
  }
}
