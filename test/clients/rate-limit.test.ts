import { describe, expect, it } from 'vitest';
import { createSlidingWindowLimiter, nextSlotDelay } from '../../src/clients/rate-limit.js';

describe('nextSlotDelay', () => {
  it('allows starts below the limit at once', () => {
    expect(nextSlotDelay([0, 10], 20, 3, 1_000)).toBe(0);
  });

  it('waits until the oldest start in the window leaves it', () => {
    expect(nextSlotDelay([0, 10, 20], 30, 3, 1_000)).toBe(970);
  });

  it('ignores starts older than the window', () => {
    expect(nextSlotDelay([0, 10, 1_500], 1_600, 2, 1_000)).toBe(0);
  });

  it('never allows more than the limit in any rolling window, unlike fixed windows', () => {
    // A burst at the end of one fixed minute followed by one at the start of the next.
    const starts = [59_000, 59_100, 59_200];
    expect(nextSlotDelay(starts, 60_100, 3, 60_000)).toBe(58_900);
  });
});

describe('createSlidingWindowLimiter', () => {
  it('spaces a burst so that no window holds more than the limit', async () => {
    const limiter = createSlidingWindowLimiter(3, 300);
    const started: number[] = [];
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: 7 }, async () => {
        await limiter.acquire();
        started.push(Date.now() - t0);
      }),
    );
    expect(started).toHaveLength(7);
    for (const t of started) {
      expect(started.filter((u) => u >= t && u < t + 295).length).toBeLessThanOrEqual(3);
    }
    expect(started[6]).toBeGreaterThanOrEqual(590);
  });
});
