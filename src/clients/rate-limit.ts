/**
 * A sliding-window rate limit for submissions. nodemailer's own limiter counts
 * fixed windows from the first message, so a full window followed by the next
 * one puts twice the limit inside one rolling minute. Microsoft does not say
 * that Exchange counts fixed minutes, so we keep any 60 s of acceptances at
 * or under the limit: a slot is counted from the moment its send finished,
 * and a send in flight holds its slot until then.
 */

/**
 * Milliseconds until another send may start, given the end times of the slots
 * in use (`Infinity` for sends still in flight). `Infinity` means: wait until
 * a send in flight finishes.
 */
export function nextSlotDelay(
  ends: readonly number[],
  now: number,
  limit: number,
  windowMs: number,
): number {
  const held = ends.filter((end) => end > now - windowMs);
  if (held.length < limit) return 0;
  // The (held - limit + 1)-th earliest end frees the slot we need.
  const sorted = [...held].sort((a, b) => a - b);
  const freeing = sorted[held.length - limit] as number;
  return freeing === Number.POSITIVE_INFINITY ? freeing : Math.max(0, freeing + windowMs - now);
}

export interface RateLimiter {
  /** Runs `task` once the limit allows, in call order, counting it until it finishes. */
  run<T>(task: () => Promise<T>): Promise<T>;
}

export function createSlidingWindowLimiter(limit: number, windowMs: number): RateLimiter {
  let slots: { end: number }[] = [];
  let queue: Promise<void> = Promise.resolve();
  let wake: (() => void) | undefined;
  return {
    async run(task) {
      const slot = { end: Number.POSITIVE_INFINITY };
      const turn = queue.then(async () => {
        for (;;) {
          const now = Date.now();
          slots = slots.filter((s) => s.end > now - windowMs);
          const delay = nextSlotDelay(
            slots.map((s) => s.end),
            now,
            limit,
            windowMs,
          );
          if (delay === 0) break;
          await new Promise<void>((resolve) => {
            const timer = Number.isFinite(delay) ? setTimeout(resolve, delay) : undefined;
            wake = () => {
              if (timer) clearTimeout(timer);
              resolve();
            };
          });
          wake = undefined;
        }
        slots.push(slot);
      });
      queue = turn;
      await turn;
      try {
        return await task();
      } finally {
        slot.end = Date.now();
        wake?.();
      }
    },
  };
}
