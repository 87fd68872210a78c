import { auditWhere } from '../audit/where.js';
import { formatProblem, loadConfigFile } from '../config/load.js';
import { formatDuration } from '../config/duration.js';
import type { Config } from '../config/schema.js';
import { protectionSummary } from '../plan/protect.js';
import type { LogFormat, Logger } from '../log/logger.js';
import { describeError } from '../util/errors.js';
import { plural } from '../util/plural.js';
import { VERSION } from '../version.js';
import { parseCommandLine, UsageError } from './args.js';
import { releaseEarlySignals, takeEarlySignals } from './early-signals.js';
import { USAGE, VERB_HELP } from './usage.js';

// Command line: parse, load config, dispatch. Expected failures print one clear line and exit
// with 1 (a target failed), 2 (usage or config) or 3 (the daemon cannot listen on its HTTP
// port); no stack traces.

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;
const EXIT_CANNOT_LISTEN = 3;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(argv);
  if (values.help) {
    process.stdout.write(VERB_HELP[positionals[0] ?? ''] ?? USAGE);
    return EXIT_OK;
  }
  if (values.version) {
    process.stdout.write(`pg-reaper ${VERSION}\n`);
    return EXIT_OK;
  }
  const command = positionals[0] ?? 'run';
  if (command !== 'run') releaseEarlySignals();
  // the demo is development tooling: it runs from a checkout (npm run demo) and is not shipped
  if (command === 'demo') throw new UsageError('"demo" runs from a git checkout of pg-reaper, not from the installed program: npm ci && npm run demo');
  if (!['run', 'check', 'once', 'audit-init', 'snapshot', 'test'].includes(command)) throw new UsageError(`unknown command "${command}"; expected run, check, once, audit-init, snapshot or test`);
  if (positionals.length > 1 && command !== 'test') throw new UsageError(`unexpected argument "${positionals[1]}"`);
  if ((values['dry-run'] || values.json) && command !== 'once') throw new UsageError('--dry-run and --json only apply to "once"');
  if (values.connect && command !== 'check') throw new UsageError('--connect only applies to "check"');
  if (values.print && command !== 'audit-init') throw new UsageError('--print only applies to "audit-init"');
  if (values.from !== undefined && command !== 'once') throw new UsageError('--from only applies to "once --dry-run"');
  if (values.from !== undefined && !values['dry-run']) throw new UsageError('--from judges a saved snapshot and signals nothing: add --dry-run');
  if (values.target !== undefined && command !== 'snapshot' && values.from === undefined) throw new UsageError('--target only applies to "snapshot" and "once --dry-run --from"');
  if ((values.output !== undefined || values['with-query']) && command !== 'snapshot') throw new UsageError('--output and --with-query only apply to "snapshot"');
  const format = values['log-format'];
  if (format !== undefined && format !== 'json' && format !== 'pretty') throw new UsageError(`--log-format must be json or pretty, got "${format}"`);

  if (command === 'test') {
    if (values.config !== undefined) throw new UsageError('"test" takes no --config: each test file names its config');
    const files = positionals.slice(1);
    if (files.length === 0) throw new UsageError('"test" needs at least one test file: pg-reaper test FILE...');
    const { runTestFiles } = await import('./test.js');
    return runTestFiles(files, { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) });
  }

  const file = values.config ?? process.env.PG_REAPER_CONFIG ?? 'config.yaml';
  // a replay never connects: how to reach the targets is not read (nor the variables in it)
  const loaded = loadConfigFile(file, process.env, { offline: values.from !== undefined });
  if (!loaded.ok) {
    for (const p of loaded.problems) process.stderr.write(formatProblem(p) + '\n');
    process.stderr.write(`${file}: ${plural(loaded.problems.length, 'problem')}, config not loaded\n`);
    return EXIT_USAGE;
  }
  const config = loaded.config;

  if (command === 'check') {
    process.stdout.write(`${file}: ok: ${summary(config)}\n${safety(config)}\n`);
    if (!values.connect) return EXIT_OK;
    const { checkConnections } = await import('./check-connect.js');
    const checks = await checkConnections(config);
    for (const c of checks) process.stdout.write(c.line + '\n');
    return checks.every((c) => c.ok) ? EXIT_OK : EXIT_FAILED;
  }
  if (command === 'snapshot') {
    const names = config.targets.map((t) => t.name);
    const name = values.target ?? (names.length === 1 ? names[0] : undefined);
    if (name === undefined) throw new UsageError(`the config has ${names.length} targets: pass --target NAME (${names.join(', ')})`);
    const target = config.targets.find((t) => t.name === name);
    if (!target) throw new UsageError(`--target ${name}: no such target; the config's targets: ${names.join(', ')}`);
    const { takeSnapshot } = await import('./snapshot.js');
    const taken = await takeSnapshot(config, target, { withQuery: values['with-query'] ?? false, output: values.output });
    process.stderr.write(`${taken.ok ? '' : 'pg-reaper: '}${taken.line}\n`);
    for (const w of taken.warnings) process.stderr.write(`${name}: ${w}\n`);
    return taken.ok ? EXIT_OK : EXIT_FAILED;
  }
  if (command === 'once') {
    // each command loads only what it uses: `once` never starts HTTP, metrics or the scheduler
    const { formatJsonLines, formatTable, replayOnce, runOnce } = await import('./once.js');
    const effective: Config = values['dry-run'] ? { ...config, dryRun: true } : config;
    const { createLogger, logFormatFor } = await import('../log/logger.js');
    const logger = createLogger(config.logLevel, undefined, logFormatFor(format ?? config.logFormat, process.stderr), 2);
    if (values.from !== undefined) {
      const replayed = replayOnce(effective, values.from, values.target, logger);
      if ('usage' in replayed) throw new UsageError(replayed.usage);
      if (!replayed.ok) {
        for (const p of replayed.problems) process.stderr.write(formatProblem(p) + '\n');
        process.stderr.write(`${values.from}: ${plural(replayed.problems.length, 'problem')}, snapshot not judged\n`);
        return EXIT_USAGE;
      }
      process.stdout.write(values.json ? formatJsonLines([replayed.report], config.logQueryText) : formatTable([replayed.report]));
      return EXIT_OK;
    }
    const audit = config.audit ? await startOnceAudit(config, logger) : undefined;
    const started = performance.now();
    const reports = await runOnce(effective, logger, audit);
    // the rows are written before exit, within shutdownTimeout: those that are not make it exit 1
    const lost = audit ? await audit.writer.stop(Math.max(started + config.shutdownTimeout, performance.now() + 2000)) : 0;
    process.stdout.write(values.json ? formatJsonLines(reports, config.logQueryText) : formatTable(reports));
    return reports.every((r) => r.ok) && lost === 0 ? EXIT_OK : EXIT_FAILED;
  }
  if (command === 'audit-init') {
    const { auditInit } = await import('./audit-init.js');
    return auditInit(config, file, values.print === true, (line) => process.stdout.write(line + '\n'), (line) => process.stderr.write(line + '\n'));
  }
  return runDaemon(config, file, format ?? config.logFormat);
}

async function startOnceAudit(config: Config, logger: Logger) {
  const [{ startAuditWriter }, { replicaName }, { hostname }] = await Promise.all([import('../audit/start.js'), import('../audit/row.js'), import('node:os')]);
  return { writer: startAuditWriter(config, { logger }), replica: replicaName(process.env, hostname) };
}

function summary(c: Config): string {
  const audit = c.audit ? `, audit to ${c.audit.table} on ${auditWhere(c)}` : '';
  return `${plural(c.targets.length, 'target')} (${c.targets.map((t) => t.name).join(', ')}), ${plural(c.policies.length, 'policy')} (${c.policies.map((p) => p.name).join(', ')}), schedule "${c.schedule}"${c.timezone ? ` ${c.timezone}` : ''}, dryRun ${c.dryRun ? 'on' : 'off'}${audit}`;
}

/** What no policy touches and how much any config may do: the lines `check` adds to its summary. */
function safety(c: Config): string {
  const rule = (b: { maxActions: number; window: number }) => `${b.maxActions} per ${formatDuration(b.window)}`;
  const policies = c.policies.filter((p) => p.budget).map((p) => `policy ${p.name}: ${rule(p.budget!)}`);
  const target = c.budget ? `at most ${c.budget.maxActions} terminations and cancellations per ${formatDuration(c.budget.window)} on each target` : 'off for the targets (budget: off)';
  return `${protectionSummary(c.protect)}\nbudget: ${[target, ...policies].join('; ')}`;
}

async function runDaemon(config: Config, file: string, format: LogFormat | undefined): Promise<number> {
  const { createLogger, logFormatFor } = await import('../log/logger.js');
  const logger = createLogger(config.logLevel, undefined, logFormatFor(format, process.stdout));
  // Nothing may end the process silently: log it, then exit non-zero so a supervisor restarts us.
  const fatal = (kind: string) => (err: unknown) => {
    logger.fatal({ error: describeError(err) }, `${kind}: exiting`);
    process.exit(EXIT_FAILED);
  };
  process.on('uncaughtException', fatal('uncaught exception'));
  process.on('unhandledRejection', fatal('unhandled rejection'));

  const { startDaemon, ListenError, WebConfigError } = await import('../daemon/daemon.js');
  let daemon;
  try {
    daemon = await startDaemon(config, { logger, version: VERSION, configFile: file });
  } catch (err) {
    if (err instanceof WebConfigError) {
      logger.fatal({ problems: err.problems }, 'cannot start: http.webConfigFile cannot be used');
      return EXIT_USAGE;
    }
    logger.fatal({ error: describeError(err) }, 'cannot start');
    return err instanceof ListenError ? EXIT_CANNOT_LISTEN : EXIT_FAILED;
  }
  return new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        logger.warn({ signal }, 'second signal: exiting now');
        resolve(EXIT_FAILED);
        return;
      }
      logger.info({ signal }, 'shutting down');
      daemon.stop().then(
        () => resolve(EXIT_OK),
        (err: unknown) => {
          logger.error({ error: describeError(err) }, 'error while stopping');
          resolve(EXIT_FAILED);
        },
      );
    };
    // SIGHUP: re-read the file, the way the file watch does. A config with any problem is not
    // applied: the old one keeps running.
    const onHup = () => void daemon.reloadFile('SIGHUP').catch((err: unknown) => logger.error({ error: describeError(err) }, 'config reload failed'));
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    process.on('SIGHUP', onHup);
    // what arrived while starting is applied now
    const early = takeEarlySignals();
    if (early.stop) onSignal(early.stop);
    else if (early.reload) {
      logger.info('SIGHUP arrived while starting: reloading the config now');
      onHup();
    }
  });
}

export function run(argv: string[]): void {
  main(argv).then(
    (code) => process.exit(code),
    (err: unknown) => {
      if (err instanceof UsageError) {
        process.stderr.write(`pg-reaper: ${err.message}\nRun "pg-reaper --help" for usage.\n`);
        process.exit(EXIT_USAGE);
      }
      process.stderr.write(`pg-reaper: ${describeError(err)}\n`);
      process.exit(EXIT_FAILED);
    },
  );
}
