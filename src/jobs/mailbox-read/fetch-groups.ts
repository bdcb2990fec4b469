/**
 * Pure: how the UIDs to read are put into IMAP commands. Small messages go
 * several per FETCH; large ones alone, in partial pieces, so that memory stays
 * bounded and a reconnect resumes a message where it stopped.
 */

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
