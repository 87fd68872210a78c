import type { RunReport } from './run-target.js';

// A session the reaper may not signal (a superuser's, say) that breaks a policy is `denied` at
// every run for as long as it lives. It is reported once: the first run that denies it logs it
// at warn and counts it; later runs mark the result `repeated` (logged at debug, not counted), so
// PgReaperActionsDenied fires for a new session and resolves. A session is known by its pid and
// backend_start; the snapshot is asked for the remembered pids (watch) to learn whether they
// still live, and a session gone, or a pid reused by another, is forgotten.

export class DeniedSessions {
  /** Per target: pid → backend_start of the sessions reported as denied. */
  private readonly known = new Map<string, Map<number, string>>();

  /** The pids the target's next snapshot should send as rows. */
  watch(target: string): number[] {
    return [...(this.known.get(target)?.keys() ?? [])];
  }

  /** Marks the denied results of sessions reported before as repeated, and remembers the new ones. */
  observe(report: RunReport): void {
    const snap = report.snapshot;
    // a run that read nothing (failed, stood by) says nothing about which sessions live
    if (!snap) return;
    const before = this.known.get(report.target) ?? new Map<number, string>();
    const now = new Map<number, string>();
    // still alive: the same pid with the same backend_start among the rows
    for (const s of snap.sessions) {
      const since = before.get(s.pid);
      if (since !== undefined && since === s.backendStart) now.set(s.pid, since);
    }
    for (const r of report.results) {
      if (r.outcome !== 'denied') continue;
      const s = r.decision.session;
      if (s.backendStart === null) continue;
      if (now.get(s.pid) === s.backendStart) r.repeated = true;
      else now.set(s.pid, s.backendStart);
    }
    if (now.size) this.known.set(report.target, now);
    else this.known.delete(report.target);
  }

  forget(target: string): void {
    this.known.delete(target);
  }
}
