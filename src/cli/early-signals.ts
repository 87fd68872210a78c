// Imported first by cli.ts, before any other module loads: from here on SIGHUP, SIGTERM and SIGINT
// are caught and remembered, so a signal that arrives while the daemon is still starting is
// applied once it is up instead of ending the process (SIGHUP's default is to terminate: exit
// 129). Commands other than `run` hand the signals back at once.

const STOPS = ['SIGTERM', 'SIGINT'] as const;

export interface EarlySignals {
  /** A SIGHUP arrived before the daemon was up. */
  reload: boolean;
  /** The first SIGTERM or SIGINT that arrived before the daemon was up. */
  stop?: NodeJS.Signals;
}

const seen: EarlySignals = { reload: false };
const onHup = () => void (seen.reload = true);
const onStop = (signal: NodeJS.Signals) => void (seen.stop ??= signal);
process.on('SIGHUP', onHup);
for (const s of STOPS) process.on(s, onStop);

/** Stops catching early and returns what arrived. The caller installs its own handlers first. */
export function takeEarlySignals(): EarlySignals {
  process.off('SIGHUP', onHup);
  for (const s of STOPS) process.off(s, onStop);
  return { ...seen };
}

/** For commands without handlers of their own: default behaviour again, and a stop that arrived is honoured. */
export function releaseEarlySignals(): void {
  const { stop } = takeEarlySignals();
  if (stop) process.kill(process.pid, stop);
}
