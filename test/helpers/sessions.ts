import { aggregatesOf, type Session, type Snapshot } from '../../src/db/session.js';

// Snapshots built by hand for the pure planner: a fixed server clock and sessions whose ages are
// given in seconds before it.

export const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);

let nextPid = 1000;

export function session(opts: Partial<Session> & { idleFor?: number; activeFor?: number; inTxFor?: number; xactFor?: number; connectedFor?: number } = {}): Session {
  const { idleFor, activeFor, inTxFor, xactFor, connectedFor, ...rest } = opts;
  const ago = (s: number | undefined) => (s === undefined ? null : NOW - s * 1000);
  const state = rest.state ?? (activeFor !== undefined ? 'active' : inTxFor !== undefined ? 'idle in transaction' : 'idle');
  const since = idleFor ?? activeFor ?? inTxFor ?? 1;
  const backendStartMs = ago(connectedFor ?? Math.max(since, xactFor ?? 0) + 1);
  return {
    pid: nextPid++,
    user: 'app',
    database: 'shop',
    application: 'web',
    clientAddr: '10.1.2.3',
    local: false,
    state,
    backendStartMs,
    xactStartMs: ago(xactFor ?? (inTxFor !== undefined ? inTxFor : activeFor)),
    queryStartMs: ago(activeFor ?? since),
    stateChangeMs: ago(since),
    backendStart: `bs-${nextPid}`,
    stateChange: `sc-${nextPid}`,
    queryStart: `qs-${nextPid}`,
    xactStart: `xs-${nextPid}`,
    superuser: false,
    canSignal: true,
    blockedBy: null,
    waitStartMs: null,
    listener: false,
    maintenance: null,
    queryId: null,
    ...rest,
  };
}

export function snapshot(sessions: Session[]): Snapshot {
  return { nowMs: NOW, selfPid: 1, privileges: { superuser: false, signalBackend: true, readAllStats: true }, server: { version: '18.4', versionNum: 180004, user: 'reaper' }, clientSlots: 97, sessions, ...aggregatesOf(sessions, NOW) };
}
