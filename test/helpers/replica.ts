import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

// A real `pg-reaper run` process, as one replica of a Deployment runs: its JSON log lines, its
// HTTP port (from its start line) and its metrics.

const CLI = join(import.meta.dirname, '../../dist/pg-reaper/cli.js');

export interface Replica {
  name: string;
  child: ChildProcess;
  lines: Record<string, unknown>[];
  port: number;
  exit: Promise<number | null>;
}

export async function startReplica(name: string, file: string, env: Record<string, string>): Promise<Replica> {
  const child = spawn(process.execPath, [CLI, 'run', '-c', file], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: Record<string, unknown>[] = [];
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    const parts = (partial + d.toString()).split('\n');
    partial = parts.pop()!;
    for (const p of parts) if (p) lines.push(JSON.parse(p) as Record<string, unknown>);
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 15_000;
  while (!lines.some((l) => l.msg?.toString().startsWith('pg-reaper started'))) {
    if (Date.now() > deadline) throw new Error(`${name} did not start`);
    await sleep(20);
  }
  const port = lines.find((l) => l.msg?.toString().startsWith('pg-reaper started'))!.port as number;
  return { name, child, lines, port, exit };
}

/** The replica's /metrics body, or undefined when it does not answer within `timeoutMs`. */
export async function scrape(r: Replica, timeoutMs = 500): Promise<string | undefined> {
  try {
    return await (await fetch(`http://127.0.0.1:${r.port}/metrics`, { signal: AbortSignal.timeout(timeoutMs) })).text();
  } catch {
    return undefined;
  }
}

/** One sample's value from a scrape body, e.g. sample(body, 'pg_reaper_leader{target="main"}'). */
export function sample(body: string | undefined, series: string): number | undefined {
  const line = body?.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** pg_reaper_leader{target} of a replica, or undefined when it does not answer. */
export async function leaderOf(r: Replica, target = 'main'): Promise<number | undefined> {
  return sample(await scrape(r), `pg_reaper_leader{target="${target}"}`);
}

/** Waits (with a deadline) until `check` holds. */
export async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Ends a replica (SIGKILL when it does not stop on SIGTERM within a few seconds) and waits for it. */
export async function endReplica(r: Replica): Promise<void> {
  if (r.child.exitCode !== null || r.child.signalCode !== null) return;
  r.child.kill('SIGTERM');
  const timer = setTimeout(() => r.child.kill('SIGKILL'), 3000);
  await r.exit;
  clearTimeout(timer);
}
