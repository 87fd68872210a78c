import type * as Http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { Registry } from '../metrics/prom.js';

// require, not import: an ESM import of node:http reads every export of the module, and on
// Node 24 its lazy WebSocket getters then load undici, about 4 MiB of resident memory.
const { createServer } = createRequire(import.meta.url)('node:http') as typeof Http;

// /metrics for Prometheus, /livez (= /healthz) and /readyz for Kubernetes probes; 404 elsewhere.
// The deploy manifests are tested against these.
export const PATHS = { metrics: '/metrics', live: '/livez', liveAlias: '/healthz', ready: '/readyz' } as const;

export interface Health {
  live(): boolean;
  ready(): boolean;
}

export interface HttpServer {
  port: number;
  host: string;
  close(): Promise<void>;
}

export async function startHttpServer(host: string, port: number, registry: Registry, health: Health): Promise<HttpServer> {
  const server: Http.Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === PATHS.metrics) {
      registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
        () => res.writeHead(500).end('metrics unavailable\n'),
      );
      return;
    }
    const probe = path === PATHS.live || path === PATHS.liveAlias ? health.live() : path === PATHS.ready ? health.ready() : undefined;
    if (probe === undefined) res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    else res.writeHead(probe ? 200 : 503, { 'content-type': 'text/plain' }).end(probe ? 'ok\n' : 'not ready\n');
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return {
    port: address.port,
    host: address.address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
