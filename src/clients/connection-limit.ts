/**
 * Caps concurrent connections per mailbox across the whole process. Exchange
 * Online allows about 16-20 IMAP connections per mailbox and answers beyond
 * that with `BAD User is authenticated but not connected`, which reads like a
 * permission problem; staying well under the limit avoids the confusion.
 */
export const DEFAULT_MAX_CONNECTIONS_PER_MAILBOX = 8;

interface Slot {
  active: number;
  waiters: (() => void)[];
}

const slots = new Map<string, Slot>();

/** Resolves with a release function once fewer than `limit` connections to `key` are open. */
export async function acquireConnectionSlot(key: string, limit: number): Promise<() => void> {
  let slot = slots.get(key);
  if (!slot) {
    slot = { active: 0, waiters: [] };
    slots.set(key, slot);
  }
  const current = slot;
  if (current.active >= limit) {
    await new Promise<void>((resolve) => current.waiters.push(resolve));
  } else {
    current.active++;
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const next = current.waiters.shift();
    // The slot passes straight to the next waiter, so `active` stays the same.
    if (next) next();
    else {
      current.active--;
      if (current.active === 0) slots.delete(key);
    }
  };
}

/**
 * Where a session takes its connection slot. The default holds slots in this
 * process; a distributed job queue plugs in one shared by every worker
 * (leases in Redis), so that the cap holds across machines.
 */
export interface ConnectionSlots {
  /** Resolves with a release function once fewer than `limit` connections to `key` are open. */
  acquire(key: string, limit: number): Promise<() => void>;
  /**
   * The server throttled `key` for `ms`: every holder of its slots waits that
   * long, not only the session that was told (the session calls it when the
   * reply arrives, and waits with the others through `whenOpen`).
   */
  pause?(key: string, ms: number): Promise<void>;
  /** Resolves once `key` is not paused (at once when it is not). */
  whenOpen?(key: string): Promise<void>;
}

/** Slots held in this process only. */
export const processConnectionSlots: ConnectionSlots = { acquire: acquireConnectionSlot };

export function connectionKey(host: string, port: number, mailbox: string): string {
  return `${host.toLowerCase()}:${port}/${mailbox.toLowerCase()}`;
}
