import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The version in package.json, found by walking up from this file (src/ in tests, dist/src/ built).
function readVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'pg-reaper' && pkg.version) return pkg.version;
    } catch {
      // not here: go up
    }
    dir = dirname(dir);
  }
  return '0.0.0-unknown';
}

// The bundle has it written in at build time (scripts/bundle.mjs): no file walk, and no failed
// reads of package.json files that are not there, at every start.
declare const PG_REAPER_BUNDLED_VERSION: string | undefined;
export const VERSION = typeof PG_REAPER_BUNDLED_VERSION === 'string' ? PG_REAPER_BUNDLED_VERSION : readVersion();
