import { describe, expect, it } from 'vitest';
import { groupCommit } from '../../../src/jobs/relay/group-commit.js';

/** A flush that runs until the test lets it finish, counting starts. */
function controlledFlush() {
  const finishers: ((error?: Error) => void)[] = [];
  const flush = () =>
    new Promise<void>((resolve, reject) => {
      finishers.push((error) => (error ? reject(error) : resolve()));
    });
  return {
    flush,
    get started() {
      return finishers.length;
    },
    finish(index: number, error?: Error) {
      finishers[index]?.(error);
    },
  };
}

const settled = () => new Promise((r) => setImmediate(r));

describe('groupCommit', () => {
  it('serves ten callers with two flushes: the running one, then one for all who came during it', async () => {
    const f = controlledFlush();
    const request = groupCommit(f.flush);
    const done: number[] = [];
    const first = request().then(() => done.push(0));
    const rest = Array.from({ length: 9 }, (_, i) => request().then(() => done.push(i + 1)));
    expect(f.started).toBe(1);
    f.finish(0);
    await first;
    await settled();
    // The nine asked while the first flush ran, which may have missed their renames.
    expect(done).toEqual([0]);
    expect(f.started).toBe(2);
    f.finish(1);
    await Promise.all(rest);
    expect(done.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(f.started).toBe(2);
  });

  it('rejects every caller of a failed flush, and flushes again for the next', async () => {
    const f = controlledFlush();
    const request = groupCommit(f.flush);
    const a = request();
    const b = request();
    f.finish(0);
    await a;
    await settled();
    f.finish(1, new Error('EIO'));
    await expect(b).rejects.toThrow('EIO');
    const c = request();
    expect(f.started).toBe(3);
    f.finish(2);
    await expect(c).resolves.toBeUndefined();
  });
});
