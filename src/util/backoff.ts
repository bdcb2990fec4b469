/**
 * The one formula for waits that grow with each failure: `baseMs × 2^step`,
 * capped at `maxMs`, then spread by a jitter. Pure: the caller owns the
 * timers and decides when to give up, what counts as a step, and whether a
 * server's own hint (Retry-After, a throttling reply) is a floor.
 */

/**
 * How a delay is spread so that clients (or messages) that failed together
 * do not all come back at once:
 * - `none`: exactly the delay;
 * - `full`: anywhere in [0, delay];
 * - `equal`: half the delay plus a random share of the other half;
 * - `{ spread }`: delay × (1 ± spread), never above `maxMs`.
 */
export type Jitter = 'none' | 'full' | 'equal' | { spread: number };

export interface BackoffOptions {
  /** The delay of step 0. */
  baseMs: number;
  /** Ceiling of the delay before and after jitter. @default no ceiling */
  maxMs?: number;
  /** @default 'none' */
  jitter?: Jitter;
}

/** 2^40 times any base of a millisecond or more passes every cap in use; the limit keeps the power finite. */
const MAX_EXPONENT = 40;

/**
 * Milliseconds to wait at `step` (0 for the first wait; negative steps count
 * as 0), rounded to whole milliseconds. `random` returns [0, 1).
 */
export function backoffDelay(
  step: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  const cap = options.maxMs ?? Number.POSITIVE_INFINITY;
  const exponent = Math.max(0, Math.min(step, MAX_EXPONENT));
  const delay = Math.min(cap, options.baseMs * 2 ** exponent);
  const jitter = options.jitter ?? 'none';
  let jittered: number;
  if (jitter === 'none') jittered = delay;
  else if (jitter === 'full') jittered = random() * delay;
  else if (jitter === 'equal') jittered = delay / 2 + random() * (delay / 2);
  else jittered = Math.min(cap, delay + delay * jitter.spread * (random() * 2 - 1));
  return Math.max(0, Math.round(jittered));
}
