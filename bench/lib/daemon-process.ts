import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';

// `pg-reaper run` as a child process, as deployed: its JSON log lines; /proc gives its figures.

// the program as shipped (the bundle), from dist/bench/lib/
export const CLI = join(import.meta.dirname, '../../pg-reaper/cli.js');

export interface DaemonProcess {
  child: ChildProcess;
  pid: number;
  lines: Record<string, unknown>[];
  /** Called with every log line as it arrives. */
  onLine(fn: (line: Record<string, unknown>) => void): void;
  waitFor(pred: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** The extra pipe on fd 3, when asked for (the soak's heap probe writes there). */
  fd3?: Readable;
  stop(): Promise<number | null>;
}

export interface DaemonOptions {
  node?: string;
  /** Another build's dist/pg-reaper/cli.js (a baseline to compare against); default this one. */
  cli?: string;
  /** Node flags before the program, after the shebang's. */
  nodeArgs?: string[];
  fd3?: boolean;
  /** Keep only the last N log lines (a soak logs for an hour). */
  keepLines?: number;
}

export async function startDaemonProcess(configYaml: string, o: DaemonOptions = {}): Promise<DaemonProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'pg-reaper-bench-'));
  const file = join(dir, 'config.yaml');
  writeFileSync(file, configYaml);
  const cli = o.cli ?? CLI;
  const child = spawn(o.node ?? process.execPath, [...nodeFlags(cli), ...(o.nodeArgs ?? []), cli, 'run', '-c', file], {
    stdio: ['ignore', 'pipe', 'inherit', ...(o.fd3 ? ['pipe' as const] : [])],
  });
  const lines: Record<string, unknown>[] = [];
  let buffer = '';
  const listeners = new Set<(line: Record<string, unknown>) => void>();
  child.stdout!.on('data', (d: Buffer) => {
    buffer += d.toString();
    const parts = buffer.split('\n');
    buffer = parts.pop()!;
    for (const p of parts) {
      if (!p) continue;
      const line = JSON.parse(p) as Record<string, unknown>;
      lines.push(line);
      if (o.keepLines && lines.length > o.keepLines) lines.splice(0, lines.length - o.keepLines);
      for (const l of listeners) l(line);
    }
  });
  const waitFor = (pred: (line: Record<string, unknown>) => boolean, timeoutMs = 30_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const hit = lines.find(pred);
      if (hit) return resolve(hit);
      const check = (line: Record<string, unknown>) => {
        if (!pred(line)) return;
        listeners.delete(check);
        clearTimeout(timer);
        resolve(line);
      };
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error('timed out waiting for a log line'));
      }, timeoutMs);
      listeners.add(check);
    });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await waitFor((l) => String(l.msg).startsWith('pg-reaper started'));
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    child,
    pid: child.pid!,
    lines,
    onLine: (fn) => void listeners.add(fn),
    waitFor,
    ...(o.fd3 ? { fd3: child.stdio[3] as Readable } : {}),
    stop: async () => {
      child.kill('SIGTERM');
      const code = await exited;
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

/** The Node flags on the CLI's shebang line: the benchmark runs the program as it is deployed. */
export function nodeFlags(cli = CLI): string[] {
  const first = readFileSync(cli, 'utf8').split('\n', 1)[0]!;
  const m = /^#!\/usr\/bin\/env -S node (.*)$/.exec(first);
  return m ? m[1]!.trim().split(/\s+/) : [];
}

export const isRunEnd = (l: Record<string, unknown>) => l.msg === 'run finished' || l.msg === 'run failed';
