import type { Logger } from '../log/logger.js';
import { privilegeWarnings } from './privileges.js';
import { targetInfoLabels } from './run-metrics.js';
import type { RunReport } from './run-target.js';

// What an operator needs to hear about a target once, not at every run: what the reaper can do
// there (server version, privileges, the GRANT that is missing), that it went down and why, and
// that it came back and after how long. The daemon keeps one for its whole life, across reloads.

interface Seen {
  info?: string;
  downSinceMs?: number;
  /** Whether the last run that reached the target acted (held the lock) or stood by. */
  leader?: boolean;
}

export class TargetWatch {
  private readonly seen = new Map<string, Seen>();

  constructor(
    private readonly logger: Logger,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Logs what changed; true when the run's own failure line adds nothing (the target is known down). */
  observe(report: RunReport): { quietFailure: boolean } {
    const target = report.target;
    const seen = this.seen.get(target) ?? {};
    this.seen.set(target, seen);
    const snap = report.snapshot;
    if (!snap && !report.standby) {
      if (seen.downSinceMs !== undefined) return { quietFailure: true };
      seen.downSinceMs = this.clock();
      this.logger.error({ target, error: report.error }, 'target is down: cannot read pg_stat_activity; every run keeps trying, and its recovery is logged');
      return { quietFailure: true };
    }
    if (seen.downSinceMs !== undefined) {
      this.logger.info({ target, downSeconds: Math.round((this.clock() - seen.downSinceMs) / 100) / 10 }, 'target is back up');
      seen.downSinceMs = undefined;
    }
    const leader = !report.standby;
    if (seen.leader !== leader) {
      if (seen.leader !== undefined || !leader) this.logger.info({ target }, leader ? 'took the lock: this replica now acts on the target' : 'standing by: another replica holds the lock of this target');
      seen.leader = leader;
    }
    if (!snap) return { quietFailure: false };
    const info = targetInfoLabels(target, snap);
    const key = JSON.stringify(info);
    if (seen.info !== key) {
      seen.info = key;
      const { server_version, superuser, read_all_stats, signal_backend } = info;
      this.logger.info({ target, serverVersion: server_version, role: snap.server.user, superuser: superuser === 'true', readAllStats: read_all_stats === 'true', signalBackend: signal_backend === 'true' }, `connected to PostgreSQL ${server_version} as ${snap.server.user}`);
      for (const w of privilegeWarnings(snap.privileges, snap.server.user)) this.logger.warn({ target }, w);
    }
    return { quietFailure: false };
  }

  forget(target: string): void {
    this.seen.delete(target);
  }
}
