import { describe, expect, it } from 'vitest';
import { acquireConnectionSlot, connectionKey } from '../../src/clients/connection-limit.js';

describe('acquireConnectionSlot', () => {
  it('lets at most `limit` holders in per key and hands slots on in order', async () => {
    const key = connectionKey('Outlook.Office365.com', 993, 'Archive@Contoso.com');
    const order: number[] = [];
    let active = 0;
    let peak = 0;
    await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        const release = await acquireConnectionSlot(key, 3);
        active++;
        peak = Math.max(peak, active);
        order.push(i);
        await new Promise((resolve) => setTimeout(resolve, 5));
        active--;
        release();
      }),
    );
    expect(peak).toBe(3);
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('keeps mailboxes apart and ignores case in the key', async () => {
    expect(connectionKey('HOST', 993, 'A@B.example')).toBe(
      connectionKey('host', 993, 'a@b.example'),
    );
    const a = await acquireConnectionSlot('k:a', 1);
    const b = await acquireConnectionSlot('k:b', 1);
    let third = false;
    const waiting = acquireConnectionSlot('k:a', 1).then((release) => {
      third = true;
      return release;
    });
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(third).toBe(false);
    a();
    a(); // a second release must not free a second slot
    (await waiting)();
    b();
    expect(third).toBe(true);
  });
});
