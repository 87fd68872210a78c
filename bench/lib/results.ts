import { execSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { buildId, type BuildId } from './build.js';
import { options } from './options.js';
import type { Check } from './verdict.js';

// Every benchmark writes <out>/<name>.json: the command that ran, the run it belongs to, the build
// it measured, the machine, the effective settings, the figures and the verdict of every goal.

export interface RunInfo {
  /** One id per invocation of dist/bench/run.js: parts of one run share it. */
  id: string;
  startedAt: string;
  command: string;
  parts: string[];
  quick: boolean;
}

let run: RunInfo | undefined;
let build: BuildId | undefined;

export function startRun(parts: string[]): RunInfo {
  const o = options();
  const startedAt = new Date().toISOString();
  run = { id: `${startedAt}-${process.pid}`, startedAt, command: o.command, parts, quick: o.quick };
  build = buildId();
  return run;
}

export const thisBuild = (): BuildId => (build ??= buildId());

export function machine(): Record<string, unknown> {
  let kernel = '';
  try {
    kernel = execSync('uname -sr', { encoding: 'utf8' }).trim();
  } catch {
    // not on a Unix
  }
  return { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version, kernel };
}

export interface PartResult extends Record<string, unknown> {
  /** What the part measured, in one paragraph: what each side of every comparison does. */
  describes: string;
  settings: Record<string, unknown>;
  checks: Check[];
}

export function writeResult(name: string, startedAtMs: number, body: PartResult): string {
  if (!run) throw new Error('startRun() first');
  const o = options();
  mkdirSync(o.out, { recursive: true });
  const file = join(o.out, `${name}.json`);
  const elapsedSeconds = Math.round((Date.now() - startedAtMs) / 100) / 10;
  writeFileSync(file, JSON.stringify({ name, command: run.command, run, build: thisBuild(), date: new Date().toISOString(), elapsedSeconds, machine: machine(), ...body }, null, 2) + '\n');
  return file;
}

export const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);
