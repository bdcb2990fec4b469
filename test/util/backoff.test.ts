import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../src/util/backoff.js';

const low = () => 0;
const high = () => 0.999999;
const middle = () => 0.5;

describe('backoffDelay', () => {
  it('doubles from the base at each step, up to the cap, without jitter by default', () => {
    const options = { baseMs: 1000, maxMs: 15_000 };
    expect([0, 1, 2, 3, 4, 5, 60].map((step) => backoffDelay(step, options))).toEqual([
      1000, 2000, 4000, 8000, 15_000, 15_000, 15_000,
    ]);
  });

  it('counts a negative step as the first', () => {
    expect(backoffDelay(-3, { baseMs: 500, maxMs: 10_000 })).toBe(500);
  });

  it('grows without a cap when none is given, and stays finite for huge steps', () => {
    expect(backoffDelay(10, { baseMs: 100 })).toBe(102_400);
    expect(Number.isFinite(backoffDelay(100_000, { baseMs: 100 }))).toBe(true);
  });

  it('full jitter: anywhere from 0 to the delay', () => {
    const options = { baseMs: 1000, maxMs: 60_000, jitter: 'full' } as const;
    expect(backoffDelay(2, options, low)).toBe(0);
    expect(backoffDelay(2, options, middle)).toBe(2000);
    expect(backoffDelay(2, options, high)).toBe(4000);
  });

  it('equal jitter: from half the delay to the delay', () => {
    const options = { baseMs: 100, maxMs: 1000, jitter: 'equal' } as const;
    expect(backoffDelay(2, options, low)).toBe(200);
    expect(backoffDelay(2, options, middle)).toBe(300);
    expect(backoffDelay(2, options, high)).toBe(400);
    expect(backoffDelay(9, options, high)).toBe(1000);
  });

  it('spread jitter: the delay ± a fraction, never above the cap', () => {
    const options = { baseMs: 60_000, maxMs: 3_600_000, jitter: { spread: 0.2 } };
    expect(backoffDelay(0, options, low)).toBe(48_000);
    expect(backoffDelay(0, options, middle)).toBe(60_000);
    expect(backoffDelay(0, options, high)).toBe(72_000);
    expect(backoffDelay(9, options, high)).toBe(3_600_000);
    expect(backoffDelay(9, options, low)).toBe(2_880_000);
  });

  it('rounds to whole milliseconds and never goes below zero', () => {
    expect(backoffDelay(0, { baseMs: 3, jitter: 'equal' }, middle)).toBe(2);
    expect(backoffDelay(0, { baseMs: 10, jitter: { spread: 2 } }, low)).toBe(0);
  });
});
