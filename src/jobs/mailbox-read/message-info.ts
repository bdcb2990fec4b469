import type { ImapFlow } from 'imapflow';
import { toUidSet } from './fetch-groups.js';

/** What the server says about a message besides its bytes. */
export interface MessageInfo {
  /** RFC822.SIZE: a hint for grouping (Exchange's is not always exact). */
  size: number;
  flags: string[];
  /** INTERNALDATE, ISO 8601; null when the server gave none that parses. */
  internalDate: string | null;
}

/** FLAGS, INTERNALDATE and RFC822.SIZE of the given UIDs; UIDs the answer leaves out are absent. */
export async function fetchMessageInfo(
  c: ImapFlow,
  uids: readonly number[],
): Promise<Map<number, MessageInfo>> {
  const wanted = new Set(uids);
  const infos = new Map<number, MessageInfo>();
  if (uids.length === 0) return infos;
  for await (const msg of c.fetch(
    toUidSet(uids),
    { uid: true, flags: true, internalDate: true, size: true },
    { uid: true },
  )) {
    if (!wanted.has(msg.uid)) continue;
    infos.set(msg.uid, {
      size: msg.size ?? 0,
      // \Recent says which session saw the message first (RFC 3501), nothing about the message.
      flags: [...(msg.flags ?? [])].filter((f) => f.toLowerCase() !== '\\recent'),
      internalDate: isoDate(msg.internalDate),
    });
  }
  return infos;
}

function isoDate(value: Date | string | undefined): string | null {
  if (value === undefined) return null;
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}
