/**
 * A sliding-window rate limit for submissions. nodemailer's own limiter counts
 * fixed windows from the first message, so a full window followed by the next
 * one puts twice the limit inside one rolling minute; Microsoft does not say
 * Exchange counts fixed minutes, so we never exceed the limit in any 60 s.
 */

/** Milliseconds until another start is allowed, given the starts still in the window. */
export function nextSlotDelay(
  starts: readonly number[],
  now: number,
  limit: number,
  windowMs: number,
): number {
  const recent = starts.filter((t) => t > now - windowMs);
  if (recent.length < limit) return 0;
  // The slot frees when the oldest of the last `limit` starts leaves the window.
  const oldest = recent[recent.length - limit] as number;
  return Math.max(0, oldest + windowMs - now);
}

export interface RateLimiter {
  /** Resolves when one more start is allowed, and counts it. Callers are served in order. */
  acquire(): Promise<void>;
}

export function createSlidingWindowLimiter(limit: number, windowMs: number): RateLimiter {
  let starts: number[] = [];
  let queue: Promise<void> = Promise.resolve();
  return {
    acquire() {
      const turn = queue.then(async () => {
        for (;;) {
          const now = Date.now();
          starts = starts.filter((t) => t > now - windowMs);
          const delay = nextSlotDelay(starts, now, limit, windowMs);
          if (delay === 0) break;
          await new Promise((resolve) => setTimeout(resolve, delay));
        }
        starts.push(Date.now());
      });
      queue = turn;
      return turn;
    },
  };
}
