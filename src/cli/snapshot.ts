import { writeFileSync } from 'node:fs';
import type { Config, TargetConfig } from '../config/schema.js';
import { readSnapshot } from '../db/snapshot.js';
import { openTarget } from '../db/target.js';
import { renderSnapshot } from '../replay/snapshot-file.js';
import { privilegeWarnings } from '../run/privileges.js';
import { describeError } from '../util/errors.js';
import { plural } from '../util/plural.js';

// `pg-reaper snapshot`: every client session of one target as the planner sees it (no
// pre-filter, those our role cannot see included), written as a snapshot file that `once
// --dry-run --from` replays and a policy test reads. Query text only when asked for. The file
// keeps user and application names: edit it before sharing it if they matter.

export interface SnapshotTaken {
  ok: boolean;
  /** One line for stderr. */
  line: string;
  /** What the reaper's role cannot see or signal, with the GRANT that fixes it. */
  warnings: string[];
}

export async function takeSnapshot(config: Config, target: TargetConfig, opts: { withQuery: boolean; output?: string | undefined }): Promise<SnapshotTaken> {
  const db = openTarget(target, { applicationName: config.applicationName });
  let text: string;
  let sessions: number;
  let warnings: string[];
  try {
    const snap = await readSnapshot(db, { withQuery: opts.withQuery });
    text = renderSnapshot(snap, target.name);
    sessions = snap.sessions.length;
    warnings = privilegeWarnings(snap.privileges, snap.server.user);
  } catch (err) {
    return { ok: false, line: `${target.name}: cannot read a snapshot: ${describeError(err)}`, warnings: [] };
  } finally {
    await db.close().catch(() => undefined);
  }
  if (opts.output === undefined) {
    process.stdout.write(text);
    return { ok: true, line: `${target.name}: ${plural(sessions, 'session')}`, warnings };
  }
  try {
    // it holds user names, addresses and maybe query text: readable by its owner only
    writeFileSync(opts.output, text, { mode: 0o600 });
  } catch (err) {
    return { ok: false, line: `cannot write ${opts.output}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, warnings };
  }
  return { ok: true, line: `${target.name}: wrote ${plural(sessions, 'session')} to ${opts.output}`, warnings };
}
