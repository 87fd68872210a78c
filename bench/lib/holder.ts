import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

// The parent's handle on the session-holding child process.

export interface Holder {
  /** Opens `count` idle sessions; resolves with their pids once all have run one query. */
  open(url: string, count: number, application: string): Promise<{ pids: number[]; at: number }>;
  /** Closes whatever sessions are still open. */
  drop(): Promise<void>;
  /** Closes the oldest `count` open sessions of one application. */
  closeSome(application: string, count: number): Promise<void>;
  /** pid → Date.now() when the client saw its session end. */
  gone: Map<number, number>;
  close(): Promise<void>;
}

export async function startHolder(): Promise<Holder> {
  const child: ChildProcess = fork(join(import.meta.dirname, 'holder-child.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const gone = new Map<number, number>();
  const waiting = new Map<number, (m: Record<string, unknown>) => void>();
  let nextId = 1;
  await new Promise<void>((resolve) => {
    child.on('message', (m: Record<string, unknown>) => {
      if (m.kind === 'ready') resolve();
      else if (m.kind === 'gone') gone.set(m.pid as number, m.at as number);
      else waiting.get(m.id as number)?.(m);
    });
  });
  const call = (m: Record<string, unknown>) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const id = nextId++;
      waiting.set(id, (reply) => {
        waiting.delete(id);
        if (reply.kind === 'failed') reject(new Error(String(reply.error)));
        else resolve(reply);
      });
      child.send({ ...m, id });
    });
  return {
    gone,
    open: async (url, count, application) => {
      const r = await call({ kind: 'open', url, count, application, concurrency: 16 });
      return { pids: r.pids as number[], at: r.at as number };
    },
    drop: async () => {
      await call({ kind: 'drop' });
    },
    closeSome: async (application, count) => {
      await call({ kind: 'close', application, count });
    },
    close: async () => {
      child.send({ kind: 'exit' });
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}
