import type * as Http from 'node:http';
import type * as Https from 'node:https';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Config } from '../config/schema.js';
import { formatWebProblem, loadWebConfig, type WebConfig } from '../config/web-config.js';
import type { Registry } from '../metrics/prom.js';
import { BasicAuth } from './basic-auth.js';
import { DEFAULT_LIMITS, type HttpLimits } from './limits.js';
import { modeChange, WebConfigSource, type WebConfigLog } from './web-config-source.js';

// require, not import: an ESM import of node:http reads every export of the module, and on
// Node 24 its lazy WebSocket getters then load undici, about 4 MiB of resident memory.
const require = createRequire(import.meta.url);
const { createServer } = require('node:http') as typeof Http;

// /metrics for Prometheus, /livez (= /healthz) and /readyz for Kubernetes probes; 404 elsewhere.
// With http.webConfigFile, TLS and basic authentication as the Prometheus exporter-toolkit does
// them; with http.probes.port, the probes (only) on a plain port of their own, for kubelets
// that have neither the credentials nor a client certificate. The deploy manifests are tested
// against these paths.
export const PATHS = { metrics: '/metrics', live: '/livez', liveAlias: '/healthz', ready: '/readyz' } as const;
const PROBES: ReadonlySet<string> = new Set([PATHS.live, PATHS.liveAlias, PATHS.ready]);

export type HttpConfig = Config['http'];

export interface Health {
  live(): boolean;
  ready(): boolean;
}

export interface HttpServer {
  port: number;
  host: string;
  /** Whether the main listener speaks TLS (fixed at start). */
  tls: boolean;
  /** The probes' own listener, with http.probes.port. */
  probes?: { port: number; host: string };
  /** Checks `next` for a reload: the function that applies it, or an Error with one problem per line. */
  prepare(next: HttpConfig): () => void;
  close(): Promise<void>;
}

export interface HttpDeps {
  /** Logs a web config reread at a new connection. */
  webConfigLog: WebConfigLog;
  limits?: HttpLimits;
}

export class WebConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
  }
}

function loadOrThrow(file: string): WebConfig {
  const r = loadWebConfig(file);
  if (!r.ok) throw new WebConfigError(r.problems.map(formatWebProblem));
  return r.web;
}

export async function startHttpServer(config: HttpConfig, registry: Registry, health: Health, deps: HttpDeps): Promise<HttpServer> {
  const limits = deps.limits ?? DEFAULT_LIMITS;
  let source = config.webConfigFile === undefined ? undefined : new WebConfigSource(loadOrThrow(config.webConfigFile), deps.webConfigLog);
  let probesNeedAuth = config.probes.requireAuth;
  const auth = new BasicAuth();
  const initial = source?.current();
  const tls = initial?.tls !== undefined;

  const serveProbe = (path: string, res: Http.ServerResponse): boolean => {
    const probe = path === PATHS.live || path === PATHS.liveAlias ? health.live() : path === PATHS.ready ? health.ready() : undefined;
    if (probe === undefined) return false;
    res.writeHead(probe ? 200 : 503, { 'content-type': 'text/plain' }).end(probe ? 'ok\n' : 'not ready\n');
    return true;
  };
  const notFound = (res: Http.ServerResponse) => res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');

  const handle = async (req: Http.IncomingMessage, res: Http.ServerResponse): Promise<void> => {
    const web = source?.current();
    for (const [name, value] of Object.entries(web?.headers ?? {})) res.setHeader(name, value);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const path = (req.url ?? '/').split('?')[0]!;
    const exempt = PROBES.has(path) && !probesNeedAuth;
    if (web && web.users.size > 0 && !exempt && !(await auth.check(req.headers.authorization, web.users))) {
      res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Basic realm="pg-reaper", charset="UTF-8"' }).end('unauthorized\n');
      return;
    }
    if (path === PATHS.metrics) {
      const body = await registry.metrics().catch(() => undefined);
      if (body === undefined) res.writeHead(500).end('metrics unavailable\n');
      else res.writeHead(200, { 'content-type': registry.contentType }).end(body);
      return;
    }
    if (!serveProbe(path, res)) notFound(res);
  };
  const onRequest = (req: Http.IncomingMessage, res: Http.ServerResponse) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  };

  const serverOptions = {
    headersTimeout: limits.headersTimeout,
    requestTimeout: limits.requestTimeout,
    keepAliveTimeout: limits.keepAliveTimeout,
    connectionsCheckingInterval: limits.checkInterval,
  };
  let server: Http.Server;
  if (initial?.tls) {
    const { createServer: createHttpsServer } = require('node:https') as typeof Https;
    const https = createHttpsServer({ ...serverOptions, ...initial.tls.options, handshakeTimeout: limits.headersTimeout }, onRequest);
    let applied = initial;
    // Before the TLS layer takes the new connection: the certificate, key, CA and client
    // certificate policy of the web config as it is now. server.requestCert and
    // rejectUnauthorized are what tls.Server hands to each new TLSSocket.
    https.prependListener('connection', () => {
      const web = source?.current();
      if (!web?.tls || web === applied) return;
      https.setSecureContext(web.tls.options);
      Object.assign(https, { requestCert: web.tls.options.requestCert, rejectUnauthorized: web.tls.options.rejectUnauthorized });
      applied = web;
    });
    // the two policies Node has no option for: a certificate required but not verified, or
    // verified only when given
    https.prependListener('secureConnection', (socket: TLSSocket) => {
      const clientAuth = applied.tls?.clientAuth;
      const given = Object.keys(socket.getPeerCertificate() ?? {}).length > 0;
      if ((clientAuth === 'RequireAnyClientCert' && !given) || (clientAuth === 'VerifyClientCertIfGiven' && given && !socket.authorized)) socket.destroy();
    });
    server = https;
  } else {
    server = createServer(serverOptions, onRequest);
  }
  limit(server, limits);

  let probeServer: Http.Server | undefined;
  if (config.probes.port !== undefined) {
    probeServer = createServer(serverOptions, (req, res) => {
      const path = (req.url ?? '/').split('?')[0]!;
      if (req.method !== 'GET' && req.method !== 'HEAD') res.writeHead(405, { allow: 'GET, HEAD' }).end();
      else if (!serveProbe(path, res)) notFound(res);
    });
    limit(probeServer, limits);
  }

  const listen = (s: Http.Server, port: number, host: string) =>
    new Promise<AddressInfo>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, host, () => {
        s.off('error', reject);
        resolve(s.address() as AddressInfo);
      });
    });
  const closeOne = (s: Http.Server) =>
    new Promise<void>((resolve) => {
      if (!s.listening) return resolve();
      s.close(() => resolve());
      s.closeAllConnections();
    });

  const address = await listen(server, config.port, config.host);
  let probeAddress: AddressInfo | undefined;
  if (probeServer) {
    try {
      probeAddress = await listen(probeServer, config.probes.port!, config.probes.host ?? config.host);
    } catch (err) {
      await closeOne(server);
      throw Object.assign(err as Error, { listenHost: config.probes.host ?? config.host, listenPort: config.probes.port });
    }
  }

  return {
    port: address.port,
    host: address.address,
    tls,
    ...(probeAddress ? { probes: { port: probeAddress.port, host: probeAddress.address } } : {}),
    prepare(next) {
      const web = next.webConfigFile === undefined ? undefined : loadOrThrow(next.webConfigFile);
      const problems = web ? modeChange({ tls }, web) : tls ? [`http.webConfigFile: removed: turning TLS off takes a restart; the listener keeps serving HTTPS`] : [];
      if (problems.length) throw new WebConfigError(problems);
      return () => {
        if (!web) source = undefined;
        else if (source) source.replace(web);
        else source = new WebConfigSource(web, deps.webConfigLog);
        probesNeedAuth = next.probes.requireAuth;
      };
    },
    close: async () => {
      await Promise.all([closeOne(server), ...(probeServer ? [closeOne(probeServer)] : [])]);
    },
  };
}

// Limits for a scrape endpoint: scrapers send a whole request at once and wait for the answer,
// so a client that trickles its headers, says nothing, or holds a connection open between
// scrapes is closed; past maxConnections new connections are refused at once.
function limit(server: Http.Server, limits: HttpLimits): void {
  server.maxConnections = limits.maxConnections;
  server.maxRequestsPerSocket = limits.maxRequestsPerSocket;
  server.timeout = limits.idleTimeout;
  server.keepAliveTimeout = limits.keepAliveTimeout;
}
