import { performance } from 'node:perf_hooks';
import type { Snapshot } from '../db/session.js';
import { judgeOffline } from '../run/judge.js';
import type { RunReport, RunSettings } from '../run/run-target.js';

// `once --dry-run --from SNAPSHOT`: a saved snapshot judged offline, as a run report that the
// live `once` prints and logs with the same code. The plan is the daemon's, the outcomes the
// executor's dry-run rule; nothing connects.

export function replayRun(snapshot: Snapshot, settings: RunSettings): RunReport {
  const started = performance.now();
  const judged = judgeOffline(snapshot, settings);
  const planMs = performance.now() - started;
  return {
    target: settings.target,
    ok: true,
    finishedAtMs: Date.now(),
    durationSeconds: planMs / 1000,
    snapshot,
    results: judged.results,
    decisions: judged.decisions,
    ...(judged.notActedOn ? { notActedOn: judged.notActedOn } : {}),
    timings: { snapshotMs: 0, planMs, executeMs: 0 },
  };
}
