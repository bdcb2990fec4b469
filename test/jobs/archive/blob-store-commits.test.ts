/**
 * The two pieces that let blob commits overlap without loosening the
 * archive's rules: the window of commits in flight (bounded; `drain` is when
 * they are all durable; a failure is never forgotten) and the chain that
 * decides which blobs a crash left may be recorded.
 */
import { describe, expect, it } from 'vitest';
import { CommitWindow } from '../../../src/jobs/archive/store/commit-window.js';
import { type ChainLink, splitByChain } from '../../../src/jobs/archive/store/orphan-chain.js';

function deferred(): { promise: Promise<void>; resolve(): void; reject(error: Error): void } {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('CommitWindow', () => {
  it('keeps at most `limit` commits in flight and drains only when all have landed', async () => {
    const window = new CommitWindow(2);
    const commits = [deferred(), deferred(), deferred()];
    let started = 0;
    const commit = (i: number) => () => {
      started++;
      return commits[i]?.promise as Promise<void>;
    };
    await window.start(commit(0));
    await window.start(commit(1));
    const third = window.start(commit(2));
    await new Promise((r) => setTimeout(r, 20));
    expect(started).toBe(2);
    commits[1]?.resolve();
    await third;
    expect(started).toBe(3);
    let drained = false;
    const drain = window.drain().then(() => {
      drained = true;
    });
    commits[2]?.resolve();
    await new Promise((r) => setTimeout(r, 20));
    expect(drained).toBe(false);
    commits[0]?.resolve();
    await drain;
    expect(drained).toBe(true);
  });

  it('throws a failed commit at every later drain and start: its line must never be written', async () => {
    const window = new CommitWindow(4);
    const failing = deferred();
    await window.start(() => failing.promise);
    failing.reject(new Error('commit refused'));
    await expect(window.drain()).rejects.toThrow('commit refused');
    await expect(window.drain()).rejects.toThrow('commit refused');
    let ran = false;
    await expect(
      window.start(async () => {
        ran = true;
      }),
    ).rejects.toThrow('commit refused');
    expect(ran).toBe(false);
  });
});

describe('splitByChain', () => {
  const link = (uid: number, after?: number, folder = 'INBOX'): ChainLink => ({
    folder,
    uidValidity: 7,
    uid,
    after,
  });

  it('keeps blobs chained to the manifest or to kept blobs, drops those behind a gap', () => {
    const inManifest = (folder: string, uidValidity: number, uid: number) =>
      folder === 'INBOX' && uidValidity === 7 && uid <= 3;
    const { whole, broken } = splitByChain(
      [link(9, 8), link(4, 3), link(5, 4), link(7, 6), link(8, 7)],
      inManifest,
    );
    expect(whole.map((b) => b.uid)).toEqual([4, 5]);
    expect(broken.map((b) => b.uid)).toEqual([7, 8, 9]);
  });

  it('keeps a blob that names no predecessor (a run’s first commit, or one written before chains)', () => {
    const { whole } = splitByChain([link(20), link(21, 20)], () => false);
    expect(whole.map((b) => b.uid)).toEqual([20, 21]);
  });

  it('follows each folder and UIDVALIDITY on its own', () => {
    const { whole, broken } = splitByChain(
      [link(5, 4, 'INBOX'), link(5, 4, 'Sent'), link(4, undefined, 'Sent')],
      () => false,
    );
    expect(whole.map((b) => `${b.folder}:${b.uid}`)).toEqual(['Sent:4', 'Sent:5']);
    expect(broken.map((b) => `${b.folder}:${b.uid}`)).toEqual(['INBOX:5']);
  });
});
