import { execFileSync, execSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildId, type BuildId } from './build.js';
import { options, REPO } from './options.js';
import { log } from './results.js';

// The build to compare against, measured in the same run ("before" beside "after"): --baseline REF
// unpacks that commit (git archive) into a temp directory and builds it with this checkout's
// node_modules; --baseline-cli PATH takes a dist/pg-reaper/cli.js built elsewhere.

export interface Baseline {
  cli: string;
  build: BuildId;
}

let cached: Baseline | null | undefined;
let tmp: string | undefined;

export function baseline(): Baseline | undefined {
  if (cached !== undefined) return cached ?? undefined;
  const o = options();
  if (o.baselineCli) {
    const root = join(o.baselineCli, '../../..');
    cached = { cli: o.baselineCli, build: buildId(root, ['dist/pg-reaper']) };
  } else if (o.baseline) {
    const commit = execFileSync('git', ['-C', REPO, 'rev-parse', `${o.baseline}^{commit}`], { encoding: 'utf8' }).trim();
    tmp = mkdtempSync(join(tmpdir(), 'pg-reaper-baseline-'));
    log(`baseline: building ${o.baseline} (${commit.slice(0, 12)}) in ${tmp}`);
    try {
      execSync(`git -C ${JSON.stringify(REPO)} archive ${commit} | tar -x -C ${JSON.stringify(tmp)}`);
      symlinkSync(join(REPO, 'node_modules'), join(tmp, 'node_modules'));
      execFileSync('npm', ['run', 'build', '--silent'], { cwd: tmp, stdio: ['ignore', 'ignore', 'inherit'] });
    } catch (err) {
      removeBaseline();
      throw new Error(`could not build the baseline ${o.baseline}: ${(err as Error).message}`);
    }
    const b = buildId(tmp, ['dist/pg-reaper']);
    cached = { cli: join(tmp, 'dist/pg-reaper/cli.js'), build: { ...b, commit, dirty: false, label: commit.slice(0, 12) } };
  } else cached = null;
  return cached ?? undefined;
}

export function removeBaseline(): void {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  tmp = undefined;
}
