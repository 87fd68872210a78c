import { z } from 'zod';
import { describeIssue, locateIssues, parseYamlSource, readText, type ConfigProblem, type Issue } from '../config/load.js';
import { aggregatesOf, type Session, type Snapshot } from '../db/session.js';
import { fromSession, serverFacts, serverFactsSchema, sessionSchema, toSession, versionNum, type ServerFacts, type SessionFormat } from './session-format.js';

// A snapshot file: `pg-reaper snapshot` writes one, `once --dry-run --from` replays it, and a
// policy test reads its sessions (`sessionsFrom`). One JSON document:
//   { "takenAt": <server clock, ISO 8601>, "target": <name>, "server": { <facts> }, "sessions": [ ... ] }
// with the sessions in the written session format, their ages before takenAt.

export const snapshotDocumentSchema = z.strictObject({
  takenAt: z
    .string()
    .refine((v) => Number.isFinite(Date.parse(v)), { message: 'expected an ISO 8601 time like "2026-11-22T04:30:52.101Z"' })
    .optional(),
  target: z.string().min(1).optional(),
  server: serverFactsSchema.optional(),
  sessions: z.array(sessionSchema),
});

export const SNAPSHOT_DESCRIPTIONS: Record<string, string> = {
  takenAt: "The server's clock when the snapshot was read: every age is measured before it.",
  target: 'The target it was read from: once --from judges it with that target\'s policies unless --target says otherwise.',
  server: 'Facts about the server and the reaper.',
  sessions: 'Every client session but the reaper\'s own.',
};

export interface SessionsFile {
  takenAtMs?: number;
  target?: string;
  server?: z.output<typeof serverFactsSchema>;
  sessions: SessionFormat[];
}

/** Issues for pids listed twice, at the later one. */
export function duplicatePids(sessions: readonly { pid: number }[], path: readonly PropertyKey[]): Issue[] {
  const seen = new Set<number>();
  const issues: Issue[] = [];
  sessions.forEach((s, i) => {
    if (seen.has(s.pid)) issues.push({ path: [...path, i, 'pid'], message: `pid ${s.pid} is listed twice` });
    seen.add(s.pid);
  });
  return issues;
}

/** Reads a snapshot file (JSON, or YAML in the same shape): its sessions, or every problem with FILE:LINE:COL. */
export function loadSessionsFile(file: string): { ok: true; value: SessionsFile } | { ok: false; problems: ConfigProblem[] } {
  const read = readText(file, 'write one with "pg-reaper snapshot -o FILE"');
  if ('problem' in read) return { ok: false, problems: [read.problem] };
  // A snapshot of thousands of sessions parses as JSON in milliseconds, as YAML with positions in
  // seconds: positions are only needed to report a problem.
  let parsed = snapshotDocumentSchema.safeParse(jsonOrUndefined(read.text), { error: describeIssue });
  if (!parsed.success || duplicatePids(parsed.data.sessions, ['sessions']).length) {
    const { source, problems } = parseYamlSource(read.text, file);
    if (problems.length) return { ok: false, problems };
    parsed = snapshotDocumentSchema.safeParse(source.doc.toJS() ?? {}, { error: describeIssue });
    const issues = parsed.success ? duplicatePids(parsed.data.sessions, ['sessions']) : parsed.error.issues;
    if (!parsed.success || issues.length) return { ok: false, problems: locateIssues(source, issues) };
  }
  const d = parsed.data;
  return {
    ok: true,
    value: {
      ...(d.takenAt !== undefined ? { takenAtMs: Date.parse(d.takenAt) } : {}),
      ...(d.target !== undefined ? { target: d.target } : {}),
      ...(d.server !== undefined ? { server: d.server } : {}),
      sessions: d.sessions,
    },
  };
}

function jsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The Snapshot the planner judges: these sessions at `nowMs`, and what the server facts say. */
export function replayedSnapshot(sessions: readonly SessionFormat[], facts: ServerFacts, nowMs: number): Snapshot {
  const list: Session[] = sessions.map((s) => toSession(s, nowMs, facts));
  return {
    nowMs,
    selfPid: 0,
    privileges: { superuser: facts.reaperSuperuser, signalBackend: true, readAllStats: list.every((s) => s.backendStart !== null) },
    server: { version: facts.version, versionNum: versionNum(facts.version), user: 'pg-reaper' },
    clientSlots: facts.clientSlots,
    sessions: list,
    // the connections are the listed sessions (and the reaper's own, which the planner adds)
    ...aggregatesOf(list, nowMs),
  };
}

/** The facts a live snapshot gives. */
export function factsOf(snapshot: Snapshot): ServerFacts {
  return serverFacts({ clientSlots: snapshot.clientSlots, version: snapshot.server.version, reaperSuperuser: snapshot.privileges.superuser });
}

/** The snapshot file of a live, complete snapshot: one session per line, so it diffs and edits well. */
export function renderSnapshot(snapshot: Snapshot, target: string): string {
  const facts = factsOf(snapshot);
  const sessions = [...snapshot.sessions].sort((a, b) => a.pid - b.pid).map((s) => '    ' + JSON.stringify(fromSession(s, snapshot.nowMs, facts)));
  return [
    '{',
    `  "takenAt": ${JSON.stringify(new Date(snapshot.nowMs).toISOString())},`,
    `  "target": ${JSON.stringify(target)},`,
    `  "server": ${JSON.stringify(facts)},`,
    sessions.length ? `  "sessions": [\n${sessions.join(',\n')}\n  ]` : '  "sessions": []',
    '}',
    '',
  ].join('\n');
}
