import { writeSync } from 'node:fs';
import { pino, type DestinationStream, type Logger } from 'pino';
import { prettyStream } from './pretty.js';

export type { Logger };
export type LogFormat = 'json' | 'pretty';

// JSON lines: level as a word, ISO time, written synchronously so no line is lost at exit; or the
// same records as readable lines (pretty). Connection strings and passwords are never passed to
// the logger, and error text goes through describeError() first. (pino's redact option would
// check every line: it tripled the cost of logging a 1,000-victim run.)
export function createLogger(level: string, destination?: DestinationStream, format: LogFormat = 'json', fd: 1 | 2 = 1): Logger {
  const out = destination ?? (format === 'pretty' ? prettyStream((line) => void writeSync(fd, line)) : pino.destination({ dest: fd, sync: true }));
  return pino(
    {
      level,
      base: { name: 'pg-reaper' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    out,
  );
}

/** pretty on a terminal, json otherwise, unless chosen. */
export function logFormatFor(chosen: LogFormat | undefined, stream: NodeJS.WriteStream): LogFormat {
  return chosen ?? (stream.isTTY ? 'pretty' : 'json');
}
