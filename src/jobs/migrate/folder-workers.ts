/**
 * Spreads folders over the pool's connection pairs: each folder is planned on
 * a pair of its own, and its batches may spread further (copy-folder.ts).
 * Folders that go to the same destination folder run one after another: two
 * folders appending to one destination at once could each take the other's
 * fresh copy of a message both source folders hold for its own, and one copy
 * would be missing.
 */
import type { FolderMapping } from './folder-plan.js';
import type { LeasePool } from './lease-pool.js';

export async function runFolderWorkers<T, P>(
  plan: readonly FolderMapping[],
  pool: LeasePool<P>,
  work: (item: P, mapping: FolderMapping) => Promise<T>,
): Promise<T[]> {
  const groups = new Map<string, number[]>();
  plan.forEach((mapping, index) => {
    const key = mapping.destination.toLowerCase();
    const group = groups.get(key);
    if (group) group.push(index);
    else groups.set(key, [index]);
  });
  const queue = [...groups.values()];
  const results: T[] = new Array(plan.length);
  let failure: { error: unknown } | undefined;
  const runner = async () => {
    for (let group = queue.shift(); group && !failure; group = queue.shift()) {
      for (const index of group) {
        if (failure) return;
        const lease = await pool.acquire();
        try {
          results[index] = await work(lease.item, plan[index] as FolderMapping);
        } catch (error) {
          // The first failure stops every runner at its next folder; it is the one reported.
          failure ??= { error };
          return;
        } finally {
          lease.release();
        }
      }
    }
  };
  const count = Math.max(1, Math.min(pool.size, queue.length));
  await Promise.all(Array.from({ length: count }, () => runner()));
  if (failure) throw failure.error;
  return results;
}
