import { describe, expect, it } from 'vitest';
import { createSlidingWindowLimiter, nextSlotDelay } from '../../src/clients/rate-limit.js';

const IN_FLIGHT = Number.POSITIVE_INFINITY;

describe('nextSlotDelay', () => {
  it('allows sends below the limit at once', () => {
    expect(nextSlotDelay([0, 10], 20, 3, 1_000)).toBe(0);
  });

  it('waits until the earliest finished send leaves the window', () => {
    expect(nextSlotDelay([0, 10, 20], 30, 3, 1_000)).toBe(970);
  });

  it('ignores sends that finished before the window', () => {
    expect(nextSlotDelay([0, 10, 1_500], 1_600, 2, 1_000)).toBe(0);
  });

  it('waits for a send in flight when every slot is held by one', () => {
    expect(nextSlotDelay([IN_FLIGHT, IN_FLIGHT], 5, 2, 1_000)).toBe(IN_FLIGHT);
    expect(nextSlotDelay([IN_FLIGHT, 100], 200, 2, 1_000)).toBe(900);
  });

  it('never allows more than the limit in any rolling window, unlike fixed windows', () => {
    // A burst at the end of one fixed minute followed by one at the start of the next.
    expect(nextSlotDelay([59_000, 59_100, 59_200], 60_100, 3, 60_000)).toBe(58_900);
  });
});

describe('createSlidingWindowLimiter', () => {
  it('keeps every window of completions within the limit, with tasks that take time', async () => {
    const limiter = createSlidingWindowLimiter(3, 300);
    const done: number[] = [];
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: 7 }, () =>
        limiter.run(async () => {
          await new Promise((resolve) => setTimeout(resolve, 40));
          done.push(Date.now() - t0);
        }),
      ),
    );
    expect(done).toHaveLength(7);
    for (const t of done) {
      expect(done.filter((u) => u >= t && u < t + 295).length).toBeLessThanOrEqual(3);
    }
  });

  it('frees the slot of a failed task too, and passes the error on', async () => {
    const limiter = createSlidingWindowLimiter(1, 50);
    await expect(limiter.run(async () => Promise.reject(new Error('refused')))).rejects.toThrow(
      'refused',
    );
    await expect(limiter.run(async () => 'next')).resolves.toBe('next');
  });
});
