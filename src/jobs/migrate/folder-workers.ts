/**
 * Spreads folders over a few connection pairs. Folders that go to the same
 * destination folder stay on one worker, one after another: two workers
 * appending to one folder could each take the other's fresh copy of a message
 * both source folders hold for its own, and one copy would be missing.
 */
import type { FolderMapping } from './folder-plan.js';

export async function runFolderWorkers<T>(
  plan: readonly FolderMapping[],
  workers: number,
  work: (worker: number, mapping: FolderMapping) => Promise<T>,
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
  const worker = async (id: number) => {
    for (let group = queue.shift(); group && !failure; group = queue.shift()) {
      for (const index of group) {
        if (failure) return;
        try {
          results[index] = await work(id, plan[index] as FolderMapping);
        } catch (error) {
          // The first failure stops every worker at its next folder; it is the one reported.
          failure ??= { error };
          return;
        }
      }
    }
  };
  const count = Math.max(1, Math.min(workers, queue.length));
  await Promise.all(Array.from({ length: count }, (_, id) => worker(id)));
  if (failure) throw failure.error;
  return results;
}
