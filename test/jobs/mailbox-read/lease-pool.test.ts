import { describe, expect, it } from 'vitest';
import { LeasePool, shareParts } from '../../../src/jobs/mailbox-read/lease-pool.js';

const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

describe('LeasePool and shareParts', () => {
  it('makes items only when needed, lends each to one holder, in the order asked', async () => {
    let made = 0;
    const pool = new LeasePool(2, (i) => {
      made++;
      return `pair ${i}`;
    });
    const a = await pool.acquire();
    expect(made).toBe(1);
    const b = pool.tryAcquire();
    expect(b?.item).toBe('pair 1');
    expect(pool.tryAcquire()).toBeUndefined();
    const order: string[] = [];
    const c = pool.acquire().then((l) => order.push(`c:${l.item}`));
    const d = pool.acquire().then((l) => order.push(`d:${l.item}`));
    expect(pool.waiting).toBe(2);
    b?.release();
    b?.release();
    a.release();
    await Promise.all([c, d]);
    expect(order).toEqual(['c:pair 1', 'd:pair 0']);
    expect(made).toBe(2);
  });

  it('spreads the parts of one job over every idle item, each part once', async () => {
    const pool = new LeasePool(4, (i) => i);
    const lead = await pool.acquire();
    const done: number[] = [];
    const by = new Set<number>();
    await shareParts(
      pool,
      lead.item,
      Array.from({ length: 20 }, (_, i) => i),
      async (item, part) => {
        by.add(item);
        await tick();
        done.push(part);
      },
    );
    expect(done.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(by.size).toBe(4);
    // The helpers went back; the lead is still the caller's.
    expect(pool.tryAcquire()).toBeDefined();
  });

  it('sends helpers back when another holder waits', async () => {
    const pool = new LeasePool(2, (i) => i);
    const lead = await pool.acquire();
    let other: number | undefined;
    const helped: number[] = [];
    await shareParts(pool, lead.item, [1, 2, 3, 4, 5, 6], async (item, part) => {
      if (part === 2) {
        // Another folder asks for a pair: the helper gives its own back after this part.
        void pool.acquire().then((l) => {
          other = l.item;
        });
      }
      if (item !== lead.item) helped.push(part);
      await tick();
    });
    expect(other).toBe(1);
    expect(helped.length).toBeLessThanOrEqual(2);
  });

  it('stops every worker at the first failure and throws it once all stopped', async () => {
    const pool = new LeasePool(3, (i) => i);
    const lead = await pool.acquire();
    const started: number[] = [];
    await expect(
      shareParts(pool, lead.item, [1, 2, 3, 4, 5, 6, 7, 8, 9], async (_, part) => {
        started.push(part);
        await tick();
        if (part === 2) throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(started.length).toBeLessThan(9);
  });

  it('lets a part finish while the worker starts the next, and takes no item back busy', async () => {
    const pool = new LeasePool(2, (i) => i);
    const lead = await pool.acquire();
    const tails = new Map<number, Promise<void>>();
    const busy = new Set<number>();
    const overlapped: number[] = [];
    const returnedBusy: number[] = [];
    await shareParts(
      pool,
      lead.item,
      [1, 2, 3, 4, 5, 6],
      async (item, part) => {
        await tick();
        // The part before on this item is still finishing: reading and writing overlap.
        if (busy.has(item)) overlapped.push(part);
        await tails.get(item);
        busy.add(item);
        // Writing takes longer than reading, as on a link where the destination is the slower side.
        tails.set(
          item,
          new Promise((resolve) => setTimeout(resolve, 20)).then(() => {
            busy.delete(item);
          }),
        );
      },
      async (item) => {
        await tails.get(item);
        if (busy.has(item)) returnedBusy.push(item);
      },
    );
    expect(overlapped.length).toBeGreaterThan(0);
    expect(returnedBusy).toEqual([]);
    expect(busy.size).toBe(0);
  });

  it('throws a failure of finish once every worker stopped', async () => {
    const pool = new LeasePool(2, (i) => i);
    const lead = await pool.acquire();
    const done: number[] = [];
    await expect(
      shareParts(
        pool,
        lead.item,
        [1, 2, 3, 4],
        async (_, part) => {
          await tick();
          done.push(part);
        },
        async (item) => {
          if (item === lead.item) throw new Error('tail failed');
        },
      ),
    ).rejects.toThrow('tail failed');
    expect(done.sort()).toEqual([1, 2, 3, 4]);
  });
});
