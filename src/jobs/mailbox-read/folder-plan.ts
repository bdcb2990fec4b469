/**
 * Pure: what to read from a folder, given what a job already took from it.
 *
 * Incremental work is UID-based: Exchange Online offers neither CONDSTORE nor
 * QRESYNC. New messages always get higher UIDs than every earlier one for as
 * long as the folder's UIDVALIDITY stays the same (RFC 3501 2.3.1.1), so a
 * folder's checkpoint is its UIDVALIDITY and the highest UID taken.
 */

/** What a job's own record (the archive's manifest) says about one folder under one UIDVALIDITY. */
export interface DoneRange {
  /** Highest UID taken. */
  lastUid: number;
  /** Messages taken. */
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
 * message is fetched again under the new value, and nothing taken under the
 * old value is touched.
 */
export function planFolder(
  done: ReadonlyMap<number, DoneRange> | undefined,
  status: FolderStatus,
): FolderPlan {
  const current = done?.get(status.uidValidity);
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
    reason: done && done.size > 0 ? 'uidvalidity-changed' : 'first-run',
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
