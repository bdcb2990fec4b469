/**
 * Pure decisions of the archive job: what to fetch from a folder, in which
 * groups, and when to write the manifest. The runner owns sockets, files and
 * timers and asks these functions.
 *
 * Incremental work is UID-based: Exchange Online offers neither CONDSTORE nor
 * QRESYNC. New messages always get higher UIDs than every earlier one for as
 * long as the folder's UIDVALIDITY stays the same (RFC 3501 2.3.1.1), so a
 * folder's checkpoint is its UIDVALIDITY and the highest UID archived.
 */

/** What the manifest says about one folder under one UIDVALIDITY. */
export interface ArchivedRange {
  /** Highest UID archived. */
  lastUid: number;
  /** Messages archived. */
  count: number;
}

/** What the server says about a folder (STATUS or SELECT). */
export interface FolderStatus {
  uidValidity: number;
  uidNext?: number;
  messages?: number;
}

export type FolderPlan =
  | { action: 'skip'; reason: 'empty' | 'up-to-date'; uidValidity: number }
  | {
      action: 'fetch';
      reason: 'first-run' | 'incremental' | 'uidvalidity-changed';
      uidValidity: number;
      /** Fetch UIDs above this one. */
      afterUid: number;
      /** Messages expected, for progress; the search gives the real number. */
      estimate: number;
    };

/**
 * A changed UIDVALIDITY means the server numbered the folder anew: every
 * message is fetched again under the new value, in a directory of its own,
 * and nothing archived under the old value is touched.
 */
export function planFolder(
  archived: ReadonlyMap<number, ArchivedRange> | undefined,
  status: FolderStatus,
): FolderPlan {
  const current = archived?.get(status.uidValidity);
  const messages = status.messages;
  if (messages === 0) return { action: 'skip', reason: 'empty', uidValidity: status.uidValidity };
  if (current) {
    if (status.uidNext !== undefined && status.uidNext <= current.lastUid + 1) {
      return { action: 'skip', reason: 'up-to-date', uidValidity: status.uidValidity };
    }
    return {
      action: 'fetch',
      reason: 'incremental',
      uidValidity: status.uidValidity,
      afterUid: current.lastUid,
      estimate: Math.max(0, (messages ?? 0) - current.count),
    };
  }
  return {
    action: 'fetch',
    reason: archived && archived.size > 0 ? 'uidvalidity-changed' : 'first-run',
    uidValidity: status.uidValidity,
    afterUid: 0,
    estimate: messages ?? 0,
  };
}

/**
 * `UID SEARCH` criteria for the UIDs above `afterUid`. The answer must still
 * go through {@link newUids}: `n:*` with `n` above the highest UID matches
 * the last message (RFC 3501: `*` is the highest UID and `n:*` equals `*:n`).
 */
export function searchCriteria(afterUid: number, since?: Date): { uid: string; since?: Date } {
  return { uid: `${afterUid + 1}:*`, ...(since ? { since } : {}) };
}

/** Sorted, unique UIDs above `afterUid`. */
export function newUids(found: readonly number[] | false | undefined, afterUid: number): number[] {
  if (!found) return [];
  return [...new Set(found)].filter((uid) => uid > afterUid).sort((a, b) => a - b);
}

/** `1:3,7,9:10` for [1, 2, 3, 7, 9, 10]: one short UID set per command. */
export function toUidSet(uids: readonly number[]): string {
  const sorted = [...new Set(uids)].sort((a, b) => a - b);
  const ranges: string[] = [];
  let start: number | undefined;
  let prev = 0;
  for (const uid of sorted) {
    if (start !== undefined && uid === prev + 1) {
      prev = uid;
      continue;
    }
    if (start !== undefined) ranges.push(start === prev ? `${start}` : `${start}:${prev}`);
    start = uid;
    prev = uid;
  }
  if (start !== undefined) ranges.push(start === prev ? `${start}` : `${start}:${prev}`);
  return ranges.join(',');
}

/** Splits a list into pieces of at most `size`. */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export interface FetchLimits {
  /**
   * Messages larger than this are fetched in partial chunks and streamed to
   * disk, one chunk per command, so a reconnect resumes where it stopped.
   * @default 4 MiB
   */
  streamAboveBytes: number;
  /** Most bytes one FETCH of whole messages may bring (held in memory). @default 8 MiB */
  maxGroupBytes: number;
  /** Most messages in one FETCH. @default 100 */
  maxGroupMessages: number;
}

export const DEFAULT_FETCH_LIMITS: FetchLimits = {
  streamAboveBytes: 4 * 1024 * 1024,
  maxGroupBytes: 8 * 1024 * 1024,
  maxGroupMessages: 100,
};

export type FetchGroup = { kind: 'whole'; uids: number[] } | { kind: 'stream'; uid: number };

/**
 * Groups messages (in UID order) for fetching: runs of small messages into
 * FETCHes bounded in count and bytes, each large message on its own. The
 * server's RFC822.SIZE is only a hint here (Exchange's is not always exact);
 * nothing depends on it but memory use.
 */
export function groupForFetch(
  messages: readonly { uid: number; size: number }[],
  limits: FetchLimits = DEFAULT_FETCH_LIMITS,
): FetchGroup[] {
  const groups: FetchGroup[] = [];
  let current: number[] = [];
  let bytes = 0;
  const close = () => {
    if (current.length) groups.push({ kind: 'whole', uids: current });
    current = [];
    bytes = 0;
  };
  for (const { uid, size } of messages) {
    if (size > limits.streamAboveBytes) {
      close();
      groups.push({ kind: 'stream', uid });
      continue;
    }
    if (
      current.length >= limits.maxGroupMessages ||
      (current.length && bytes + size > limits.maxGroupBytes)
    ) {
      close();
    }
    current.push(uid);
    bytes += size;
  }
  close();
  return groups;
}

export interface ManifestSyncPolicy {
  /** Write the manifest after this many messages at the latest. @default 256 */
  maxPending: number;
  /** …or once the oldest waiting line is this old. @default 200 */
  maxDelayMs: number;
}

export const DEFAULT_MANIFEST_SYNC: ManifestSyncPolicy = { maxPending: 256, maxDelayMs: 200 };

/**
 * Whether to write the waiting manifest lines now. Waiting is safe: a file
 * renamed into place without its line is found and recorded on the next run
 * (see store.ts), and the checkpoint comes from the manifest, so it can only
 * lag the files, never run ahead of them.
 */
export function shouldWriteManifest(
  pending: number,
  oldestPendingAt: number | undefined,
  now: number,
  policy: ManifestSyncPolicy = DEFAULT_MANIFEST_SYNC,
): boolean {
  if (pending === 0 || oldestPendingAt === undefined) return false;
  return pending >= policy.maxPending || now - oldestPendingAt >= policy.maxDelayMs;
}
