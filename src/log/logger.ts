import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

// JSON lines: level as a word, ISO time, written synchronously so no line is lost at exit.
// Connection strings and passwords are never passed to the logger, and error text goes through
// describeError() first. (pino's redact option would check every line: it tripled the cost of
// logging a 1,000-victim run.)
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { name: 'pg-reaper' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
