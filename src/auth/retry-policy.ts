/**
 * Pure retry arithmetic for the token endpoint. The network client owns the
 * timers; this module only decides whether and how long to wait, so it can be
 * tested without clocks.
 */
import { backoffDelay } from '../util/backoff.js';

export interface RetryOptions {
  /** Attempts in all, the first included. @default 5 */
  maxAttempts: number;
  /** First back-off step; doubles each attempt. @default 500 */
  baseDelayMs: number;
  /** Cap of one back-off step (not of Retry-After). @default 30_000 */
  maxDelayMs: number;
  /** Give up when the next wait would end later than this after the first attempt. @default 60_000 */
  maxTotalMs: number;
}

export const DEFAULT_RETRY: RetryOptions = {
  maxAttempts: 5,
  baseDelayMs: 500,
  maxDelayMs: 30_000,
  maxTotalMs: 60_000,
};

export interface RetryState {
  /** Attempts made so far (1 after the first failure). */
  attempt: number;
  /** Milliseconds since the first attempt started. */
  elapsedMs: number;
  /** Parsed `Retry-After`, when the server sent one. */
  retryAfterMs?: number;
}

/**
 * Milliseconds to wait before the next attempt, or `undefined` to give up.
 * Equal jitter (half the exponential step plus a random share of the other
 * half) spreads clients that failed together; a server's Retry-After is a
 * floor, never shortened.
 */
export function nextRetryDelay(
  state: RetryState,
  options: RetryOptions,
  random: () => number = Math.random,
): number | undefined {
  if (state.attempt >= options.maxAttempts) return undefined;
  const jittered = backoffDelay(
    state.attempt - 1,
    { baseMs: options.baseDelayMs, maxMs: options.maxDelayMs, jitter: 'equal' },
    random,
  );
  const delay = Math.max(jittered, state.retryAfterMs ?? 0);
  if (state.elapsedMs + delay > options.maxTotalMs) return undefined;
  return delay;
}

/** `Retry-After` is either delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  // Only an HTTP date (it names a weekday and month) counts; `Date.parse` accepts far more.
  if (!/[A-Za-z]/.test(trimmed)) return undefined;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}
