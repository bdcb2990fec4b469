import { describe, expect, it } from 'vitest';
import { runFolderWorkers } from '../../../src/jobs/mailbox-read/folder-workers.js';
import { LeasePool } from '../../../src/jobs/mailbox-read/lease-pool.js';
import type { FolderMapping } from '../../../src/jobs/migrate/folder-plan.js';

const pool = (size: number) => new LeasePool(size, (index) => index);

const mapping = (source: string, destination: string): FolderMapping => ({
  source,
  destination,
  subscribed: true,
  exists: false,
  renamed: false,
});

const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

describe('runFolderWorkers', () => {
  it('runs folders on several workers, results in plan order, one destination on one worker', async () => {
    const plan = [
      mapping('Sent', 'Sent Items'),
      mapping('A', 'A'),
      mapping('Sent Items', 'sent items'),
      mapping('B', 'B'),
    ];
    const log: string[] = [];
    const active = new Set<string>();
    let most = 0;
    const results = await runFolderWorkers(plan, pool(3), async (worker, m) => {
      active.add(m.source);
      most = Math.max(most, active.size);
      log.push(`${worker}:${m.source}`);
      await tick();
      active.delete(m.source);
      return m.source;
    });
    expect(results).toEqual(['Sent', 'A', 'Sent Items', 'B']);
    expect(most).toBe(3);
    const onWorker = (source: string) => log.find((l) => l.endsWith(`:${source}`))?.split(':')[0];
    expect(onWorker('Sent')).toBe(onWorker('Sent Items'));
  });

  it('stops at the first failure and reports it', async () => {
    const plan = ['a', 'b', 'c', 'd', 'e'].map((n) => mapping(n, n));
    const started: string[] = [];
    await expect(
      runFolderWorkers(plan, pool(2), async (_, m) => {
        started.push(m.source);
        await tick();
        if (m.source === 'a') throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(started).not.toContain('e');
  });
});
