import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import { openAuditSink, problemContext } from './sink.js';
import { AuditWriter, type AuditMetrics } from './writer.js';

// The audit writer of a config, with the real clock, timer and connection.

/** A timer that an abort ends early (and quietly). */
export const abortableSleep = (ms: number, signal: AbortSignal): Promise<void> => sleep(ms, undefined, { signal }).catch(() => undefined);

export function startAuditWriter(config: Config, deps: { logger: Logger; metrics?: AuditMetrics | undefined }): AuditWriter {
  const sink = openAuditSink(config, (error) => deps.logger.debug({ error }, 'audit connection closed by the server'));
  return new AuditWriter(
    { queueSize: config.audit!.queueSize },
    { sink, logger: deps.logger, metrics: deps.metrics, problems: problemContext(config), now: () => performance.now(), sleep: abortableSleep, random: Math.random },
  );
}
