import { EventEmitter } from 'node:events';
import { readFileSync, realpathSync, watch, type FSWatcher } from 'node:fs';
import { dirname, resolve } from 'node:path';

// Notices a config file that changed without a SIGHUP. A mounted Kubernetes ConfigMap is the case
// that matters: the kubelet writes the new content into a fresh timestamped directory and renames
// a `..data` symlink over the old one, so the path `config.yaml -> ..data/config.yaml` resolves
// to a new file while nothing happens to the old one. So directories are watched, not the file:
// the one the path is in (where the symlinks are swapped, or an editor renames its new copy over
// the file) and the one the path resolves to (a symlink into another directory, edited in place).
// Events come in bursts (a swap is several renames), so they are debounced, though never for
// longer than maxWaitMs (another file in the directory that is written all the time must not hold
// a change back forever); then the file's content is compared with what was last seen, and only a
// real change is reported.

export interface ConfigWatchEvents {
  /** A burst of events has settled and the file was compared: `changed` is whether onChange ran. */
  check: [changed: boolean];
}

/** What the file holds now: its text, or why it cannot be read (a change too, and reported as such). */
function contentOf(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    return `\0unreadable: ${(err as NodeJS.ErrnoException).code ?? 'error'}`;
  }
}

export class ConfigWatch extends EventEmitter<ConfigWatchEvents> {
  private readonly file: string;
  private readonly watchers = new Map<string, FSWatcher>();
  private seen: string;
  private timer: NodeJS.Timeout | undefined;
  /** When the burst being debounced began. */
  private burstStart = 0;
  private closed = false;

  /** Throws when the file's directory cannot be watched (the caller says so and runs without). */
  constructor(
    file: string,
    private readonly timing: { debounceMs: number; maxWaitMs: number },
    private readonly onChange: () => void,
  ) {
    super();
    this.file = resolve(file);
    this.seen = contentOf(this.file);
    this.watchDirs(true);
  }

  /** Take the file's content now as seen: after a reload by other means (SIGHUP), nothing is reloaded twice. */
  sync(): void {
    this.seen = contentOf(this.file);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  // The path's own directory always; the resolved file's directory as long as it is the one
  // the path leads to (the kubelet removes the old timestamped directory at each swap).
  private watchDirs(first = false): void {
    const dirs = new Set([dirname(this.file)]);
    try {
      dirs.add(dirname(realpathSync(this.file)));
    } catch {
      // not there at this moment (mid-swap, or removed): the path's directory still sees it come back
    }
    for (const [dir, w] of this.watchers) {
      if (dirs.has(dir)) continue;
      w.close();
      this.watchers.delete(dir);
    }
    for (const dir of dirs) {
      if (this.watchers.has(dir)) continue;
      try {
        const w = watch(dir, { persistent: false }, () => this.poke());
        // a watched directory that goes away (an old ..data target) only ends its own watcher
        w.on('error', () => {
          w.close();
          if (this.watchers.get(dir) === w) this.watchers.delete(dir);
          this.poke();
        });
        this.watchers.set(dir, w);
      } catch (err) {
        if (first && dir === dirname(this.file)) throw err;
      }
    }
  }

  private poke(): void {
    if (this.closed) return;
    const now = Date.now();
    if (this.timer === undefined) this.burstStart = now;
    clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(this.timing.debounceMs, this.burstStart + this.timing.maxWaitMs - now));
    this.timer = setTimeout(() => this.settle(), wait);
  }

  private settle(): void {
    this.timer = undefined;
    if (this.closed) return;
    this.watchDirs();
    const now = contentOf(this.file);
    const changed = now !== this.seen;
    this.seen = now;
    if (changed) this.onChange();
    this.emit('check', changed);
  }
}
