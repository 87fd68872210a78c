import module from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Node's on-disk cache of compiled code (Node 22.1+; a no-op before). NODE_COMPILE_CACHE chooses
// the directory as Node documents; else a .compile-cache beside the program, never the temp
// directory. Where that is not writable (a read-only image, a package installed by root) Node
// quietly runs without it; the image fills it at build time.
export function enableCompileCache(): void {
  const enable = (module as { enableCompileCache?: (dir?: string) => unknown }).enableCompileCache;
  if (!enable) return;
  try {
    enable(process.env.NODE_COMPILE_CACHE || join(dirname(fileURLToPath(import.meta.url)), '.compile-cache'));
  } catch {
    // a cache is an optimisation: never a reason not to start
  }
}
