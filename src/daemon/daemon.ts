import { EventEmitter } from 'node:events';
import { formatProblem, loadConfigFile } from '../config/load.js';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { auditRows, replicaName } from '../audit/row.js';
import { auditKey } from '../audit/sink.js';
import { startAuditWriter } from '../audit/start.js';
import type { AuditWriter } from '../audit/writer.js';
import type { Config } from '../config/schema.js';
import { AdvisoryLease } from '../coord/advisory-lease.js';
import { LeaseHeartbeat } from '../coord/lease-heartbeat.js';
import { targetKey } from '../coord/lock-key.js';
import { openTarget, type TargetDb } from '../db/target.js';
import { startHttpServer, WebConfigError, type HttpServer } from '../http/server.js';
import type { HttpLimits } from '../http/limits.js';
import type { Logger } from '../log/logger.js';
import { auditMetrics, createMetrics, dropAuditSeries, dropTargetSeries, initSafetySeries, initTargetSeries, type Metrics } from '../metrics/metrics.js';
import { compilePolicies, type CompiledPolicy } from '../policy/compile.js';
import { BudgetLedger } from '../run/budget.js';
import { DeniedSessions } from '../run/denied-sessions.js';
import { logRun } from '../run/log-lines.js';
import { recordRun } from '../run/run-metrics.js';
import { TargetWatch } from '../run/target-watch.js';
import { runTarget, settingsFor, systemDeps, type RunReport } from '../run/run-target.js';
import { describeError } from '../util/errors.js';
import { ConfigWatch } from './config-watch.js';
import { Scheduler } from './scheduler.js';

// The long-running process: one scheduled job per target, the HTTP endpoints, a reload that
// swaps config between runs, and a stop() that waits for the runs in flight. Lifecycle events
// let tests and the demo wait instead of sleeping. A reload of the config file, by SIGHUP or by
// the file watch, takes one path: read and validate the file, build, swap (reloadFile).

export interface DaemonEvents {
  run: [RunReport];
}

export interface Daemon {
  http: HttpServer;
  metrics: Metrics;
  events: EventEmitter<DaemonEvents>;
  /** Run a target now (as a trigger would); resolves when that run ends. */
  runNow(target: string): Promise<void>;
  /** Resolves when the runs made at start (or at the last reload) have ended. */
  startupRuns(): Promise<void>;
  /** Apply a new validated config: waits for runs in flight, then reconnects and reschedules. */
  reload(next: Config): Promise<void>;
  /**
   * Re-read the config file (DaemonDeps.configFile) and apply it as reload() does. A file with any
   * problem is rejected as a whole: logged, counted, and the old config keeps running.
   */
  reloadFile(trigger: ReloadTrigger): Promise<void>;
  ready(): boolean;
  stop(): Promise<void>;
}

interface TargetState {
  name: string;
  db: TargetDb;
  policies: CompiledPolicy[];
  /** With coordination: the target's advisory lock, and what keeps its hold confirmed between runs. */
  lease?: AdvisoryLease;
  heartbeat?: LeaseHeartbeat;
}

interface Generation {
  config: Config;
  targets: Map<string, TargetState>;
  scheduler: Scheduler;
  finished: Set<string>;
  /** The run of every target made when this generation started. */
  kickoff: Promise<void>;
}

const KICKOFF_SPREAD_MS = 2000;
/** A ConfigMap swap or an editor's save is a burst of events within milliseconds: one reload for it. */
const WATCH_TIMING = { debounceMs: 500, maxWaitMs: 5000 };

export type ReloadTrigger = 'SIGHUP' | 'file change';
/** At stop, the audit rows still queued get at least this long, even when the runs took all of shutdownTimeout. */
const AUDIT_FLUSH_MIN_MS = 2000;

/** The HTTP port could not be bound: the CLI exits with its own code for it. */
export class ListenError extends Error {}
export { WebConfigError };

export interface DaemonDeps {
  logger: Logger;
  version: string;
  /** Opens a target's pool (tests inject faults here). */
  openTarget?: typeof openTarget;
  /** Limits of the HTTP listeners (tests make them short). */
  httpLimits?: HttpLimits;
  /** The file the config came from: what reloadFile() reads and, with watchConfig, watches. */
  configFile?: string;
  /** This process's name in audit rows (default: POD_NAME, else the host name). */
  replica?: string;
}

interface Audit {
  key: string;
  writer: AuditWriter;
}

export async function startDaemon(initial: Config, deps: DaemonDeps): Promise<Daemon> {
  const { logger } = deps;
  const open = deps.openTarget ?? openTarget;
  const metrics = createMetrics(deps.version);
  const events = new EventEmitter<DaemonEvents>();
  const watch = new TargetWatch(logger);
  // each target's budget ledger, for the daemon's whole life: a reload does not reset it
  const ledgers = new Map<string, BudgetLedger>();
  const ledger = (target: string) => ledgers.get(target) ?? ledgers.set(target, new BudgetLedger()).get(target)!;
  const denied = new DeniedSessions();
  const replica = deps.replica ?? replicaName(process.env, hostname);
  let stopping = false;
  // The audit writer outlives generations: a reload that leaves the audit settings alone keeps
  // it and its queue. The writers being retired (flushing or handing their rows over) are kept
  // here until they are done, so stop() waits for them too.
  let audit: Audit | undefined;
  const retiring = new Set<Promise<unknown>>();
  const startAudit = (config: Config): Audit | undefined => {
    const key = auditKey(config);
    return key === undefined ? undefined : { key, writer: startAuditWriter(config, { logger, metrics: auditMetrics(metrics) }) };
  };
  const background = (p: Promise<unknown>) => {
    const tracked = p.catch((err: unknown) => logger.error({ error: describeError(err) }, 'audit writer: error while retiring')).finally(() => retiring.delete(tracked));
    retiring.add(tracked);
  };

  const runOne = async (gen: Generation, name: string): Promise<void> => {
    const t = gen.targets.get(name)!;
    const c = gen.config;
    const report = await runTarget({ ...settingsFor(c, name, t.policies), watch: denied.watch(name) }, systemDeps(t.db, t.lease, ledger(name)));
    try {
      denied.observe(report);
      const { quietFailure } = watch.observe(report);
      logRun(logger, report, c.logQueryText, quietFailure);
      recordRun(metrics, report);
      // only queued here: the writer sends it in the background
      audit?.writer.enqueue(auditRows(report, { replica, logQueryText: c.logQueryText }));
    } finally {
      gen.finished.add(name);
      events.emit('run', report);
    }
  };

  // Everything a config needs, made before anything of the running one is touched: if any part
  // fails, what was opened is closed and the error names the target.
  const build = (config: Config): Generation => {
    const targets = new Map<string, TargetState>();
    try {
      for (const t of config.targets) {
        try {
          const policies = compilePolicies(config, t.name);
          const db = open(t, { applicationName: config.applicationName, onError: (error) => logger.warn({ target: t.name, error }, 'idle connection closed') });
          const lease = config.coordination.mode === 'advisory-lock' ? new AdvisoryLease(config.coordination.lockKey, targetKey(t.name), config.coordination.leaseTimeout) : undefined;
          targets.set(t.name, { name: t.name, db, policies, ...(lease ? { lease, heartbeat: new LeaseHeartbeat(lease, db) } : {}) });
        } catch (err) {
          throw new Error(`target ${t.name}: ${describeError(err)}`);
        }
      }
      const gen: Generation = { config, targets, finished: new Set(), kickoff: Promise.resolve(), scheduler: undefined as unknown as Scheduler };
      gen.scheduler = new Scheduler({
        targets: config.targets.map((t) => ({ name: t.name, pattern: t.schedule ?? config.schedule, timezone: t.timezone ?? config.timezone })),
        jitterMs: config.scheduleJitter,
        maxConcurrent: config.maxConcurrentRuns,
        run: (name) => runOne(gen, name),
        onOverlap: (target) => {
          metrics.runs.inc({ target, result: 'overlap' });
          logger.warn({ target }, 'previous run still in progress: trigger skipped');
        },
      });
      return gen;
    } catch (err) {
      for (const t of targets.values()) void t.db.close().catch(() => undefined);
      throw err;
    }
  };

  const activate = (g: Generation): void => {
    for (const t of g.targets.values()) {
      if (t.policies.length === 0) logger.warn({ target: t.name }, 'no policy applies to this target: it is only monitored');
      initTargetSeries(metrics, t.name, t.policies, { leading: t.lease && (() => t.lease!.fresh()), scheduleInterval: () => g.scheduler.intervalSeconds(t.name) });
      initSafetySeries(metrics, t.name, g.config.budget, t.policies);
      t.heartbeat?.start();
    }
    g.scheduler.start();
    // every target runs once at start (spread over at most 2 s), not only at its first trigger:
    // readiness and target_up are known at once, and nothing waits a whole schedule period
    g.kickoff = g.scheduler.kickoff(Math.min(KICKOFF_SPREAD_MS, 50 * g.targets.size));
    metrics.configReload.set(1);
    metrics.configReloadTime.set(Date.now() / 1000);
  };

  const retire = async (gen: Generation): Promise<void> => {
    for (const t of gen.targets.values()) t.heartbeat?.stop();
    const clean = await gen.scheduler.stop(gen.config.shutdownTimeout);
    if (!clean) logger.warn('shutdownTimeout passed with a run still in flight; closing its connection');
    await Promise.all([...gen.targets.values()].map((t) => t.db.close().catch(() => undefined)));
  };

  const webConfigLog = {
    applied: (file: string) => logger.info({ file }, 'web config changed: applied to new connections'),
    rejected: (file: string, problems: string[]) => logger.error({ file, problems }, 'web config changed but cannot be used: new connections keep the previous one'),
  };

  let gen = build(initial);
  // a reload swaps schedulers: the process is alive throughout
  let reloading = false;
  const ready = () => !stopping && gen.finished.size === gen.targets.size;

  // Reloads and stop are serialized: one swap at a time, none before the start is complete, and
  // none after stop.
  let configWatch: ConfigWatch | undefined;
  let started!: () => void;
  let chain = new Promise<void>((resolve) => (started = resolve));
  const serial = (step: () => Promise<void>) => (chain = chain.then(step, step));

  const rejected = (trigger: ReloadTrigger | undefined, details: { problems: string[] } | { error: string }) => {
    metrics.configReload.set(0);
    logger.error({ ...(trigger ? { trigger } : {}), ...details }, 'config reload failed: the previous config keeps running');
  };

  // Builds the new generation before touching the running one, then swaps between runs.
  const apply = async (next: Config, trigger?: ReloadTrigger): Promise<void> => {
    if (stopping) return;
    const old = gen;
    let fresh: Generation;
    try {
      fresh = build(next);
    } catch (err) {
      rejected(trigger, { error: describeError(err) });
      return;
    }
    let applyHttp: () => void;
    try {
      applyHttp = http.prepare(next.http);
    } catch (err) {
      for (const t of fresh.targets.values()) void t.db.close().catch(() => undefined);
      rejected(trigger, { problems: err instanceof WebConfigError ? err.problems : [describeError(err)] });
      return;
    }
    // a new audit writer only when the audit settings change; made last, when nothing else can fail
    const auditChanges = auditKey(next) !== audit?.key;
    let freshAudit: Audit | undefined;
    try {
      if (auditChanges) freshAudit = startAudit(next);
    } catch (err) {
      for (const t of fresh.targets.values()) void t.db.close().catch(() => undefined);
      rejected(trigger, { error: `audit: ${describeError(err)}` });
      return;
    }
    const was = old.config.http;
    if (next.http.host !== was.host || next.http.port !== was.port || next.http.probes.port !== was.probes.port || next.http.probes.host !== was.probes.host) {
      logger.warn({ host: http.host, port: http.port }, 'http.host, http.port and http.probes.port/host take effect at restart; still listening on the old addresses');
    }
    reloading = true;
    try {
      await retire(old);
      for (const name of old.targets.keys()) {
        if (next.targets.some((t) => t.name === name)) continue;
        dropTargetSeries(metrics, name);
        watch.forget(name);
        ledgers.delete(name);
        denied.forget(name);
      }
      logger.level = next.logLevel;
      applyHttp();
      // targets that stay keep their readiness
      for (const name of old.finished) if (fresh.targets.has(name)) fresh.finished.add(name);
      gen = fresh;
      if (auditChanges) swapAudit(freshAudit, next);
      activate(gen);
    } finally {
      reloading = false;
    }
    syncWatch(next);
    logger.info({ ...(trigger ? { trigger } : {}), targets: [...gen.targets.keys()], policies: next.policies.map((p) => p.name), schedule: next.schedule, dryRun: next.dryRun }, 'config reloaded');
  };

  // The file is read when its turn comes, so reloads apply in the order the changes happened.
  const reloadFile = (trigger: ReloadTrigger): Promise<void> =>
    serial(async () => {
      if (stopping) return;
      const file = deps.configFile;
      if (!file) throw new Error('reloadFile: the daemon was started without a config file');
      configWatch?.sync();
      const next = loadConfigFile(file);
      if (!next.ok) rejected(trigger, { problems: next.problems.map(formatProblem) });
      else await apply(next.config, trigger);
    });

  // watchConfig: a change of the file reloads it as SIGHUP does; a config that turns it off
  // (or on) takes effect with that very reload
  const syncWatch = (config: Config) => {
    const file = deps.configFile;
    if (!file || stopping) return;
    if (!config.watchConfig) {
      configWatch?.close();
      configWatch = undefined;
      return;
    }
    if (configWatch) return;
    try {
      configWatch = new ConfigWatch(file, WATCH_TIMING, () => {
        logger.info({ file }, 'config file changed: reloading');
        reloadFile('file change').catch((err: unknown) => logger.error({ error: describeError(err) }, 'config reload failed'));
      });
    } catch (err) {
      logger.warn({ file, error: describeError(err) }, 'cannot watch the config file: a change takes effect at SIGHUP or restart');
    }
  };

  // Watched from before the daemon listens, so no change made while it starts goes unseen; a
  // change seen then is applied once it is up (the chain of reloads opens at the start line).
  syncWatch(initial);
  let http: HttpServer;
  try {
    http = await startHttpServer(initial.http, metrics.registry, { live: () => reloading || gen.scheduler.alive(), ready }, { webConfigLog, ...(deps.httpLimits ? { limits: deps.httpLimits } : {}) });
  } catch (err) {
    configWatch?.close();
    await retire(gen);
    if (err instanceof WebConfigError) throw err;
    const e = err as NodeJS.ErrnoException & { listenHost?: string; listenPort?: number };
    throw new ListenError(`cannot listen on ${e.listenHost ?? initial.http.host}:${e.listenPort ?? initial.http.port}: ${e.code ?? e.message}`);
  }
  audit = startAudit(initial);
  activate(gen);
  logger.info(
    {
      version: deps.version,
      pid: process.pid,
      port: http.port,
      host: http.host,
      tls: http.tls,
      ...(initial.http.webConfigFile ? { webConfigFile: initial.http.webConfigFile } : {}),
      ...(http.probes ? { probesPort: http.probes.port } : {}),
      targets: [...gen.targets.keys()],
      policies: initial.policies.map((p) => p.name),
      schedule: initial.schedule,
      timezone: initial.timezone ?? 'local',
      dryRun: initial.dryRun,
      nextRun: gen.scheduler.nextRun()?.toISOString(),
      ...(deps.configFile ? { configFile: deps.configFile, watchConfig: initial.watchConfig } : {}),
      ...(initial.audit ? { audit: initial.audit.table } : {}),
    },
    `pg-reaper started; metrics on ${http.tls ? 'https' : 'http'}://${http.host.includes(':') ? `[${http.host}]` : http.host}:${http.port}/metrics`,
  );
  if (initial.dryRun) logger.warn('dryRun is on: nothing will be signalled, decisions are only logged and counted');

  started();

  // New settings, new writer: the old one's queued rows move to it (in the background, so runs
  // go on meanwhile), or with audit turned off are flushed like at a stop.
  const swapAudit = (fresh: Audit | undefined, next: Config): void => {
    const previous = audit;
    audit = fresh;
    if (!previous) return;
    const deadline = performance.now() + next.shutdownTimeout;
    if (fresh) {
      background(
        previous.writer.handover(deadline).then((rows) => {
          fresh.writer.enqueue(rows);
          logger.info({ rows: rows.length, table: next.audit!.table }, 'audit settings changed: queued rows moved to the new audit writer');
        }),
      );
    } else {
      logger.info({ rows: previous.writer.queued }, 'audit turned off: writing the queued rows, then closing the audit connection');
      background(previous.writer.stop(deadline).then(() => (audit ? undefined : dropAuditSeries(metrics))));
    }
  };

  let stopped: Promise<void> | undefined;
  return {
    http,
    metrics,
    events,
    runNow: (target) => gen.scheduler.trigger(target),
    startupRuns: () => gen.kickoff,
    ready,
    reload: (next) => serial(() => apply(next)),
    reloadFile,
    stop: () =>
      (stopped ??= serial(async () => {
        stopping = true;
        const started = performance.now();
        configWatch?.close();
        configWatch = undefined;
        logger.info({ timeoutSeconds: gen.config.shutdownTimeout / 1000 }, 'stopping: waiting for runs in flight');
        await retire(gen);
        // then the audit rows still queued, within what is left of shutdownTimeout (at least 2 s)
        if (audit) await audit.writer.stop(Math.max(started + gen.config.shutdownTimeout, performance.now() + AUDIT_FLUSH_MIN_MS));
        await Promise.all([...retiring]);
        await http.close();
        logger.info('stopped');
      })),
  };
}
