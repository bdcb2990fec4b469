/**
 * Pure: where things live in an archive written by `mailbridge archive`, and
 * read back by `archive verify` and `migrate --from archive:DIR`. Relative
 * paths use `/` whatever the platform; the runner joins them with the output
 * directory.
 *
 *   DIR/{mailbox}/manifest.jsonl                  one JSON line per archived message
 *   DIR/{mailbox}/.lock                           held while a run writes this mailbox
 *   DIR/{mailbox}/.tmp/                           messages being written (same filesystem)
 *   DIR/{mailbox}/{folder}/folder.json            the IMAP folder path the directory holds
 *   DIR/{mailbox}/{folder}/{uidValidity}/{uid}.eml
 *
 * `{mailbox}` and `{folder}` come from `encodeName`: an injective mapping onto
 * names that are safe on Linux, macOS and Windows. A folder's UIDVALIDITY and
 * a message's UID identify it for ever (RFC 3501), so a message's path never
 * changes and never names another message.
 */
import { createHash } from 'node:crypto';

export const MANIFEST_FILE = 'manifest.jsonl';
export const LOCK_FILE = '.lock';
export const TEMP_DIR = '.tmp';
export const FOLDER_INFO_FILE = 'folder.json';
export const MESSAGE_SUFFIX = '.eml';

/** Encoded names longer than this are cut and given a hash suffix (NAME_MAX is 255 bytes). */
export const MAX_NAME_LENGTH = 200;
const HASHED_PREFIX_LENGTH = MAX_NAME_LENGTH - 21;

/** Bytes kept as they are; everything else is `%XX` (UTF-8, upper-case hex). */
const PLAIN = /^[A-Za-z0-9_@+-]$/;
/** Names Windows refuses whatever the extension; encoding their first character frees them. */
const WINDOWS_DEVICE = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])$/i;
/** Names the archive itself uses next to the folder directories. */
const RESERVED = new Set([MANIFEST_FILE]);
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function percent(byte: number): string {
  return `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
}

/**
 * Maps any string (an IMAP folder path after imapflow decoded its modified
 * UTF-7, a mailbox address) to one directory name:
 * - bytes outside `[A-Za-z0-9_@+-.]` are percent-encoded, so `/`, `\`, `:`,
 *   NUL, spaces and non-ASCII never reach the filesystem as they are;
 * - a `.` is encoded at the start (no `.`, `..` or hidden names) and at the
 *   end (Windows drops trailing dots);
 * - the first character of `manifest.jsonl` and of Windows device names
 *   (`CON`, `nul.txt`, …) is encoded;
 * - names that would be longer than {@link MAX_NAME_LENGTH}, and strings
 *   that are not well-formed UTF-16, become a prefix plus `~` and 20 hex
 *   digits of SHA-256. `~` is always encoded otherwise, so a hashed name
 *   never equals a plain one.
 * Injective: every name without `~` decodes back to its input with
 * {@link decodeName}. The empty string maps to `%`, which no other input gives.
 * Case is kept, so two folders differing only in case need a case-sensitive
 * filesystem; `folder.json` detects the clash on one that is not.
 */
export function encodeName(name: string): string {
  if (name === '') return '%';
  if (LONE_SURROGATE.test(name)) return hashed('', name);
  const chars = [...name];
  const pieces = chars.map((char, i) => {
    if (PLAIN.test(char) || (char === '.' && i !== 0 && i !== chars.length - 1)) return char;
    return [...Buffer.from(char, 'utf8')].map(percent).join('');
  });
  let out = pieces.join('');
  const stem = out.split('.')[0] ?? out;
  if (RESERVED.has(out.toLowerCase()) || WINDOWS_DEVICE.test(stem)) {
    out = percent(out.charCodeAt(0)) + out.slice(1);
  }
  if (out.length <= MAX_NAME_LENGTH) return out;
  // Whole characters only, so the readable part never ends in half a UTF-8 sequence.
  let prefix = '';
  for (const piece of pieces) {
    if (prefix.length + piece.length > HASHED_PREFIX_LENGTH) break;
    prefix += piece;
  }
  return hashed(prefix, name);
}

function hashed(prefix: string, name: string): string {
  const digest = createHash('sha256').update(Buffer.from(name, 'utf16le')).digest('hex');
  return `${prefix}~${digest.slice(0, 20)}`;
}

/** The input of `encodeName`, or undefined for a hashed (long or ill-formed) name. */
export function decodeName(encoded: string): string | undefined {
  if (encoded === '%') return '';
  if (encoded.includes('~')) return undefined;
  try {
    return decodeURIComponent(encoded);
  } catch {
    return undefined;
  }
}

/** Mailbox addresses are case-insensitive: one directory whatever case the user typed. */
export function mailboxDirName(mailbox: string): string {
  return encodeName(mailbox.trim().toLowerCase());
}

export function folderDirName(folder: string): string {
  return encodeName(folder);
}

/** A message's path relative to its mailbox directory, as the manifest records it. */
export function messagePath(folderDir: string, uidValidity: number, uid: number): string {
  return `${folderDir}/${uidValidity}/${uid}${MESSAGE_SUFFIX}`;
}

export interface MessageLocation {
  folderDir: string;
  uidValidity: number;
  uid: number;
}

const MESSAGE_PATH = /^([^/\\]+)\/([1-9][0-9]{0,9})\/([1-9][0-9]{0,9})\.eml$/;

/**
 * Parses a relative message path; undefined for anything else. Used on paths
 * read back from a manifest, so a damaged or hostile manifest can never make
 * `verify` or recovery touch a file outside the mailbox directory.
 */
export function parseMessagePath(path: string): MessageLocation | undefined {
  const match = MESSAGE_PATH.exec(path);
  if (!match) return undefined;
  const [, folderDir, uidValidity, uid] = match as unknown as [string, string, string, string];
  if (folderDir === '.' || folderDir === '..' || folderDir.startsWith('.')) return undefined;
  const location = { folderDir, uidValidity: Number(uidValidity), uid: Number(uid) };
  if (location.uidValidity > 0xffffffff || location.uid > 0xffffffff) return undefined;
  return location;
}
