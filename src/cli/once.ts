import { auditRows } from '../audit/row.js';
import type { AuditWriter } from '../audit/writer.js';
import type { Config } from '../config/schema.js';
import { formatDuration } from '../config/duration.js';
import { entryOf } from '../reasons/table.js';
import { UNITS } from '../reasons/units.js';
import { openTarget } from '../db/target.js';
import type { Logger } from '../log/logger.js';
import { plural } from '../util/plural.js';
import { actionFields, logRun } from '../run/log-lines.js';
import { privilegeWarnings } from '../run/privileges.js';
import { runTarget, settingsFor, systemDeps, type RunReport } from '../run/run-target.js';
import type { ConfigProblem } from '../config/load.js';
import { replayRun } from '../replay/replay.js';
import { serverFacts } from '../replay/session-format.js';
import { loadSessionsFile, replayedSnapshot } from '../replay/snapshot-file.js';

// `pg-reaper once`: every target once, in parallel; decisions as a table or JSON lines. With
// audit, each target's rows are queued as soon as its run ends.

export async function runOnce(config: Config, logger: Logger, audit?: { writer: AuditWriter; replica: string }): Promise<RunReport[]> {
  return Promise.all(
    config.targets.map(async (t) => {
      const db = openTarget(t, { applicationName: config.applicationName });
      try {
        const report = await runTarget(settingsFor(config, t.name), systemDeps(db));
        if (report.snapshot) for (const w of privilegeWarnings(report.snapshot.privileges, report.snapshot.server.user)) logger.warn({ target: t.name }, w);
        logRun(logger, report, config.logQueryText);
        audit?.writer.enqueue(auditRows(report, { replica: audit.replica, logQueryText: config.logQueryText }));
        return report;
      } finally {
        await db.close().catch(() => undefined);
      }
    }),
  );
}

export type Replayed = { ok: true; report: RunReport } | { ok: false; problems: ConfigProblem[] } | { ok: false; usage: string };

/**
 * `once --dry-run --from FILE`: a snapshot file judged offline with the policies of one target:
 * --target, else the target the snapshot was read from, else the config's only target.
 */
export function replayOnce(config: Config, file: string, target: string | undefined, logger: Logger): Replayed {
  const loaded = loadSessionsFile(file);
  if (!loaded.ok) return loaded;
  const doc = loaded.value;
  const names = config.targets.map((t) => t.name);
  const known = `the config's targets: ${names.join(', ')}`;
  let name = target;
  if (name !== undefined) {
    if (!names.includes(name)) return { ok: false, usage: `--target ${name}: no such target; ${known}` };
  } else if (doc.target !== undefined) {
    if (!names.includes(doc.target)) return { ok: false, usage: `${file} was taken of target "${doc.target}", which the config does not have: pass --target NAME (${known})` };
    name = doc.target;
  } else if (names.length === 1) name = names[0]!;
  else return { ok: false, usage: `${file} does not say its target and the config has ${names.length}: pass --target NAME (${known})` };
  const snapshot = replayedSnapshot(doc.sessions, serverFacts(doc.server), doc.takenAtMs ?? Date.now());
  const report = replayRun(snapshot, settingsFor(config, name));
  logRun(logger, report, config.logQueryText);
  return { ok: true, report };
}

export function formatJsonLines(reports: readonly RunReport[], logQueryText: boolean): string {
  return reports.flatMap((r) => r.results.map((a) => JSON.stringify(actionFields(a, logQueryText)) + '\n')).join('');
}

export function formatTable(reports: readonly RunReport[]): string {
  const header = ['TARGET', 'POLICY', 'REASON', 'ACTION', 'OUTCOME', 'PID', 'USER', 'DATABASE', 'APPLICATION', 'CLIENT', 'AGE', 'LIMIT'];
  const rows = reports.flatMap((r) =>
    r.results.map((a) => {
      const d = a.decision;
      const s = d.session;
      const unit = UNITS[entryOf(d.reason).unit];
      return [d.target, d.policy, d.reason, d.action, a.outcome, String(s.pid), s.user ?? '', s.database ?? '', s.application, s.local ? 'local' : (s.clientAddr ?? ''), unit.format(d.age), unit.format(d.threshold)];
    }),
  );
  const lines: string[] = [];
  if (rows.length) {
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
    for (const row of [header, ...rows]) lines.push(row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
  }
  for (const r of reports) {
    const state = r.ok ? `ok, ${plural(r.snapshot?.clients ?? 0, 'session')}, ${plural(r.results.length, 'decision')}` : `FAILED: ${r.error}`;
    lines.push(`${r.target}: ${state} (${formatDuration(r.durationSeconds * 1000)})`);
  }
  return lines.join('\n') + '\n';
}
