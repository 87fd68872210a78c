import pg from 'pg';

// A separate process that holds the benchmark's client sessions, so that opening, holding and
// losing them costs the measured process nothing. Driven over IPC by bench/lib/holder.ts.

interface OpenMessage {
  kind: 'open';
  id: number;
  url: string;
  count: number;
  application: string;
  concurrency: number;
}
type Message = OpenMessage | { kind: 'drop'; id: number } | { kind: 'close'; id: number; application: string; count: number } | { kind: 'exit' };

// each open client and its application_name
const clients = new Map<pg.Client, string>();
const send = (m: unknown) => process.send!(m);

async function open(m: OpenMessage): Promise<void> {
  const pids: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next < m.count) {
      next++;
      const c = new pg.Client({ connectionString: m.url, application_name: m.application });
      c.on('error', () => undefined);
      c.on('end', () => {
        clients.delete(c);
        send({ kind: 'gone', pid: (c as unknown as { processID: number }).processID, at: Date.now() });
      });
      await c.connect();
      await c.query('SELECT 1');
      clients.set(c, m.application);
      pids.push((c as unknown as { processID: number }).processID);
    }
  };
  await Promise.all(Array.from({ length: Math.min(m.concurrency, m.count) }, worker));
  send({ kind: 'opened', id: m.id, pids, at: Date.now() });
}

process.on('message', (m: Message) => {
  if (m.kind === 'open') open(m).catch((err: Error) => send({ kind: 'failed', id: m.id, error: err.message }));
  else if (m.kind === 'drop') {
    Promise.all([...clients.keys()].map((c) => c.end().catch(() => undefined))).then(() => send({ kind: 'dropped', id: m.id }));
  } else if (m.kind === 'close') {
    // the oldest `count` sessions of one application
    const some = [...clients].filter(([, app]) => app === m.application).slice(0, m.count).map(([c]) => c);
    Promise.all(some.map((c) => c.end().catch(() => undefined))).then(() => send({ kind: 'closed', id: m.id, count: some.length }));
  } else process.exit(0);
});
send({ kind: 'ready' });
