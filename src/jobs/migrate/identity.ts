/**
 * Pure: who a message is, independent of where it is stored. Exchange
 * rewrites messages on the way in (sizes and bytes change), so the identity
 * is the Message-ID plus a SHA-256 of the Date, From and Subject header
 * values as sent; a message without a Message-ID is known by that hash.
 */
import { createHash } from 'node:crypto';

/** The header fields fetched from a destination folder (BODY.PEEK[HEADER.FIELDS (...)]). */
export const IDENTITY_HEADERS = ['message-id', 'date', 'from', 'subject'] as const;

/** The header block of a message (or of a HEADER.FIELDS answer): up to the first empty line. */
function headerBlock(raw: Buffer): string {
  const crlf = raw.indexOf('\r\n\r\n');
  const lf = raw.indexOf('\n\n');
  const end = crlf >= 0 && (lf < 0 || crlf < lf) ? crlf : lf >= 0 ? lf : raw.length;
  // latin1 maps every byte to one character: no decoding decision can differ between two copies.
  return raw.subarray(0, end).toString('latin1');
}

/** The first value of each wanted field, unfolded, its whitespace runs made one space. */
export function identityFields(raw: Buffer): Map<string, string> {
  const fields = new Map<string, string>();
  // Unfolding (RFC 5322 2.2.3); a server that folds a long Subject elsewhere must not change it.
  const unfolded = headerBlock(raw).replace(/\r?\n(?=[ \t])/g, '');
  for (const line of unfolded.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!(IDENTITY_HEADERS as readonly string[]).includes(name) || fields.has(name)) continue;
    fields.set(
      name,
      line
        .slice(colon + 1)
        .replace(/[ \t]+/g, ' ')
        .trim(),
    );
  }
  return fields;
}

/** `Message-ID NUL sha256(Date NUL From NUL Subject)`: equal for the same message on any server. */
export function messageIdentity(raw: Buffer): string {
  const fields = identityFields(raw);
  const hash = createHash('sha256');
  hash.update(
    [fields.get('date'), fields.get('from'), fields.get('subject')].map((v) => v ?? '').join('\0'),
    'latin1',
  );
  return `${fields.get('message-id') ?? ''}\0${hash.digest('hex')}`;
}

/** A multiset of identities: each destination message can stand for one source message only. */
export class IdentityCounts {
  private readonly counts = new Map<string, number[]>();

  add(identity: string, uid: number): void {
    const uids = this.counts.get(identity);
    if (uids) uids.push(uid);
    else this.counts.set(identity, [uid]);
  }

  /** Takes one destination message of this identity, returning its UID, if one is left. */
  take(identity: string): number | undefined {
    return this.counts.get(identity)?.shift();
  }
}
