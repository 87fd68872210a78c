import { createRequire } from 'node:module';
import type * as Prom from 'prom-client';

// prom-client's index also loads the Pushgateway (https, so TLS), cluster aggregation and
// Summary; none is used here, and on Node 24 they cost about 3 MiB of resident memory. The
// classes come from their own files; the types still come from the package.
const require = createRequire(import.meta.url);

export const Registry = require('prom-client/lib/registry') as typeof Prom.Registry;
export const Counter = require('prom-client/lib/counter') as typeof Prom.Counter;
export const Gauge = require('prom-client/lib/gauge') as typeof Prom.Gauge;
export const Histogram = require('prom-client/lib/histogram') as typeof Prom.Histogram;

// prom-client's default process and Node.js metrics, less nodejs_active_{handles,requests,
// resources}_total: gauges named like counters, which `promtool check metrics` rejects. The
// event-loop delay is sampled every 100 ms, not 10: a timer 100 times a second was a large share
// of an idle daemon's CPU.
const PROCESS_METRICS = ['processCpuTotal', 'processStartTime', 'osMemoryHeap', 'processOpenFileDescriptors', 'processMaxFileDescriptors', 'eventLoopLag', 'heapSizeAndUsed', 'heapSpacesSizeAndUsed', 'version', 'gc'];
export function collectProcessMetrics(register: Prom.Registry): void {
  for (const name of PROCESS_METRICS) {
    (require(`prom-client/lib/metrics/${name}`) as (r: Prom.Registry, c: object) => void)(register, { eventLoopMonitoringPrecision: 100 });
  }
}
export type Registry = Prom.Registry;
export type Counter<T extends string> = Prom.Counter<T>;
export type Gauge<T extends string = string> = Prom.Gauge<T>;
export type Histogram<T extends string> = Prom.Histogram<T>;
