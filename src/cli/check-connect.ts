import { classify } from '../audit/problem.js';
import { openAuditSink, problemContext } from '../audit/sink.js';
import { auditWhere } from '../audit/where.js';
import type { Config } from '../config/schema.js';
import { readSnapshot } from '../db/snapshot.js';
import { protectedCounts } from '../plan/protect.js';
import { openTarget } from '../db/target.js';
import { privilegeWarnings } from '../run/privileges.js';
import { describeError } from '../util/errors.js';
import { plural } from '../util/plural.js';

// `pg-reaper check --connect`: what the reaper can do on each server, one line per target, then
// one indented line per missing privilege with the GRANT that fixes it (a statement to paste).
// ok is false when a target is unreachable or the reaper cannot read other roles' sessions.

export interface ConnectCheck {
  target: string;
  ok: boolean;
  /** The target's line, and below it one indented line per missing privilege. */
  line: string;
}

const yesNo = (b: boolean) => (b ? 'yes' : 'no');

export async function checkConnections(config: Config): Promise<ConnectCheck[]> {
  return Promise.all([
    ...config.targets.map(async (t): Promise<ConnectCheck> => {
      const db = openTarget(t, { applicationName: config.applicationName });
      try {
        const snap = await readSnapshot(db, { withQuery: false, maintenance: config.protect.maintenance });
        const spared = protectedCounts(snap, config.protect, config.applicationName);
        const p = snap.privileges;
        const seen = snap.clients;
        const judged = snap.sessions.filter((s) => s.backendStart !== null).length;
        const signalled = snap.sessions.filter((s) => s.backendStart !== null && s.canSignal).length;
        const readsAll = p.superuser || p.readAllStats;
        const line =
          `${t.name}: PostgreSQL ${snap.server.version} as ${snap.server.user}: superuser ${yesNo(p.superuser)}, pg_read_all_stats ${yesNo(readsAll)}, pg_signal_backend ${yesNo(p.superuser || p.signalBackend)}; ` +
          `sees ${plural(seen, 'client session')}, can judge ${judged} and signal ${signalled}, protects ${spared.backup + spared.maintenance}` +
          (spared.backup + spared.maintenance ? ` (backup ${spared.backup}, maintenance ${spared.maintenance})` : '') +
          privilegeWarnings(p, snap.server.user).map((w) => `\n  ${w}`).join('');
        return { target: t.name, ok: readsAll, line };
      } catch (err) {
        return { target: t.name, ok: false, line: `${t.name}: UNREACHABLE: ${describeError(err)}` };
      } finally {
        await db.close().catch(() => undefined);
      }
    }),
    ...(config.audit ? [checkAudit(config)] : []),
  ]);
}

// The audit table: there, with our columns, and ours to insert into (a probe that writes nothing).
async function checkAudit(config: Config): Promise<ConnectCheck> {
  const sink = openAuditSink(config);
  const where = `audit: ${config.audit!.table} on ${auditWhere(config)}`;
  try {
    await sink.probe();
    return { target: 'audit', ok: true, line: `${where}: pg-reaper can insert into it` };
  } catch (err) {
    const problem = classify(err, problemContext(config));
    return { target: 'audit', ok: false, line: `${where}: ${problem.kind === 'away' ? 'UNREACHABLE: ' : ''}${problem.error}${problem.fix ? `; ${problem.fix}` : ''}` };
  } finally {
    await sink.close().catch(() => undefined);
  }
}
