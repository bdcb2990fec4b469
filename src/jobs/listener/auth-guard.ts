/**
 * What stands between a client's AUTH and the password check: a penalty for
 * failures and a bound on the checks in progress.
 *
 * scrypt runs on libuv's thread pool (4 threads), the same pool that runs the
 * spool's file writes and fsyncs. Unbounded, a flood of wrong passwords fills
 * the pool and every accepted message waits behind it. So:
 *
 * - At most `concurrency` checks run at once (1 by default), plus one kept
 *   for an address that signed in as that user before, leaving at least two
 *   threads to the spool. Checks wait in a queue ordered by trust: trusted
 *   first, then addresses with no failures, then the rest (judged when a
 *   place frees), so a flood queues behind the legitimate.
 * - Per client address, failures set a growing delay (as Dovecot's auth
 *   penalty: `initialMs`, doubling, at most `maxMs`) that also spaces that
 *   address's attempts one after another: an address at the maximum gets
 *   one check per `maxMs`. An attempt that would wait longer than `maxMs`
 *   is refused unchecked.
 * - Per user name, failures from anywhere set the same growing delay, but
 *   only as a wait, never a refusal, and not for an address that signed in as
 *   that user before. An attacker guessing one user's password from
 *   elsewhere therefore costs the real user at most `maxMs` per AUTH from a
 *   new address and nothing from an address it used before: never a lockout.
 *
 * All state is bounded: each table keeps at most `capacity` entries (the
 * least recently touched go first) and forgets an entry `forgetMs` after its
 * last failure, so rotating addresses or user names cannot grow memory.
 */
import { backoffDelay } from '../../util/backoff.js';

export interface AuthGuardOptions {
  /** First penalty after a failure, doubling per further failure. */
  initialMs: number;
  /** Ceiling of the penalty, and the longest an attempt is made to wait. */
  maxMs: number;
  /** Password checks in progress at once. @default 1 */
  concurrency?: number;
  /** Entries per table. @default 10,000 */
  capacity?: number;
  /** A failure is forgotten this long after the last one. @default 15 min */
  forgetMs?: number;
  now?: () => number;
}

export type AuthAdmission =
  /** `rank` is the place in the queue, read when a place frees: 0 trusted, 1 clean address, 2 failing address. */
  { ok: true; waitMs: number; rank: () => number } | { ok: false; retryAfterMs: number };

interface Failures {
  count: number;
  last: number;
  /** The address's next attempt may not start before this. */
  nextSlot: number;
}

export class AuthGuard {
  private readonly addresses: BoundedTable<Failures>;
  private readonly users: BoundedTable<Failures>;
  /** `user\0address` pairs that signed in successfully. */
  private readonly trusted: BoundedTable<number>;
  private readonly concurrency: number;
  private readonly forgetMs: number;
  private readonly now: () => number;
  private running = 0;
  private readonly waiting: { rank: () => number; start: () => void }[] = [];

  constructor(private readonly options: AuthGuardOptions) {
    const capacity = options.capacity ?? 10_000;
    this.addresses = new BoundedTable(capacity);
    this.users = new BoundedTable(capacity);
    this.trusted = new BoundedTable(capacity);
    this.concurrency = options.concurrency ?? 1;
    this.forgetMs = options.forgetMs ?? 15 * 60 * 1000;
    this.now = options.now ?? Date.now;
  }

  /** Entries held now, over all tables (for tests and the bench). */
  get size(): number {
    return this.addresses.size + this.users.size + this.trusted.size;
  }

  /**
   * Whether `address` may try `user` now, how long it must wait first, and its
   * place in the queue. Reserves the address's next slot.
   */
  admit(address: string, user: string): AuthAdmission {
    const now = this.now();
    const known = this.trusted.get(pairKey(user, address)) !== undefined;
    const byAddress = this.current(this.addresses, address, now);
    const byUser = known ? undefined : this.current(this.users, user, now);
    let addressWait = 0;
    if (byAddress) {
      const slot = Math.max(now, byAddress.nextSlot);
      addressWait = slot - now;
      if (addressWait > this.options.maxMs) return { ok: false, retryAfterMs: addressWait };
      byAddress.nextSlot = slot + this.penalty(byAddress.count);
    }
    const userWait = byUser ? this.penalty(byUser.count) : 0;
    // Read when a place frees, not now: a flood of first guesses from new addresses ranks as
    // clean on arrival, and drops behind as soon as the first of them fails.
    const rank = () => (known ? 0 : this.current(this.addresses, address, this.now()) ? 2 : 1);
    return { ok: true, waitMs: Math.max(addressWait, userWait), rank };
  }

  /**
   * Runs `check` when a place is free, the lowest rank first, in arrival order
   * within a rank. One more place than `concurrency` is kept for trusted
   * logins (rank 0), so the device at its usual address never waits behind a
   * guess in progress.
   */
  async run<T>(rank: () => number, check: () => Promise<T>): Promise<T> {
    if (!this.fits(rank())) {
      await new Promise<void>((start) => this.waiting.push({ rank, start }));
    } else this.running++;
    try {
      return await check();
    } finally {
      this.running--;
      this.startWaiting();
    }
  }

  private fits(rank: number): boolean {
    return this.running < this.concurrency + (rank === 0 ? 1 : 0);
  }

  private startWaiting(): void {
    // The queue is at most one entry per open connection (relay.maxConnections).
    for (;;) {
      let best = -1;
      let bestRank = Number.POSITIVE_INFINITY;
      this.waiting.forEach((entry, i) => {
        const rank = entry.rank();
        if (rank < bestRank) {
          best = i;
          bestRank = rank;
        }
      });
      if (best === -1 || !this.fits(bestRank)) return;
      const [next] = this.waiting.splice(best, 1);
      this.running++;
      next?.start();
    }
  }

  /** Records the outcome of a check. */
  record(address: string, user: string, ok: boolean): void {
    const now = this.now();
    if (ok) {
      this.addresses.delete(address);
      this.trusted.set(pairKey(user, address), now);
      return;
    }
    for (const [table, key] of [
      [this.addresses, address],
      [this.users, user],
    ] as const) {
      const entry = this.current(table, key, now) ?? { count: 0, last: now, nextSlot: now };
      entry.count++;
      entry.last = now;
      entry.nextSlot = Math.max(entry.nextSlot, now + this.penalty(entry.count));
      table.set(key, entry);
    }
  }

  private penalty(failures: number): number {
    if (failures <= 0) return 0;
    return backoffDelay(failures - 1, {
      baseMs: this.options.initialMs,
      maxMs: this.options.maxMs,
    });
  }

  private current(table: BoundedTable<Failures>, key: string, now: number): Failures | undefined {
    const entry = table.get(key);
    if (entry && now - entry.last > this.forgetMs) {
      table.delete(key);
      return undefined;
    }
    return entry;
  }
}

function pairKey(user: string, address: string): string {
  return `${user}\0${address}`;
}

/** A Map that keeps at most `capacity` entries, dropping the least recently set. */
class BoundedTable<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.map.size;
  }

  get(key: string): V | undefined {
    return this.map.get(key);
  }

  set(key: string, value: V): void {
    // Re-inserting moves the key to the end: Map keeps insertion order.
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.capacity) {
      const oldest = this.map.keys().next().value as string;
      this.map.delete(oldest);
    }
  }

  delete(key: string): void {
    this.map.delete(key);
  }
}
