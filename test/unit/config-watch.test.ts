import { once } from 'node:events';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigWatch } from '../../src/daemon/config-watch.js';
import { KubeletVolume } from '../helpers/kubelet-volume.js';

// The config file watch on a real file system: what reaches the file through a ConfigMap's symlink
// swap, an editor's rename or a symlink into another directory is seen once per burst; events
// that leave the content as it was reload nothing. Each step awaits the watch's own "check" event.

const TIMING = { debounceMs: 50, maxWaitMs: 400 };
let dir: string;
let watch: ConfigWatch | undefined;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'pg-reaper-watch-test-'));
});
afterEach(() => {
  watch?.close();
  watch = undefined;
  rmSync(dir, { recursive: true, force: true });
});

/** Starts a watch on FILE; `changes` counts the reloads it asks for. */
function start(file: string): { changes: () => number } {
  let n = 0;
  watch = new ConfigWatch(file, TIMING, () => n++);
  return { changes: () => n };
}

/** Resolves with the outcome of the next settled burst of events, or fails after a deadline. */
async function nextCheck(): Promise<boolean> {
  const deadline = AbortSignal.timeout(5000);
  const [changed] = (await once(watch!, 'check', { signal: deadline })) as [boolean];
  return changed;
}

describe('ConfigWatch', () => {
  it('sees a ConfigMap update (the kubelet swaps the ..data symlink) once, and an unrelated file in the directory not at all', async () => {
    const volume = new KubeletVolume(dir);
    volume.update({ 'config.yaml': 'v: 1\n' });
    const w = start(join(dir, 'config.yaml'));

    let check = nextCheck();
    volume.update({ 'config.yaml': 'v: 2\n' });
    expect(await check).toBe(true);
    expect(w.changes()).toBe(1);

    check = nextCheck();
    writeFileSync(join(dir, 'unrelated.txt'), 'x');
    expect(await check).toBe(false);

    // a second update still reaches it (the old timestamped directory is gone by now)
    check = nextCheck();
    volume.update({ 'config.yaml': 'v: 3\n' });
    expect(await check).toBe(true);
    expect(w.changes()).toBe(2);
  });

  it('an update with the same content (the kubelet resyncs) reloads nothing', async () => {
    const volume = new KubeletVolume(dir);
    volume.update({ 'config.yaml': 'v: 1\n' });
    const w = start(join(dir, 'config.yaml'));
    const check = nextCheck();
    volume.update({ 'config.yaml': 'v: 1\n' });
    expect(await check).toBe(false);
    expect(w.changes()).toBe(0);
  });

  it('sees an editor that saves by writing a copy and renaming it over the file', async () => {
    const file = join(dir, 'config.yaml');
    writeFileSync(file, 'v: 1\n');
    const w = start(file);
    const check = nextCheck();
    writeFileSync(join(dir, '.config.yaml.swp'), 'v: 2\n');
    renameSync(join(dir, '.config.yaml.swp'), file);
    expect(await check).toBe(true);
    expect(w.changes()).toBe(1);
  });

  it('sees a file edited in place in another directory, through a symlink', async () => {
    const elsewhere = join(dir, 'elsewhere');
    const etc = join(dir, 'etc');
    mkdirSync(elsewhere);
    mkdirSync(etc);
    writeFileSync(join(elsewhere, 'pg-reaper.yaml'), 'v: 1\n');
    symlinkSync(join(elsewhere, 'pg-reaper.yaml'), join(etc, 'config.yaml'));
    const w = start(join(etc, 'config.yaml'));
    const check = nextCheck();
    writeFileSync(join(elsewhere, 'pg-reaper.yaml'), 'v: 2\n');
    expect(await check).toBe(true);
    expect(w.changes()).toBe(1);
  });

  it('after sync() (a SIGHUP reload read the file), the same change is not reloaded again', async () => {
    const file = join(dir, 'config.yaml');
    writeFileSync(file, 'v: 1\n');
    const w = start(file);
    const check = nextCheck();
    writeFileSync(file, 'v: 2\n');
    watch!.sync();
    expect(await check).toBe(false);
    expect(w.changes()).toBe(0);
  });

  it('a file removed and put back is a change each time (a reload then says the file is missing)', async () => {
    const file = join(dir, 'config.yaml');
    writeFileSync(file, 'v: 1\n');
    const w = start(file);
    let check = nextCheck();
    rmSync(file);
    expect(await check).toBe(true);
    check = nextCheck();
    writeFileSync(file, 'v: 1\n');
    expect(await check).toBe(true);
    expect(w.changes()).toBe(2);
  });

  it('another file in the directory written without pause does not hold a change back past maxWaitMs', async () => {
    const file = join(dir, 'config.yaml');
    writeFileSync(file, 'v: 1\n');
    const w = start(file);
    const noisy = setInterval(() => writeFileSync(join(dir, 'busy.log'), String(Date.now())), 10);
    try {
      const check = nextCheck();
      const changedAt = Date.now();
      writeFileSync(file, 'v: 2\n');
      expect(await check).toBe(true);
      expect(Date.now() - changedAt).toBeLessThan(TIMING.maxWaitMs + 1000);
      expect(w.changes()).toBe(1);
    } finally {
      clearInterval(noisy);
    }
  });

  it('a directory that cannot be watched is an error at construction, for the daemon to report', () => {
    expect(() => new ConfigWatch(join(dir, 'no-such-dir', 'config.yaml'), TIMING, () => undefined)).toThrow(/ENOENT/);
  });
});
