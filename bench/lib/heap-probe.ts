import { writeSync } from 'node:fs';

// Loaded into the daemon with `node --expose-gc --import heap-probe.js` (bench/soak only; the
// program is not changed): on SIGUSR2 it runs two full garbage collections and writes the heap
// that survived, as one JSON line, to file descriptor 3, a pipe the benchmark reads.

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('heap-probe needs node --expose-gc');
process.on('SIGUSR2', () => {
  gc();
  gc();
  const m = process.memoryUsage();
  writeSync(3, JSON.stringify({ heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, rss: m.rss }) + '\n');
});
