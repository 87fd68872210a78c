import { statSync } from 'node:fs';
import { formatWebProblem, loadWebConfig, type WebConfig } from '../config/web-config.js';

// The web config in force, checked at each new connection: a stat of the file and of every file
// it names (a few microseconds), and a full reread only when one of them changed, as when
// cert-manager renews a certificate or an operator adds a scrape user. A change that does not
// load keeps the last good config in force and is logged once; so does one that would turn TLS
// on or off, which the listener cannot do while it runs (that takes a restart).

export interface WebConfigLog {
  applied(file: string): void;
  rejected(file: string, problems: string[]): void;
}

export class WebConfigSource {
  private signature: string;
  private rejectedSignature: string | undefined;

  constructor(
    private web: WebConfig,
    private readonly log: WebConfigLog,
  ) {
    this.signature = signatureOf(web.inputs);
  }

  get file(): string {
    return this.web.file;
  }

  /** The config for a new connection: the one in force, reread first if any of its files changed. */
  current(): WebConfig {
    const now = signatureOf(this.web.inputs);
    if (now === this.signature || now === this.rejectedSignature) return this.web;
    const next = loadWebConfig(this.web.file);
    const problems = next.ok ? modeChange(this.web, next.web) : next.problems.map(formatWebProblem);
    if (next.ok && problems.length === 0) {
      this.web = next.web;
      this.signature = signatureOf(next.web.inputs);
      this.rejectedSignature = undefined;
      this.log.applied(this.web.file);
    } else {
      this.rejectedSignature = now;
      this.log.rejected(this.web.file, problems);
    }
    return this.web;
  }

  /** Replaces the config (a reload); the caller checked it with modeChange. */
  replace(web: WebConfig): void {
    this.web = web;
    this.signature = signatureOf(web.inputs);
    this.rejectedSignature = undefined;
  }
}

/** Why `next` cannot replace `current` on a running listener, as problem lines (none: it can). */
export function modeChange(current: { tls?: unknown }, next: WebConfig): string[] {
  if (!current.tls === !next.tls) return [];
  return [`${next.file}: tls_server_config ${next.tls ? 'added' : 'removed'}: turning TLS on or off takes a restart; the listener keeps serving ${current.tls ? 'HTTPS' : 'plain HTTP'}`];
}

function signatureOf(files: string[]): string {
  return files
    .map((f) => {
      try {
        const s = statSync(f, { bigint: true });
        return `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
      } catch (err) {
        return (err as NodeJS.ErrnoException).code ?? 'error';
      }
    })
    .join('|');
}
