import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config/schema.js';
import { openTarget, type TargetDb } from '../db/target.js';
import { startHttpServer, type HttpServer } from '../http/server.js';
import type { Logger } from '../log/logger.js';
import { createMetrics, initTargetSeries, type Metrics } from '../metrics/metrics.js';
import { compilePolicies, type CompiledPolicy } from '../policy/compile.js';
import { logRun, privilegeWarnings, recordRun } from '../run/report.js';
import { runTarget, type RunReport } from '../run/run-target.js';
import { Scheduler } from './scheduler.js';

// The long-running process: one scheduled job per target, the HTTP endpoints, and a stop() that
// waits for the runs in flight. Lifecycle events let tests and the demo wait instead of sleeping.

export interface DaemonEvents {
  run: [RunReport];
}

export interface Daemon {
  http: HttpServer;
  metrics: Metrics;
  events: EventEmitter<DaemonEvents>;
  /** Run a target now (as a trigger would); resolves when that run ends. */
  runNow(target: string): Promise<void>;
  ready(): boolean;
  stop(): Promise<void>;
}

interface TargetState {
  name: string;
  db: TargetDb;
  policies: CompiledPolicy[];
  warnings: string;
}

export async function startDaemon(config: Config, deps: { logger: Logger; version: string }): Promise<Daemon> {
  const { logger } = deps;
  const metrics = createMetrics(deps.version);
  const events = new EventEmitter<DaemonEvents>();
  const finished = new Set<string>();
  const targets = new Map<string, TargetState>();
  for (const t of config.targets) {
    const policies = compilePolicies(config, t.name);
    if (policies.length === 0) logger.warn({ target: t.name }, 'no policy applies to this target: it is only monitored');
    const db = openTarget(t, { applicationName: config.applicationName, onError: (error) => logger.warn({ target: t.name, error }, 'idle connection closed') });
    targets.set(t.name, { name: t.name, db, policies, warnings: '' });
    initTargetSeries(metrics, t.name, policies);
  }

  const runOne = async (name: string): Promise<void> => {
    const t = targets.get(name)!;
    const report = await runTarget(
      {
        target: name,
        policies: t.policies,
        applicationName: config.applicationName,
        maxActionsPerRun: config.maxActionsPerRun,
        terminateTimeoutMs: config.terminateTimeout,
        logQueryText: config.logQueryText,
      },
      { db: t.db, wallClock: Date.now, monotonic: () => performance.now(), sleep: (ms) => sleep(ms) },
    );
    try {
      if (report.snapshot) {
        const warnings = privilegeWarnings(report.snapshot.privileges);
        if (warnings.join() !== t.warnings) for (const w of warnings) logger.warn({ target: name }, w);
        t.warnings = warnings.join();
      }
      logRun(logger, report, config.logQueryText);
      recordRun(metrics, report);
    } finally {
      finished.add(name);
      events.emit('run', report);
    }
  };

  const scheduler = new Scheduler({
    pattern: config.schedule,
    timezone: config.timezone,
    targets: [...targets.keys()],
    run: runOne,
    onOverlap: (target) => {
      metrics.runs.inc({ target, result: 'overlap' });
      logger.warn({ target }, 'previous run still in progress: trigger skipped');
    },
  });

  let stopping = false;
  let http: HttpServer;
  try {
    http = await startHttpServer(config.http.host, config.http.port, metrics.registry, {
      live: () => scheduler.alive(),
      ready: () => !stopping && finished.size === targets.size,
    });
  } catch (err) {
    await Promise.all([...targets.values()].map((t) => t.db.close().catch(() => undefined)));
    throw new Error(`cannot listen on ${config.http.host}:${config.http.port}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  scheduler.start();
  logger.info(
    {
      version: deps.version,
      port: http.port,
      host: http.host,
      targets: [...targets.keys()],
      policies: config.policies.map((p) => p.name),
      schedule: config.schedule,
      timezone: config.timezone ?? 'local',
      dryRun: config.dryRun,
      nextRun: scheduler.nextRun()?.toISOString(),
    },
    `pg-reaper started; metrics on http://${http.host}:${http.port}/metrics`,
  );
  if (config.dryRun) logger.warn('dryRun is on: nothing will be signalled, decisions are only logged and counted');

  let stopped: Promise<void> | undefined;
  return {
    http,
    metrics,
    events,
    runNow: (target) => scheduler.trigger(target),
    ready: () => !stopping && finished.size === targets.size,
    stop: () =>
      (stopped ??= (async () => {
        stopping = true;
        logger.info({ timeoutSeconds: config.shutdownTimeout / 1000 }, 'stopping: waiting for runs in flight');
        const clean = await scheduler.stop(config.shutdownTimeout);
        if (!clean) logger.warn('shutdownTimeout passed with a run still in flight; closing its connection');
        await Promise.all([...targets.values()].map((t) => t.db.close().catch(() => undefined)));
        await http.close();
        logger.info('stopped');
      })()),
  };
}
