import { formatProblem } from '../config/load.js';
import { describeExpected, describeGot, runPolicyTest, type TestResult } from '../replay/policy-test.js';
import { loadTestFile } from '../replay/test-file.js';
import { plural } from '../util/plural.js';

// `pg-reaper test FILE...`: policy unit tests, reported as promtool reports rule tests: per file,
// one line per test (ok or FAIL, with what differs pid by pid), then a summary line. Exit 0
// when every test passed, 1 when one failed, 2 when a file (or its config or snapshot) is
// malformed: those are reported as FILE:LINE:COL on stderr and their tests are not run.

export const TEST_EXIT = { passed: 0, failed: 1, malformed: 2 } as const;

export interface Output {
  out: (text: string) => void;
  err: (text: string) => void;
}

export function runTestFiles(files: readonly string[], io: Output): number {
  let tests = 0;
  let failed = 0;
  let malformed = 0;
  for (const file of files) {
    const loaded = loadTestFile(file);
    if (!loaded.ok) {
      malformed++;
      for (const p of loaded.problems) io.err(formatProblem(p) + '\n');
      io.err(`${file}: ${plural(loaded.problems.length, 'problem')}, tests not run\n`);
      io.out(`${file}\n  NOT RUN  (${plural(loaded.problems.length, 'problem')}, on stderr)\n`);
      continue;
    }
    const { config, tests: cases } = loaded.suite;
    const results = cases.map((t) => runPolicyTest(t, config));
    tests += results.length;
    failed += results.filter((r) => r.mismatches.length).length;
    io.out(formatFile(file, results));
  }
  const notRun = malformed ? `; ${plural(malformed, 'file')} not run` : '';
  io.out(`${plural(tests, 'test')} in ${plural(files.length - malformed, 'file')}: ${tests - failed} passed, ${failed} failed${notRun}\n`);
  return malformed ? TEST_EXIT.malformed : failed ? TEST_EXIT.failed : TEST_EXIT.passed;
}

export function formatFile(file: string, results: readonly TestResult[]): string {
  const lines = [file];
  for (const r of results) {
    if (r.mismatches.length === 0) {
      lines.push(`  ok    ${r.name}`);
      continue;
    }
    lines.push(`  FAIL  ${r.name}`);
    for (const m of r.mismatches) {
      const pid = `pid ${m.pid}`;
      const pad = ' '.repeat(pid.length);
      lines.push(`        ${pid}  expected  ${describeExpected(m.expected)}`);
      lines.push(`        ${pad}  got       ${describeGot(m.got)}`);
      if (m.got.why !== undefined && m.expected !== undefined && m.expected.action !== 'none') lines.push(`        ${pad}  why not   ${m.got.why}`);
    }
  }
  return lines.join('\n') + '\n';
}
