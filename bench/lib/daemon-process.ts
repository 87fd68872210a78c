import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// `pg-reaper run` as a child process, as deployed: its JSON log lines, its /proc figures.

// the program as shipped (the bundle), from dist/bench/lib/
const CLI = join(import.meta.dirname, '../../pg-reaper/cli.js');

export interface DaemonProcess {
  child: ChildProcess;
  pid: number;
  lines: Record<string, unknown>[];
  waitFor(pred: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(): Promise<number | null>;
}

/** `cli`: another build's dist/pg-reaper/cli.js (a baseline to compare against); default this one. */
export async function startDaemonProcess(configYaml: string, node = process.execPath, cli = CLI): Promise<DaemonProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'pg-reaper-bench-'));
  const file = join(dir, 'config.yaml');
  writeFileSync(file, configYaml);
  const child = spawn(node, [...nodeFlags(), cli, 'run', '-c', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: Record<string, unknown>[] = [];
  let buffer = '';
  const listeners = new Set<() => void>();
  child.stdout!.on('data', (d: Buffer) => {
    buffer += d.toString();
    const parts = buffer.split('\n');
    buffer = parts.pop()!;
    for (const p of parts) if (p) lines.push(JSON.parse(p) as Record<string, unknown>);
    for (const l of listeners) l();
  });
  const waitFor = (pred: (line: Record<string, unknown>) => boolean, timeoutMs = 30_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const check = () => {
        const hit = lines.find(pred);
        if (hit) {
          listeners.delete(check);
          clearTimeout(timer);
          resolve(hit);
        }
      };
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error('timed out waiting for a log line'));
      }, timeoutMs);
      listeners.add(check);
      check();
    });
  await waitFor((l) => String(l.msg).startsWith('pg-reaper started'));
  return {
    child,
    pid: child.pid!,
    lines,
    waitFor,
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', (code) => {
          rmSync(dir, { recursive: true, force: true });
          resolve(code);
        });
        child.kill('SIGTERM');
      }),
  };
}

/** The Node flags on the CLI's shebang line: the benchmark runs the daemon as it is deployed. */
export function nodeFlags(): string[] {
  const first = readFileSync(CLI, 'utf8').split('\n', 1)[0]!;
  const m = /^#!\/usr\/bin\/env -S node (.*)$/.exec(first);
  return m ? m[1]!.trim().split(/\s+/) : [];
}

/** Resident memory in bytes from /proc: all of it, the private (anonymous) part, and the file-backed part (mostly the node binary's pages, shared and reclaimable). */
export function rssBytes(pid: number): { rss: number; anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
}

/** CPU seconds used so far (user + system), from /proc. */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // fields here start at state (field 3): utime is field 14, stime 15
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
