import { readFileSync } from 'node:fs';
import type { Config } from './schema.js';
import { loadWebConfig } from './web-config.js';

// The files a valid config points at, read once when the config is loaded (by `check`, at start
// and at every reload), so that a missing or unreadable one is a config error with its location
// rather than a target that goes down later. Their contents never appear in a message.

export interface KeyProblem {
  /** Path of the config key, as in the schema: ["targets", 0, "passwordFile"]. */
  path: (string | number)[];
  message: string;
}

/** A problem inside a file the config points at, where in that file (line 0: the file as a whole). */
export interface InFileProblem extends KeyProblem {
  file: string;
  line: number;
  col: number;
  /** The path inside that file. */
  where: string;
}

export type FileProblem = KeyProblem | InFileProblem;

export function referencedFileProblems(config: Config): FileProblem[] {
  const problems: FileProblem[] = [];
  config.targets.forEach((t, i) => {
    if (t.passwordFile === undefined) return;
    const error = passwordFileError(t.passwordFile);
    if (error) problems.push({ path: ['targets', i, 'passwordFile'], message: error });
  });
  if (config.http.webConfigFile !== undefined) {
    const web = loadWebConfig(config.http.webConfigFile);
    if (!web.ok) {
      for (const p of web.problems) {
        problems.push({ path: ['http', 'webConfigFile'], file: p.file, line: p.line, col: p.col, where: p.path, message: p.line > 0 ? p.message : `${config.http.webConfigFile}: ${p.message}` });
      }
    }
  }
  return problems;
}

function passwordFileError(file: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return `cannot read ${file}: ${readError(err)}`;
  }
  if (text.replace(/\r?\n$/, '') === '') return `${file} is empty: it should hold the password (a final newline is dropped)`;
  return undefined;
}

export function readError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
      return 'no such file (ENOENT)';
    case 'EACCES':
    case 'EPERM':
      return `permission denied for this user (${code})`;
    case 'EISDIR':
      return 'it is a directory (EISDIR)';
    default:
      return code ?? (err as Error).message;
  }
}
