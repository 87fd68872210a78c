import { Writable } from 'node:stream';
import { findEntry } from '../reasons/table.js';
import { UNITS } from '../reasons/units.js';

// Log lines a person reads on a terminal: the same records as the JSON lines, one readable line
// each. The daemon (logFormat: pretty) and the demo use this one formatter.

const HIDDEN = new Set(['level', 'time', 'name', 'msg']);
const str = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

export function prettyLine(e: Record<string, unknown>, opts: { runLines?: boolean } = {}): string | undefined {
  const time = String(e.time ?? '').slice(11, 19);
  const level = String(e.level ?? 'info');
  if (e.outcome !== undefined && e.reason !== undefined) {
    const who = `${e.user ?? '?'}@${e.database ?? '?'}`;
    const app = [e.application, e.clientAddr].filter((x) => x !== undefined && x !== null && x !== '').join(', ');
    const extra = [e.escalated ? 'escalated' : '', e.error ? `error: ${str(e.error)}` : '', e.query !== undefined ? `query: ${str(e.query)}` : ''].filter(Boolean).join('; ');
    const unit = UNITS[findEntry(e.reason)?.unit ?? 'seconds'];
    const evidence = `${str(e[unit.field])}${unit.suffix} > ${str(e[unit.thresholdField])}${unit.suffix}`;
    return `${time} ${String(e.outcome).padEnd(15)} pid ${e.pid} ${who}${app ? ` (${app})` : ''}: ${e.reason} ${evidence} [${e.target}/${e.policy}]${extra ? ` ${extra}` : ''}`;
  }
  if (e.msg === 'run finished' || e.msg === 'run failed') {
    if (opts.runLines === false && level === 'info') return undefined;
    const actions = Object.entries((e.actions ?? {}) as Record<string, number>).map(([k, v]) => `${k} ${v}`).join(', ');
    const ms = Math.round(Number(e.durationSeconds ?? 0) * 1000);
    const what = e.sessions !== undefined ? `${e.sessions} session${e.sessions === 1 ? '' : 's'}${actions ? `, ${actions}` : ''}` : '';
    return `${time} ${level === 'info' ? '' : `${level.toUpperCase()} `}${e.msg} ${e.target}: ${[what, e.error ? str(e.error) : ''].filter(Boolean).join('; ')} (${ms}ms)`;
  }
  const fields = Object.entries(e)
    .filter(([k]) => !HIDDEN.has(k))
    .map(([k, v]) => `${k}=${str(v)}`)
    .join(' ');
  return `${time} ${level === 'info' ? '' : `${level.toUpperCase()} `}${e.msg ?? ''}${fields ? `  ${fields}` : ''}`;
}

/** A pino destination that writes each JSON record as one readable line. */
export function prettyStream(write: (line: string) => void, opts: { runLines?: boolean } = {}): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const text of chunk.toString('utf8').split('\n')) {
        if (!text) continue;
        let line: string | undefined;
        try {
          line = prettyLine(JSON.parse(text) as Record<string, unknown>, opts);
        } catch {
          line = text;
        }
        if (line !== undefined) write(line + '\n');
      }
      done();
    },
  });
}
