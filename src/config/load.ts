import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { redact } from '../util/errors.js';
import { substituteEnv } from './env.js';
import { referencedFileProblems } from './files.js';
import { configSchema, crossKeyIssues, show, type Config } from './schema.js';

// Reads a config file into a validated Config, or every problem in it at once, each as
// "FILE:LINE:COL PATH: message".

export interface ConfigProblem {
  file: string;
  line: number;
  col: number;
  path: string;
  message: string;
}

export type LoadResult = { ok: true; config: Config } | { ok: false; problems: ConfigProblem[] };

export class ConfigError extends Error {
  constructor(readonly problems: ConfigProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
  }
}

export function formatProblem(p: ConfigProblem): string {
  const where = p.line > 0 ? `${p.file}:${p.line}:${p.col}` : `${p.file}:`;
  return redact(`${where} ${p.path ? `${p.path}: ` : ''}${p.message}`);
}

export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env, opts: ParseOptions = {}): LoadResult {
  const read = readText(file, 'pass -c PATH or set PG_REAPER_CONFIG');
  if ('problem' in read) return { ok: false, problems: [read.problem] };
  // the files the config points at are read too, unless nothing will connect or listen
  return parseConfigText(read.text, file, env, { readFiles: !opts.offline, ...opts });
}

/** A file's text, or a problem that says why it cannot be read (with a hint for a missing file). */
export function readText(file: string, hint: string): { text: string } | { problem: ConfigProblem } {
  try {
    return { text: readFileSync(file, 'utf8') };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? `no such file (${hint})` : `cannot read it (${code ?? (err as Error).message})`;
    return { problem: { file, line: 0, col: 0, path: '', message: why } };
  }
}

export interface ParseOptions {
  /** Also read the files the config points at (passwordFile, http.webConfigFile): a missing or unreadable one is a problem. */
  readFiles?: boolean;
  /**
   * For the verbs that never connect (test, once --from): the targets' connection settings
   * (connection string, host, port, user, password, TLS, timeouts) and the ${VAR}s in them are not
   * read, so a CI job needs no secrets and a laptop no server. Names, schedules and policies are
   * checked as always.
   */
  offline?: boolean;
}

/** Keys of a target that say how to connect: not read offline. */
const CONNECTION_KEYS = new Set(['connectionString', 'host', 'port', 'user', 'password', 'passwordFile', 'database', 'ssl', 'connectTimeout', 'queryTimeout']);
const isConnectionPath = (path: readonly (string | number)[]) => path[0] === 'targets' && typeof path[1] === 'number' && CONNECTION_KEYS.has(String(path[2]));

export function parseConfigText(text: string, file: string, env: NodeJS.ProcessEnv = process.env, opts: ParseOptions = {}): LoadResult {
  const { source, problems } = parseYamlSource(text, file);
  if (problems.length) return { ok: false, problems };
  const { doc, at } = source;

  walkScalars(doc.contents, [], (node, path) => {
    if (typeof node.value !== 'string' || !node.value.includes('$')) return;
    if (opts.offline && isConnectionPath(path)) return;
    const { value, missing } = substituteEnv(node.value, env);
    node.value = value;
    const pos = at(node.range?.[0]);
    for (const name of missing) {
      problems.push({ file, line: pos.line, col: pos.col, path: formatPath(path), message: `environment variable ${name} is not set (or empty); set it or write \${${name}:-default}` });
    }
  });

  const raw: unknown = doc.toJS() ?? {};
  if (opts.offline) offlineTargets(raw);
  const parsed = configSchema.safeParse(raw, { error: describeIssue });
  const rules = crossKeyIssues(raw);
  if (parsed.success && rules.length === 0 && problems.length === 0) {
    const config = resolvePaths(parsed.data, dirname(resolve(file)));
    if (!opts.readFiles) return { ok: true, config };
    for (const p of referencedFileProblems(config)) {
      // a problem inside the web config file says where in that file; the others where the key is
      const pos = 'file' in p && p.line > 0 ? { line: p.line, col: p.col } : at(nearestNode(doc, p.path)?.range?.[0]);
      problems.push({ file: 'file' in p && p.line > 0 ? p.file : file, line: pos.line, col: pos.col, path: 'file' in p && p.line > 0 ? p.where : formatPath(p.path), message: p.message });
    }
    return problems.length ? { ok: false, problems } : { ok: true, config };
  }
  // a value left empty by a missing variable is already reported as such
  const envPaths = new Set(problems.map((p) => p.path));
  const issues = [...(parsed.error?.issues ?? []), ...rules].filter((i) => !envPaths.has(formatPath(i.path)));
  problems.push(...locateIssues(source, issues));
  problems.sort((a, b) => a.line - b.line || a.col - b.col);
  return { ok: false, problems };
}

// Offline, each target keeps its name, schedule and time zone; how to reach it is replaced by a
// host that is never connected to.
function offlineTargets(raw: unknown): void {
  const targets = (raw as { targets?: unknown } | null)?.targets;
  if (!Array.isArray(targets)) return;
  for (const t of targets) {
    if (t === null || typeof t !== 'object' || Array.isArray(t)) continue;
    for (const key of CONNECTION_KEYS) delete (t as Record<string, unknown>)[key];
    (t as Record<string, unknown>).host = 'localhost';
  }
}

/** A YAML file parsed for validation: its document, and the line and column of an offset. */
export interface YamlSource {
  file: string;
  doc: Document;
  at(offset: number | undefined): { line: number; col: number };
}

/** Parses YAML (JSON too) keeping positions; syntax errors come back as located problems. */
export function parseYamlSource(text: string, file: string): { source: YamlSource; problems: ConfigProblem[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const at = (offset: number | undefined) => lines.linePos(offset ?? 0);
  const problems = doc.errors.map((error): ConfigProblem => {
    const pos = at(error.pos[0]);
    return { file, line: pos.line, col: pos.col, path: '', message: `invalid YAML: ${error.message.split('\n')[0]}` };
  });
  return { source: { file, doc, at }, problems };
}

/** An issue found in a parsed file: zod's, or one of our own rules (code absent or "custom"). */
export interface Issue {
  code?: string;
  path: readonly PropertyKey[];
  message: string;
  keys?: string[];
}

/** Each issue at the node its path points to (a missing key at its parent, an unknown key at itself). */
export function locateIssues(source: YamlSource, issues: readonly Issue[]): ConfigProblem[] {
  const { file, doc, at } = source;
  const problems: ConfigProblem[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys ?? []) {
        const node = keyNode(doc, issue.path, key);
        const pos = at(node?.range?.[0]);
        problems.push({ file, line: pos.line, col: pos.col, path: formatPath([...issue.path, key]), message: issue.message.replace('%KEY%', key) });
      }
      continue;
    }
    const pos = at(nearestNode(doc, issue.path)?.range?.[0]);
    problems.push({ file, line: pos.line, col: pos.col, path: formatPath(issue.path), message: issue.message });
  }
  return problems.sort((a, b) => a.line - b.line || a.col - b.col);
}

// File paths in the config (passwordFile, ssl.rootCert, ssl.cert, ssl.key, http.webConfigFile) are relative to the
// config file's directory, so a config works from any working directory.
function resolvePaths(config: Config, dir: string): Config {
  const at = (p: string | undefined) => (p === undefined ? undefined : resolve(dir, p));
  return {
    ...config,
    http: { ...config.http, ...(config.http.webConfigFile !== undefined ? { webConfigFile: at(config.http.webConfigFile) } : {}) },
    targets: config.targets.map((t) => ({
      ...t,
      ...(t.passwordFile !== undefined ? { passwordFile: at(t.passwordFile) } : {}),
      ...(t.ssl ? { ssl: { ...t.ssl, rootCert: at(t.ssl.rootCert), cert: at(t.ssl.cert), key: at(t.ssl.key) } } : {}),
    })),
  };
}

/** Validates an in-memory object (tests, demo); throws ConfigError with path-only problems. */
export function validateConfig(input: unknown): Config {
  const parsed = configSchema.safeParse(input, { error: describeIssue });
  const rules = crossKeyIssues(input);
  if (parsed.success && rules.length === 0) return parsed.data;
  const issues = [...(parsed.error?.issues ?? []), ...rules];
  throw new ConfigError(issues.map((i) => ({ file: '<object>', line: 0, col: 0, path: formatPath(i.path), message: i.message })));
}

const SECRET_KEYS = new Set(['password', 'connectionString']);

// Messages that say what would be accepted. Values of secret keys are never echoed.
export function describeIssue(iss: z.core.$ZodRawIssue): string | undefined {
  const secret = iss.path?.some((p) => SECRET_KEYS.has(String(p))) ?? false;
  const got = secret ? '' : `, got ${show(iss.input)}`;
  switch (iss.code) {
    case 'invalid_type':
      if (iss.input === undefined) return `required: expected ${article(iss.expected)}`;
      return `expected ${article(iss.expected)}${got}`;
    case 'unrecognized_keys': {
      const inst = iss.inst as { _zod?: { def?: { shape?: object } } } | undefined;
      const accepted = Object.keys(inst?._zod?.def?.shape ?? {});
      return `unknown key "%KEY%"; accepted keys: ${accepted.join(', ')}`;
    }
    case 'invalid_value':
      return `expected one of ${iss.values.map((v) => JSON.stringify(v)).join(', ')}${got}`;
    case 'too_small':
      if (iss.origin === 'array') return `expected at least ${String(iss.minimum)} entr${iss.minimum === 1 ? 'y' : 'ies'}`;
      if (iss.origin === 'string') return `expected a non-empty string${got}`;
      return `expected a number >= ${String(iss.minimum)}${got}`;
    case 'too_big':
      if (iss.origin === 'string') return `expected at most ${String(iss.maximum)} characters${got}`;
      return `expected a number <= ${String(iss.maximum)}${got}`;
    default:
      return undefined;
  }
}

function article(type: string): string {
  if (type === 'object') return 'a mapping';
  if (type === 'array') return 'a list';
  if (type === 'int') return 'an integer';
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

export function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((out, seg) => (typeof seg === 'number' ? `${out}[${seg}]` : out ? `${out}.${String(seg)}` : String(seg)), '');
}

function walkScalars(node: unknown, path: (string | number)[], visit: (node: { value: unknown; range?: [number, number, number] | null }, path: (string | number)[]) => void): void {
  if (isScalar(node)) visit(node, path);
  else if (isMap(node)) for (const pair of node.items) walkScalars(pair.value, [...path, String(isScalar(pair.key) ? pair.key.value : pair.key)], visit);
  else if (isSeq(node)) node.items.forEach((item, i) => walkScalars(item, [...path, i], visit));
}

function child(node: unknown, seg: PropertyKey): unknown {
  if (isMap(node)) return node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg))?.value ?? undefined;
  if (isSeq(node) && typeof seg === 'number') return node.items[seg];
  return undefined;
}

/** The deepest node that exists along a path: a missing key is reported at its parent. */
function nearestNode(doc: Document, path: readonly PropertyKey[]): Node | undefined {
  let node: unknown = doc.contents;
  for (const seg of path) {
    const next = child(node, seg);
    if (next === undefined || next === null) break;
    node = next;
  }
  return node as Node | undefined;
}

function keyNode(doc: Document, path: readonly PropertyKey[], key: string): Node | undefined {
  const parent = nearestNode(doc, path);
  if (isMap(parent)) {
    const pair = parent.items.find((p) => isScalar(p.key) && String(p.key.value) === key);
    if (pair && isScalar(pair.key)) return pair.key;
  }
  return parent;
}
