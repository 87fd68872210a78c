import { execSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';

// Every benchmark writes bench/results/<name>.json: the command, the machine, the figures.

export const RESULTS_DIR = join(import.meta.dirname, '../../../bench/results');

export function machine(): Record<string, unknown> {
  let kernel = '';
  try {
    kernel = execSync('uname -sr', { encoding: 'utf8' }).trim();
  } catch {
    // not on a Unix
  }
  return { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version, kernel };
}

export function writeResult(name: string, command: string, body: Record<string, unknown>): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${name}.json`);
  writeFileSync(file, JSON.stringify({ name, command, date: new Date().toISOString(), machine: machine(), ...body }, null, 2) + '\n');
  return file;
}

export const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);
