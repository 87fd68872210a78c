import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { REPO } from './options.js';

// Which build a figure belongs to: the git commit, whether the work tree differed from it (and a
// hash of that difference, so two different dirty trees are two builds), and a hash of the
// program that was measured (the bundle, and the tsc output the in-process parts import). Every
// result file carries it; the report flags a section whose build is not the others'.

export interface BuildId {
  commit: string;
  dirty: boolean;
  /** sha256 of `git diff HEAD` plus untracked files, when dirty. */
  diff?: string;
  /** sha256 over dist/pg-reaper and dist/src, the code that ran. */
  program: string;
  /** A short label: commit, with "+dirty:<diff>" when dirty. */
  label: string;
}

// outputs of the benchmarks themselves do not make a tree dirty
const NOT_SOURCE = [':(exclude)bench/results', ':(exclude)BENCHMARKS.md'];

const git = (dir: string, args: string[]) => execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8', maxBuffer: 256 * 2 ** 20, stdio: ['ignore', 'pipe', 'pipe'] });

function hashTree(dirs: string[]): string {
  const h = createHash('sha256');
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (name === '.compile-cache') continue;
      if (statSync(p).isDirectory()) walk(p);
      else h.update(relative(dirs[0]!, p)).update('\0').update(readFileSync(p)).update('\0');
    }
  };
  for (const d of dirs) if (existsSync(d)) walk(d);
  return h.digest('hex').slice(0, 16);
}

/** The build in `root` (default this checkout), whose program is `programDirs` under it. */
export function buildId(root = REPO, programDirs = ['dist/pg-reaper', 'dist/src']): BuildId {
  const program = hashTree(programDirs.map((d) => join(root, d)));
  let commit = 'unknown';
  let dirty = false;
  let diff: string | undefined;
  try {
    commit = git(root, ['rev-parse', 'HEAD']).trim();
    const status = git(root, ['status', '--porcelain', '--', '.', ...NOT_SOURCE]);
    dirty = status.trim() !== '';
    if (dirty) {
      const h = createHash('sha256').update(git(root, ['diff', 'HEAD', '--', '.', ...NOT_SOURCE]));
      for (const line of status.split('\n').filter((l) => l.startsWith('??'))) {
        const p = join(root, line.slice(3));
        if (existsSync(p) && statSync(p).isFile()) h.update(p).update(readFileSync(p));
      }
      diff = h.digest('hex').slice(0, 12);
    }
  } catch {
    // not a git checkout (an unpacked baseline has its commit passed in)
  }
  return { commit, dirty, ...(diff ? { diff } : {}), program, label: `${commit.slice(0, 12)}${dirty ? `+dirty:${diff}` : ''}` };
}

/** Two result files are of one build when commit, dirty state and program agree. */
export const sameBuild = (a: BuildId | undefined, b: BuildId | undefined) =>
  !!a && !!b && a.commit === b.commit && a.dirty === b.dirty && a.diff === b.diff && a.program === b.program;
