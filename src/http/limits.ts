// Limits of the HTTP listeners, suited to a scrape endpoint: Prometheus and the kubelet send a
// whole request at once, read a small answer within a second, and keep a connection open at
// most between two scrapes. Anyone slower is not a scraper. Tests pass smaller ones.

export interface HttpLimits {
  /** The TLS handshake and the request headers must be complete this long after the connection (or the previous response). */
  headersTimeout: number;
  /** The whole request must be in this long after it began. */
  requestTimeout: number;
  /** A kept-alive connection with no new request is closed after this. */
  keepAliveTimeout: number;
  /** A connection on which nothing moves in either direction is closed after this. */
  idleTimeout: number;
  /** How often the header and request deadlines are checked (Node's default is 30 s). */
  checkInterval: number;
  /** Connections open at once, per listener; more are closed as they arrive. */
  maxConnections: number;
  /** Requests on one kept-alive connection; then it is closed after the response. */
  maxRequestsPerSocket: number;
}

export const DEFAULT_LIMITS: HttpLimits = {
  headersTimeout: 10_000,
  requestTimeout: 15_000,
  keepAliveTimeout: 5_000,
  idleTimeout: 30_000,
  checkInterval: 1_000,
  maxConnections: 64,
  maxRequestsPerSocket: 100,
};
