import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

// JSON lines: level as a word, ISO time. Connection strings and passwords are never passed to
// the logger; the redact list is a second line of defence.
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { name: 'pg-reaper' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: ['password', 'connectionString', '*.password', '*.connectionString'], censor: '***' },
    },
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
