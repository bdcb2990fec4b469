/**
 * A fixed number of things (an archive's connections, migrate's connection
 * pairs) lent out one holder at a time, in the order they were asked for. A
 * holder that only borrowed to help (`tryAcquire`) gives its thing back as
 * soon as someone else waits, so a large folder uses every idle connection
 * without keeping the next folder from starting.
 */
export interface Lease<T> {
  readonly item: T;
  /** Gives the item back; safe to call twice. */
  release(): void;
}

export class LeasePool<T> {
  private readonly created: T[] = [];
  private readonly free: T[] = [];
  private readonly waiters: ((item: T) => void)[] = [];

  /** `create(index)` makes the index-th item the first time it is needed. */
  constructor(
    readonly size: number,
    private readonly create: (index: number) => T,
  ) {}

  /** Every item made so far, lent or not: for closing them at the end. */
  get items(): readonly T[] {
    return this.created;
  }

  /** Holders waiting for an item. */
  get waiting(): number {
    return this.waiters.length;
  }

  async acquire(): Promise<Lease<T>> {
    const now = this.tryAcquire();
    if (now) return now;
    const item = await new Promise<T>((resolve) => this.waiters.push(resolve));
    return this.lease(item);
  }

  /** An item now, or undefined when all are lent out. */
  tryAcquire(): Lease<T> | undefined {
    const item = this.free.pop() ?? this.make();
    return item === undefined ? undefined : this.lease(item);
  }

  private make(): T | undefined {
    if (this.created.length >= this.size) return undefined;
    const item = this.create(this.created.length);
    this.created.push(item);
    return item;
  }

  private lease(item: T): Lease<T> {
    let released = false;
    return {
      item,
      release: () => {
        if (released) return;
        released = true;
        const next = this.waiters.shift();
        if (next) next(item);
        else this.free.push(item);
      },
    };
  }
}

/**
 * Works through `parts` with the `lead` lease and every item the pool can
 * spare meanwhile; helpers go back as soon as a holder waits in `acquire`.
 * The lead stays with the caller. The first failure stops every worker at its
 * next part and is thrown once all have stopped. `finish(item)`, when given,
 * runs when a worker takes no more parts, before its item goes back: `work`
 * may leave the end of a part running (writing it while the next is read),
 * and an item must not go back busy.
 */
export async function shareParts<T, P>(
  pool: LeasePool<T>,
  lead: T,
  parts: readonly P[],
  work: (item: T, part: P) => Promise<void>,
  finish?: (item: T) => Promise<void>,
): Promise<void> {
  const queue = [...parts];
  let failure: { error: unknown } | undefined;
  const helpers: Promise<void>[] = [];
  const drain = async (item: T, helper: boolean): Promise<void> => {
    try {
      while (queue.length > 0 && !failure) {
        if (helper && pool.waiting > 0) return;
        const part = queue.shift() as P;
        try {
          await work(item, part);
        } catch (error) {
          failure ??= { error };
          return;
        }
        if (!helper) recruit();
      }
    } finally {
      await finish?.(item).catch((error: unknown) => {
        failure ??= { error };
      });
    }
  };
  const recruit = () => {
    // One part is left for the lead: a helper for it alone would only add a SELECT.
    while (queue.length > 1 && !failure && pool.waiting === 0) {
      const lease = pool.tryAcquire();
      if (!lease) return;
      helpers.push(drain(lease.item, true).finally(() => lease.release()));
    }
  };
  recruit();
  await drain(lead, false);
  await Promise.all(helpers);
  if (failure) throw failure.error;
}
