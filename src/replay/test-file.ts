import { dirname, relative, resolve } from 'node:path';
import { z } from 'zod';
import { describeIssue, loadConfigFile, locateIssues, parseYamlSource, readText, type ConfigProblem, type Issue } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { REASONS } from '../reasons/table.js';
import { compilePolicies } from '../policy/compile.js';
import { OFFLINE_OUTCOMES } from '../run/outcome.js';
import { pid, serverFacts, serverFactsSchema, sessionSchema, type ServerFacts, type SessionFormat } from './session-format.js';
import { loadSessionsFile, type SessionsFile } from './snapshot-file.js';

// A policy test file (`pg-reaper test FILE...`): a config, and tests that each list sessions
// (inline, from a snapshot file, or both), optional server facts, and the outcome expected for
// each pid. Loading checks everything a test could get wrong before any test runs, and reports
// every problem at once as FILE:LINE:COL, like a config.

export const ACTIONS = ['terminate', 'cancel', 'none'] as const;

const expectation = z.strictObject({
  pid,
  action: z.enum(ACTIONS),
  policy: z.string().min(1).optional(),
  reason: z.enum(REASONS).optional(),
  outcome: z.enum(OFFLINE_OUTCOMES).optional(),
});

const testCase = z.strictObject({
  name: z.string().min(1),
  target: z.string().min(1).optional(),
  server: serverFactsSchema.optional(),
  sessions: z.array(sessionSchema).optional(),
  sessionsFrom: z.string().min(1).optional(),
  expect: z.array(expectation),
  others: z.enum(['none', 'any']).optional(),
});

export const testFileSchema = z.strictObject({
  config: z.string().min(1),
  tests: z.array(testCase).min(1),
});

export const TEST_FILE_DESCRIPTIONS: Record<string, string> = {
  config: "The config file whose policies are tested, relative to this file. Its targets' connection settings are not read.",
  tests: 'The tests, run in order.',
  'tests[].name': 'What the test shows; printed with ok or FAIL.',
  'tests[].target': 'The target whose policies judge the sessions; optional when the config has one target.',
  'tests[].server': 'Facts about the server and the reaper; key by key over those of sessionsFrom, else the defaults.',
  'tests[].sessions': 'The client sessions on the server (but the reaper\'s own), ages before the test\'s clock.',
  'tests[].sessionsFrom': 'A snapshot file (pg-reaper snapshot -o FILE), relative to this file: its sessions, besides those of sessions.',
  'tests[].expect': 'The outcome expected for each pid; a session not listed must get none, unless others is any.',
  'tests[].expect[].pid': 'A pid of the test\'s sessions.',
  'tests[].expect[].action': 'terminate, cancel, or none (no policy acts on it, or it is held by when).',
  'tests[].expect[].policy': 'The policy that decides it (with terminate or cancel).',
  'tests[].expect[].reason': `The reason it is decided for: ${REASONS.join(', ')}.`,
  'tests[].expect[].outcome': `As a dry run judges it: ${OFFLINE_OUTCOMES.join(', ')} (skipped_cap: over maxActionsPerRun; skipped_budget: over a budget, counted from a daemon that just started; denied: the reaper may not signal it).`,
  'tests[].others': 'none (default): every session not listed in expect must get none; any: they may get anything.',
};

export interface Expectation {
  pid: number;
  action: (typeof ACTIONS)[number];
  policy?: string | undefined;
  reason?: string | undefined;
  outcome?: string | undefined;
}

export interface PolicyTest {
  name: string;
  target: string;
  server: ServerFacts;
  sessions: SessionFormat[];
  expect: Expectation[];
  /** Sessions not listed in expect may get anything. */
  othersAny: boolean;
}

export interface TestSuite {
  file: string;
  config: Config;
  tests: PolicyTest[];
}

export type LoadedSuite = { ok: true; suite: TestSuite } | { ok: false; problems: ConfigProblem[] };

export function loadTestFile(file: string): LoadedSuite {
  const read = readText(file, 'the path of a policy test file');
  if ('problem' in read) return { ok: false, problems: [read.problem] };
  const { source, problems } = parseYamlSource(read.text, file);
  if (problems.length) return { ok: false, problems };
  const raw: unknown = source.doc.toJS() ?? {};
  const outer = testFileSchema.extend({ tests: z.array(z.unknown()).min(1) }).safeParse(raw, { error: describeIssue });
  if (!outer.success) return { ok: false, problems: locateIssues(source, outer.error.issues) };
  const dir = dirname(resolve(file));

  const configFile = relativeTo(file, outer.data.config);
  const loaded = loadConfigFile(configFile, process.env, { offline: true });
  if (!loaded.ok) {
    // a config that cannot be read is reported where the test file names it
    const unread = loaded.problems.find((p) => p.line === 0);
    if (unread) return { ok: false, problems: locateIssues(source, [{ path: ['config'], message: `${outer.data.config}: ${unread.message.replace(/ \(pass -c .*\)$/, '')}` }]) };
    return { ok: false, problems: loaded.problems };
  }
  const config = loaded.config;

  const issues: Issue[] = [];
  const fileProblems: ConfigProblem[] = [];
  const snapshots = new Map<string, SessionsFile | undefined>();
  const tests: PolicyTest[] = [];
  // each test, and each of its sessions and expectations, on its own: one malformed entry does
  // not hide the problems of the others
  const each = <T>(schema: z.ZodType<T>, input: unknown, path: PropertyKey[]): T | undefined => {
    const r = schema.safeParse(input, { error: describeIssue });
    if (!r.success) issues.push(...r.error.issues.map((x) => ({ ...x, path: [...path, ...x.path] })));
    return r.success ? r.data : undefined;
  };
  /** The entries that are valid, with their index; complete when all are. */
  const list = <T>(schema: z.ZodType<T>, input: unknown[] | undefined, path: PropertyKey[]) => {
    const parsed = (input ?? []).map((x, j) => [each(schema, x, [...path, j]), j] as const);
    return { items: parsed.filter((x): x is readonly [T, number] => x[0] !== undefined), complete: parsed.every((x) => x[0] !== undefined) };
  };
  const shape = testCase.extend({ sessions: z.array(z.unknown()).optional(), expect: z.array(z.unknown()) });
  const targets = config.targets.map((x) => x.name);

  outer.data.tests.forEach((input, i) => {
    const t = each(shape, input, ['tests', i]);
    if (t === undefined) return;
    const at = (...path: PropertyKey[]) => ['tests', i, ...path];
    const inline = list(sessionSchema, t.sessions, at('sessions'));
    const expects = list(expectation, t.expect, at('expect'));

    let target = t.target ?? (targets.length === 1 ? targets[0] : undefined);
    if (target === undefined) issues.push({ path: at('target'), message: `required: the config has ${targets.length} targets (${targets.join(', ')})` });
    else if (!targets.includes(target)) {
      issues.push({ path: at('target'), message: `unknown target "${target}"; the config's targets: ${targets.join(', ')}` });
      target = undefined;
    }

    // the sessions: those of the snapshot file, then those listed here
    if (t.sessions === undefined && t.sessionsFrom === undefined) issues.push({ path: at(), message: 'expected sessions, sessionsFrom, or both' });
    let fromFile: SessionsFile | undefined;
    if (t.sessionsFrom !== undefined) {
      const path = resolve(dir, t.sessionsFrom);
      if (!snapshots.has(path)) {
        const r = loadSessionsFile(relativeTo(file, t.sessionsFrom));
        snapshots.set(path, r.ok ? r.value : undefined);
        // a file that cannot be read is reported where the test names it
        for (const p of r.ok ? [] : r.problems) {
          if (p.line === 0) issues.push({ path: at('sessionsFrom'), message: `${t.sessionsFrom}: ${p.message}` });
          else fileProblems.push(p);
        }
      }
      fromFile = snapshots.get(path);
    }
    const filePids = new Set(fromFile?.sessions.map((s) => s.pid));
    const seen = new Set<number>();
    for (const [s, j] of inline.items) {
      if (filePids.has(s.pid)) issues.push({ path: at('sessions', j, 'pid'), message: `pid ${s.pid} is also in sessionsFrom ${t.sessionsFrom}` });
      else if (seen.has(s.pid)) issues.push({ path: at('sessions', j, 'pid'), message: `pid ${s.pid} is listed twice` });
      seen.add(s.pid);
    }
    const sessions = [...(fromFile?.sessions ?? []), ...inline.items.map(([s]) => s)];
    const pids = new Set(sessions.map((s) => s.pid));
    // a pid can only be said to be missing when every session is known
    const allKnown = inline.complete && (t.sessionsFrom === undefined || fromFile !== undefined);

    const policies = target !== undefined ? compilePolicies(config, target).map((p) => p.name) : undefined;
    const expected = new Set<number>();
    for (const [e, j] of expects.items) {
      if (expected.has(e.pid)) issues.push({ path: at('expect', j, 'pid'), message: `pid ${e.pid} is expected twice` });
      expected.add(e.pid);
      if (allKnown && !pids.has(e.pid)) issues.push({ path: at('expect', j, 'pid'), message: `pid ${e.pid} is not among the test's sessions` });
      if (e.action === 'none') {
        for (const key of ['policy', 'reason', 'outcome'] as const) {
          if (e[key] !== undefined) issues.push({ path: at('expect', j, key), message: `${key} goes with action terminate or cancel: no policy decides a session whose action is none` });
        }
        continue;
      }
      if (e.policy !== undefined && policies && !policies.includes(e.policy)) {
        issues.push({ path: at('expect', j, 'policy'), message: `unknown policy "${e.policy}"; the policies of target ${target}: ${policies.join(', ') || '(none)'}` });
      }
      const wouldBe = e.outcome === 'would_terminate' ? 'terminate' : e.outcome === 'would_cancel' ? 'cancel' : undefined;
      if (wouldBe !== undefined && wouldBe !== e.action) issues.push({ path: at('expect', j, 'outcome'), message: `outcome ${e.outcome} goes with action ${wouldBe}, not ${e.action}` });
    }

    if (target !== undefined) {
      tests.push({ name: t.name, target, server: serverFacts(t.server, fromFile?.server), sessions, expect: expects.items.map(([e]) => e), othersAny: t.others === 'any' });
    }
  });
  const all = [...locateIssues(source, issues), ...fileProblems];
  if (all.length) return { ok: false, problems: all };
  return { ok: true, suite: { file, config, tests } };
}

/** A path written in the test file, relative to it, as the user would type it from here. */
function relativeTo(file: string, path: string): string {
  const abs = resolve(dirname(resolve(file)), path);
  const rel = relative(process.cwd(), abs);
  return rel.startsWith('..') || rel === '' ? abs : rel;
}
