import { describe, expect, it } from 'vitest';
import { longestGapSeconds, Scheduler, type ScheduledTarget } from '../../src/daemon/scheduler.js';

// The scheduler without a database: which runs start, when, and how many at once.

const targets = (n: number, pattern = '0 0 1 1 *', timezone?: string): ScheduledTarget[] => Array.from({ length: n }, (_, i) => ({ name: `t${i}`, pattern, timezone }));

/** A run function whose runs stay in flight until released. */
function gated() {
  const started: string[] = [];
  const gates = new Map<string, () => void>();
  let inFlight = 0;
  let maxInFlight = 0;
  const run = (target: string) =>
    new Promise<void>((resolve) => {
      started.push(target);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      gates.set(target, () => {
        inFlight--;
        resolve();
      });
    });
  return { run, started, release: (t: string) => gates.get(t)!(), releaseAll: () => [...gates.values()].forEach((g) => g()), max: () => maxInFlight };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe('Scheduler', () => {
  it('has one croner job per distinct pattern and time zone, not one per target', async () => {
    const s = new Scheduler({ targets: [...targets(200), ...targets(3, '*/5 * * * *'), { name: 'z', pattern: '0 0 1 1 *', timezone: 'Europe/Berlin' }], run: async () => undefined, onOverlap: () => undefined });
    s.start();
    expect(s.jobCount).toBe(3);
    expect(s.alive()).toBe(true);
    await s.stop(100);
    expect(s.alive()).toBe(false);
  });

  it('kickoff runs every target once, spread evenly over the given time', async () => {
    const at: number[] = [];
    const t0 = Date.now();
    const s = new Scheduler({ targets: targets(4), run: async () => void at.push(Date.now() - t0), onOverlap: () => undefined });
    s.start();
    await s.kickoff(400);
    expect(at).toHaveLength(4);
    expect(at[0]).toBeLessThan(50);
    expect(at[3]).toBeGreaterThanOrEqual(290);
    await s.stop(100);
  });

  it('bounds runs in flight across targets; a run waiting for a slot is not an overlap', async () => {
    const g = gated();
    const overlaps: string[] = [];
    const s = new Scheduler({ targets: targets(5), run: g.run, onOverlap: (t) => overlaps.push(t), maxConcurrent: 2 });
    const all = Promise.all(['t0', 't1', 't2', 't3', 't4'].map((t) => s.trigger(t)));
    await tick();
    expect(g.started).toEqual(['t0', 't1']);
    g.release('t0');
    await tick();
    await tick();
    expect(g.started).toEqual(['t0', 't1', 't2']);
    // the same target triggered again while its run waits or runs: that is an overlap
    void s.trigger('t4');
    expect(overlaps).toEqual(['t4']);
    for (let i = 0; i < 10; i++) {
      g.releaseAll();
      await tick();
    }
    await all;
    expect(g.started).toEqual(['t0', 't1', 't2', 't3', 't4']);
    expect(g.max()).toBe(2);
    expect(overlaps).toEqual(['t4']);
  });

  it('jitter delays each target of a trigger by a random part of scheduleJitter', async () => {
    const at = new Map<string, number>();
    const t0 = Date.now();
    const draws = [0, 0.5, 0.99];
    const s = new Scheduler({ targets: targets(3, '* * * * * *'), run: async (t) => void at.set(t, Date.now() - t0), onOverlap: () => undefined, jitterMs: 600, random: () => draws.shift() ?? 0 });
    s.start();
    const deadline = Date.now() + 4000;
    while (at.size < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await s.stop(100);
    const [a, b, c] = ['t0', 't1', 't2'].map((t) => at.get(t)!);
    expect(b! - a!).toBeGreaterThanOrEqual(250);
    expect(c! - b!).toBeGreaterThanOrEqual(250);
  });

  it('is not alive once a job is long overdue: its timer stopped firing', async () => {
    let now = Date.now();
    const s = new Scheduler({ targets: targets(1, '*/10 * * * * *'), run: async () => undefined, onOverlap: () => undefined, now: () => now });
    s.start();
    expect(s.alive()).toBe(true);
    now += 45_000; // as if no trigger had happened for 45 s on a 10 s schedule
    expect(s.alive()).toBe(false);
    await s.stop(100);
  });

  it('stop() ends delayed and waiting runs without starting them', async () => {
    const g = gated();
    const s = new Scheduler({ targets: targets(3), run: g.run, onOverlap: () => undefined, maxConcurrent: 1 });
    const kicked = s.kickoff(10_000);
    await tick();
    expect(g.started).toEqual(['t0']);
    const stopping = s.stop(5000);
    g.release('t0');
    expect(await stopping).toBe(true);
    await kicked;
    expect(g.started).toEqual(['t0']);
  });
});

describe('the schedule interval (what PgReaperRunsStalled judges lateness by)', () => {
  const from = new Date('2026-11-23T10:00:00Z'); // a Monday
  it('is the longest gap between triggers: the period of a regular schedule, the weekend of a weekday one', () => {
    expect(longestGapSeconds('*/30 * * * * *', 'UTC', 24, from)).toBe(30);
    expect(longestGapSeconds('* * * * * *', 'UTC', 24, from)).toBe(1);
    expect(longestGapSeconds('*/5 * * * *', 'UTC', 24, from)).toBe(300);
    expect(longestGapSeconds('0 9 * * 1-5', 'UTC', 24, from)).toBe(3 * 86_400);
    expect(longestGapSeconds('0 0 1 * *', 'UTC', 24, from)).toBe(31 * 86_400);
  });

  it('is kept per pattern and exported per target', () => {
    const s = new Scheduler({ targets: [{ name: 'a', pattern: '*/30 * * * * *' }, { name: 'b', pattern: '0 * * * *', timezone: 'UTC' }], run: async () => undefined, onOverlap: () => undefined });
    expect(s.intervalSeconds('a')).toBe(30);
    expect(s.intervalSeconds('b')).toBe(3600);
    expect(s.intervalSeconds('nope')).toBeUndefined();
  });
});
