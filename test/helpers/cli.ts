import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';

// The built CLI as an operator runs it: its own process, its output collected, its exit code.

export const CLI = join(import.meta.dirname, '../../dist/pg-reaper/cli.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Variables added to this process's; one set to undefined is removed. */
  env?: Record<string, string | undefined>;
  cwd?: string;
}

/** Starts the CLI: the child, its output so far, and its exit with everything it wrote. */
export function startCli(args: string[], opts: CliOptions = {}): { child: ChildProcess; out: () => string; err: () => string; exit: Promise<CliResult> } {
  const env = opts.env ?? {};
  const merged: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete merged[k];
  const child = spawn(process.execPath, [CLI, ...args], { env: merged, stdio: ['ignore', 'pipe', 'pipe'], ...(opts.cwd ? { cwd: opts.cwd } : {}) });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = once(child, 'exit').then(([code]) => ({ code: code as number | null, stdout, stderr }));
  return { child, out: () => stdout, err: () => stderr, exit };
}

/** Runs the CLI to its exit. */
export const runCli = (args: string[], opts?: CliOptions): Promise<CliResult> => startCli(args, opts).exit;
