/**
 * Spreads a job's folders over the connections of a lease pool: each folder
 * is worked on with a connection of its own, and its batches may spread
 * further (shareParts). Folders written to the same place (`destination`,
 * compared without case) run one after another: two migrate folders
 * appending to one destination at once could each take the other's fresh
 * copy of a message both source folders hold for its own, and one copy would
 * be missing.
 */
import type { LeasePool } from './lease-pool.js';

/** A folder to work on: where it is written (a destination folder, an archive folder). */
export interface FolderWork {
  readonly destination: string;
}

export async function runFolderWorkers<F extends FolderWork, T, P>(
  plan: readonly F[],
  pool: LeasePool<P>,
  work: (item: P, folder: F) => Promise<T>,
): Promise<T[]> {
  const groups = new Map<string, number[]>();
  plan.forEach((folder, index) => {
    const key = folder.destination.toLowerCase();
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
          results[index] = await work(lease.item, plan[index] as F);
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
