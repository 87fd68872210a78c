import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface Proxy {
  port: number;
  /** Taken down: connections refused, and those open cut (both ends see the socket close). */
  down(): Promise<void>;
  up(): Promise<void>;
  /**
   * A network partition: nothing is forwarded any more, either way, and nothing is closed (no FIN,
   * no RST) on either side. Open connections go silent; new ones are accepted and never answered.
   */
  partition(): void;
  close(): Promise<void>;
}

/** A TCP proxy on 127.0.0.1 to a local port that can be taken down (connections refused and cut) and brought back on the same port, or partitioned. */
export async function startProxy(toPort: number): Promise<Proxy> {
  const sockets = new Set<Socket>();
  const pairs = new Set<[Socket, Socket]>();
  let server: Server | undefined;
  let port = 0;
  let partitioned = false;
  const keep = (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
  };
  const up = () =>
    new Promise<void>((resolve) => {
      server = createServer((client) => {
        keep(client);
        if (partitioned) return;
        const upstream = createConnection(toPort, '127.0.0.1');
        keep(upstream);
        const pair: [Socket, Socket] = [client, upstream];
        pairs.add(pair);
        client.on('close', () => pairs.delete(pair));
        client.pipe(upstream).pipe(client);
      });
      server.listen(port, '127.0.0.1', () => {
        port = (server!.address() as { port: number }).port;
        resolve();
      });
    });
  const down = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      if (server) server.close(() => resolve());
      else resolve();
      server = undefined;
    });
  const partition = () => {
    partitioned = true;
    for (const [client, upstream] of pairs) {
      // no more bytes either way; an end from one side (the server ending the session) is not
      // passed on to the other, as no packet would cross a partition
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
  };
  await up();
  return { port, up, down, partition, close: down };
}
