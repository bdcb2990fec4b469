import { describe, expect, it } from 'vitest';
import { DEFAULT_RETRY, nextRetryDelay, parseRetryAfter } from '../../src/auth/retry-policy.js';

const options = { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 1_000, maxTotalMs: 10_000 };

describe('nextRetryDelay', () => {
  it('doubles the step each attempt, with the jitter inside [step/2, step]', () => {
    expect(nextRetryDelay({ attempt: 1, elapsedMs: 0 }, options, () => 0)).toBe(50);
    expect(nextRetryDelay({ attempt: 1, elapsedMs: 0 }, options, () => 1)).toBe(100);
    expect(nextRetryDelay({ attempt: 3, elapsedMs: 0 }, options, () => 0)).toBe(200);
    expect(nextRetryDelay({ attempt: 3, elapsedMs: 0 }, options, () => 1)).toBe(400);
  });

  it('caps one step at maxDelayMs', () => {
    expect(
      nextRetryDelay({ attempt: 4, elapsedMs: 0 }, { ...options, maxAttempts: 20 }, () => 1),
    ).toBe(800);
    expect(
      nextRetryDelay({ attempt: 10, elapsedMs: 0 }, { ...options, maxAttempts: 20 }, () => 1),
    ).toBe(1_000);
  });

  it('never waits less than Retry-After', () => {
    expect(
      nextRetryDelay({ attempt: 1, elapsedMs: 0, retryAfterMs: 3_000 }, options, () => 1),
    ).toBe(3_000);
  });

  it('gives up after maxAttempts', () => {
    expect(nextRetryDelay({ attempt: 5, elapsedMs: 0 }, options)).toBeUndefined();
    expect(nextRetryDelay({ attempt: 4, elapsedMs: 0 }, options)).toBeDefined();
  });

  it('gives up when the wait would pass maxTotalMs, e.g. a Retry-After of minutes', () => {
    expect(
      nextRetryDelay({ attempt: 1, elapsedMs: 0, retryAfterMs: 120_000 }, options),
    ).toBeUndefined();
    expect(
      nextRetryDelay({ attempt: 2, elapsedMs: 9_950, retryAfterMs: 0 }, options, () => 1),
    ).toBeUndefined();
  });

  it('has bounded defaults', () => {
    expect(DEFAULT_RETRY.maxAttempts).toBeGreaterThan(1);
    expect(DEFAULT_RETRY.maxTotalMs).toBeLessThanOrEqual(120_000);
  });
});

describe('parseRetryAfter', () => {
  it('reads delta-seconds', () => {
    expect(parseRetryAfter('7')).toBe(7_000);
    expect(parseRetryAfter(' 0 ')).toBe(0);
  });

  it('reads an HTTP date relative to now', () => {
    const now = Date.parse('2026-11-22T10:00:00Z');
    expect(parseRetryAfter('Sun, 22 Nov 2026 10:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Sun, 22 Nov 2026 09:00:00 GMT', now)).toBe(0);
  });

  it('ignores absent or malformed values', () => {
    expect(parseRetryAfter(undefined)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter('-5')).toBeUndefined();
  });
});
