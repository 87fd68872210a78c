import { lstatSync, mkdirSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

// A directory laid out and updated the way the kubelet's atomic writer does it for a mounted
// ConfigMap (or Secret) volume without subPath:
//   ..2026_01_01_12_00_00.000001/config.yaml   the content, in a fresh timestamped directory per update
//   ..data -> ..2026_01_01_12_00_00.000001     swapped atomically: a new ..data_tmp link renamed over it
//   config.yaml -> ..data/config.yaml           the path the program reads, never touched again
// The old timestamped directory is removed after the swap.

let serial = 0;
const exists = (path: string) => {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
};

export class KubeletVolume {
  constructor(readonly dir: string) {}

  /** Writes a new version of the files and swaps ..data to it; returns the new directory's name. */
  update(files: Record<string, string>): string {
    const stamp = new Date().toISOString().replace(/[-:T]/g, '_').replace('Z', '');
    const version = `..${stamp}${String(++serial).padStart(6, '0')}`;
    mkdirSync(join(this.dir, version));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(this.dir, version, name), text);
    const data = join(this.dir, '..data');
    const previous = exists(data) ? readlinkSync(data) : undefined;
    symlinkSync(version, join(this.dir, '..data_tmp'));
    renameSync(join(this.dir, '..data_tmp'), data);
    for (const name of Object.keys(files)) if (!exists(join(this.dir, name))) symlinkSync(join('..data', name), join(this.dir, name));
    if (previous) rmSync(join(this.dir, previous), { recursive: true, force: true });
    return version;
  }
}
