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

export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): LoadResult {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file (pass -c PATH or set PG_REAPER_CONFIG)' : `cannot read it (${code ?? (err as Error).message})`;
    return { ok: false, problems: [{ file, line: 0, col: 0, path: '', message: why }] };
  }
  return parseConfigText(text, file, env, { readFiles: true });
}

export interface ParseOptions {
  /** Also read the files the config points at (passwordFile, http.webConfigFile): a missing or unreadable one is a problem. */
  readFiles?: boolean;
}

export function parseConfigText(text: string, file: string, env: NodeJS.ProcessEnv = process.env, options: ParseOptions = {}): LoadResult {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const at = (offset: number | undefined) => lines.linePos(offset ?? 0);
  const problems: ConfigProblem[] = [];

  for (const error of doc.errors) {
    const pos = at(error.pos[0]);
    problems.push({ file, line: pos.line, col: pos.col, path: '', message: `invalid YAML: ${error.message.split('\n')[0]}` });
  }
  if (problems.length) return { ok: false, problems };

  walkScalars(doc.contents, [], (node, path) => {
    if (typeof node.value !== 'string' || !node.value.includes('$')) return;
    const { value, missing } = substituteEnv(node.value, env);
    node.value = value;
    const pos = at(node.range?.[0]);
    for (const name of missing) {
      problems.push({ file, line: pos.line, col: pos.col, path: formatPath(path), message: `environment variable ${name} is not set (or empty); set it or write \${${name}:-default}` });
    }
  });

  const raw: unknown = doc.toJS() ?? {};
  const parsed = configSchema.safeParse(raw, { error: describeIssue });
  const rules = crossKeyIssues(raw);
  if (parsed.success && rules.length === 0 && problems.length === 0) {
    const config = resolvePaths(parsed.data, dirname(resolve(file)));
    if (!options.readFiles) return { ok: true, config };
    for (const p of referencedFileProblems(config)) {
      // a problem inside the web config file says where in that file; the others where the key is
      const pos = 'file' in p && p.line > 0 ? { line: p.line, col: p.col } : at(nearestNode(doc, p.path)?.range?.[0]);
      problems.push({ file: 'file' in p && p.line > 0 ? p.file : file, line: pos.line, col: pos.col, path: 'file' in p && p.line > 0 ? p.where : formatPath(p.path), message: p.message });
    }
    return problems.length ? { ok: false, problems } : { ok: true, config };
  }
  const envPaths = new Set(problems.map((p) => p.path));
  for (const issue of [...(parsed.error?.issues ?? []), ...rules.map((r) => ({ ...r, code: 'custom' as const }))]) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const node = keyNode(doc, issue.path, key);
        const pos = at(node?.range?.[0]);
        problems.push({ file, line: pos.line, col: pos.col, path: formatPath([...issue.path, key]), message: issue.message.replace('%KEY%', key) });
      }
      continue;
    }
    // a value left empty by a missing variable is already reported as such
    if (envPaths.has(formatPath(issue.path))) continue;
    const pos = at(nearestNode(doc, issue.path)?.range?.[0]);
    problems.push({ file, line: pos.line, col: pos.col, path: formatPath(issue.path), message: issue.message });
  }
  problems.sort((a, b) => a.line - b.line || a.col - b.col);
  return { ok: false, problems };
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
function describeIssue(iss: z.core.$ZodRawIssue): string | undefined {
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

function formatPath(path: readonly PropertyKey[]): string {
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
