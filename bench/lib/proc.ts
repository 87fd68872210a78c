import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

// CPU time and memory of other processes on this machine, from /proc, at a resolution finer than
// the 10 ms clock ticks of /proc/PID/stat: /proc/PID/schedstat's first field is the time the
// scheduler has run the task, in nanoseconds.

/** CPU ns of one task (a PostgreSQL backend is one thread). */
export function taskCpuNs(pid: number, tid = pid): number {
  return Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
}

/**
 * CPU ns of a whole process: the sum over its threads (Node's main thread, V8's GC helpers and
 * platform workers, libuv's pool). Threads that exited take their time with them; Node's live
 * for the whole process.
 */
export function processCpuNs(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += taskCpuNs(pid, Number(tid));
    } catch {
      // the thread exited between the listing and the read
    }
  }
  return ns;
}

const state = (pid: number) => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]![0];

/**
 * CPU ns of a backend once it has gone back to sleep: a backend that just sent its result may
 * still be on the CPU (finishing the statement, then waiting on its socket), and the scheduler
 * adds a running task's time only when it leaves the CPU.
 */
export async function settledCpuNs(pid: number, timeoutMs = 200): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  while (state(pid) === 'R' && performance.now() < deadline) await sleep(0);
  return taskCpuNs(pid);
}

export interface Memory {
  /** Resident set (VmRSS), MiB. */
  rss: number;
  /** Anonymous memory (smaps_rollup Anonymous): heap, stacks, malloc arenas, MiB. */
  anon: number;
  /** Pages only this process has written (smaps_rollup Private_Dirty), MiB. */
  privateDirty: number;
  /** File-backed resident pages (mostly the node binary's code, shared and reclaimable), MiB. */
  file: number;
  /** Proportional share (Pss), MiB. */
  pss: number;
}

export function memory(pid: number): Memory {
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (text: string, field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) / 1024;
  return { rss: kb(status, 'VmRSS'), anon: kb(rollup, 'Anonymous'), privateDirty: kb(rollup, 'Private_Dirty'), file: kb(status, 'RssFile'), pss: kb(rollup, 'Pss') };
}
