/**
 * Reading an archive's manifest (`manifest.jsonl`, one JSON line per
 * archived message): the part `archive` (checkpoints, verify) and `migrate
 * --from archive:DIR` (restore) share. Writing it is the archive's own
 * business (jobs/archive/manifest.ts).
 *
 * Only sound lines count (see {@link lineProblem}): the reader hands the
 * others to no one, so a line that `verify` rejects can never move a
 * checkpoint or be restored. The reader ignores a last line without its
 * newline: a crash cut that write short.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { folderDirName, messagePath, parseMessagePath } from './archive-paths.js';

/** What a manifest line says of where a message came from and what its file holds. */
export interface ArchivedMessage {
  /** IMAP folder path, as the server lists it (Unicode). */
  folder: string;
  uidValidity: number;
  uid: number;
  /** INTERNALDATE (ISO 8601); null when recovered after a crash and no longer on the server. */
  internalDate: string | null;
  /** Flags when archived; null as for `internalDate`. */
  flags: string[] | null;
  /** Bytes of the file: exactly what the server returned for BODY[]. */
  size: number;
  /** SHA-256 (hex) of the file. */
  sha256: string;
  /** Relative to the manifest's directory, `/`-separated: `{folder}/{uidValidity}/{uid}.eml`. */
  path: string;
  /** When the message was archived (ISO 8601). */
  archivedAt: string;
  /** Recorded by crash recovery from a file already in place. */
  recovered?: true;
}

const SHA256 = /^[0-9a-f]{64}$/;

function isUint32(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 && value <= 0xffffffff;
}

/**
 * A record, or undefined when the line is not one of ours. `R` is what the
 * caller's archive lines carry beyond the fields checked here.
 */
export function parseManifestLine<R extends ArchivedMessage = ArchivedMessage>(
  line: string,
): R | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const r = value as Partial<ArchivedMessage>;
  if (
    typeof r.folder !== 'string' ||
    !isUint32(r.uidValidity) ||
    !isUint32(r.uid) ||
    typeof r.path !== 'string' ||
    typeof r.sha256 !== 'string' ||
    !SHA256.test(r.sha256) ||
    typeof r.size !== 'number' ||
    !Number.isInteger(r.size) ||
    r.size < 0
  ) {
    return undefined;
  }
  return r as R;
}

/**
 * Why a record is not sound, or undefined when it is. Its path must be the
 * one the archive gives that very message (`{folder}/{uidValidity}/{uid}.eml`
 * for its own folder, UIDVALIDITY and UID): a path outside the mailbox
 * directory is `unsafe`, one naming another message is `wrong`.
 * `folderDirs` caches the directory name of each folder (a handful per
 * mailbox) so a long manifest is read without encoding a name per line.
 */
export function lineProblem(
  record: ArchivedMessage,
  folderDirs: Map<string, string> = new Map(),
): 'unsafe path' | 'wrong path' | undefined {
  if (!parseMessagePath(record.path)) return 'unsafe path';
  let folderDir = folderDirs.get(record.folder);
  if (folderDir === undefined) {
    folderDir = folderDirName(record.folder);
    folderDirs.set(record.folder, folderDir);
  }
  return record.path === messagePath(folderDir, record.uidValidity, record.uid)
    ? undefined
    : 'wrong path';
}

/** A complete line that is not a sound record. */
export interface ManifestLineProblem {
  /** 1-based. */
  line: number;
  problem: 'not a record' | 'unsafe path' | 'wrong path';
  /** The line's `path`, for the two path problems. */
  path?: string;
}

export interface ManifestReadResult {
  /** Bytes up to the end of the last complete line. */
  validLength: number;
  /** Bytes after it: a line cut short by a crash. */
  tornBytes: number;
  /** Complete lines that are not sound records, in file order; skipped. */
  problems: ManifestLineProblem[];
  records: number;
}

/**
 * Streams the manifest line by line, holding one line at a time, and hands
 * `onRecord` the sound records only. A missing file reads as empty.
 */
export async function readManifest<R extends ArchivedMessage = ArchivedMessage>(
  file: string,
  onRecord: (record: R, line: number) => void,
): Promise<ManifestReadResult> {
  let exists = true;
  await stat(file).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') exists = false;
    else throw error;
  });
  return readManifestChunks(exists ? createReadStream(file) : [], onRecord);
}

/** {@link readManifest} from the manifest's bytes as they arrive (a file, a blob download). */
export async function readManifestChunks<R extends ArchivedMessage = ArchivedMessage>(
  chunks: AsyncIterable<Buffer | string> | Iterable<Buffer>,
  onRecord: (record: R, line: number) => void,
): Promise<ManifestReadResult> {
  const result: ManifestReadResult = { validLength: 0, tornBytes: 0, problems: [], records: 0 };
  const folderDirs = new Map<string, string>();
  let carry: Buffer[] = [];
  let carryLength = 0;
  let lineNo = 0;
  for await (const chunk of chunks) {
    let buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    for (;;) {
      const nl = buf.indexOf(0x0a);
      if (nl < 0) {
        carry.push(buf);
        carryLength += buf.length;
        break;
      }
      const lineBytes = carryLength
        ? Buffer.concat([...carry, buf.subarray(0, nl)])
        : buf.subarray(0, nl);
      carry = [];
      carryLength = 0;
      buf = buf.subarray(nl + 1);
      lineNo++;
      result.validLength += lineBytes.length + 1;
      const text = lineBytes.toString('utf8');
      if (text.trim() === '') continue;
      const record = parseManifestLine<R>(text);
      if (!record) {
        result.problems.push({ line: lineNo, problem: 'not a record' });
        continue;
      }
      const problem = lineProblem(record, folderDirs);
      if (problem) {
        result.problems.push({ line: lineNo, problem, path: record.path });
        continue;
      }
      result.records++;
      onRecord(record, lineNo);
    }
  }
  result.tornBytes = carryLength;
  return result;
}
