/**
 * The manifest: one JSON line per archived message, appended and never
 * rewritten. It is the archive's only record of what is complete: a message
 * counts once its line is in the manifest, and each folder's checkpoint
 * (UIDVALIDITY, highest UID) is derived from the manifest, never kept apart,
 * so it cannot run ahead of the files.
 *
 * Lines are appended with O_APPEND and flushed (fdatasync). A crash can cut
 * the last write short: the reader ignores a last line without its newline,
 * and the writer cuts it off before appending (the messages of such lines are
 * still on disk and are recorded again by recovery).
 *
 * Only sound lines count (see {@link lineProblem}): the reader hands the
 * others to no one, so a line that `verify` rejects can never move a
 * checkpoint. A forged line with a high UID would otherwise make every later
 * run skip the folder's new mail.
 */
import { createReadStream } from 'node:fs';
import { type FileHandle, open, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fsyncDirectory } from '../../util/durable.js';
import type { DoneRange } from '../mailbox-read/folder-plan.js';
import { ArchiveDiskError, diskError } from './disk-errors.js';
import type { MessageMetadata } from './metadata.js';
import { folderDirName, messagePath, parseMessagePath } from './paths.js';

export interface ManifestRecord extends MessageMetadata {
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

/** A record, or undefined when the line is not one of ours. */
export function parseManifestLine(line: string): ManifestRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const r = value as Partial<ManifestRecord>;
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
  return r as ManifestRecord;
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
  record: ManifestRecord,
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

export function formatManifestLine(record: ManifestRecord): string {
  return `${JSON.stringify(record)}\n`;
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
export async function readManifest(
  file: string,
  onRecord: (record: ManifestRecord, line: number) => void,
): Promise<ManifestReadResult> {
  let exists = true;
  await stat(file).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') exists = false;
    else throw error;
  });
  return readManifestChunks(exists ? createReadStream(file) : [], onRecord);
}

/** {@link readManifest} from the manifest's bytes as they arrive (a file, a blob download). */
export async function readManifestChunks(
  chunks: AsyncIterable<Buffer | string> | Iterable<Buffer>,
  onRecord: (record: ManifestRecord, line: number) => void,
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
      const record = parseManifestLine(text);
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

interface UidValidityEntry {
  lastUid: number;
  uids: Set<number>;
}

/** What is archived, by folder and UIDVALIDITY: the checkpoints and the duplicate check. */
export class ManifestIndex {
  private readonly folders = new Map<string, Map<number, UidValidityEntry>>();
  messages = 0;
  bytes = 0;

  has(folder: string, uidValidity: number, uid: number): boolean {
    return this.folders.get(folder)?.get(uidValidity)?.uids.has(uid) ?? false;
  }

  /** Adds a record; false when that message was recorded already (the line is then a duplicate). */
  add(record: ManifestRecord): boolean {
    let byUv = this.folders.get(record.folder);
    if (!byUv) {
      byUv = new Map();
      this.folders.set(record.folder, byUv);
    }
    let entry = byUv.get(record.uidValidity);
    if (!entry) {
      entry = { lastUid: 0, uids: new Set() };
      byUv.set(record.uidValidity, entry);
    }
    if (entry.uids.has(record.uid)) return false;
    entry.uids.add(record.uid);
    entry.lastUid = Math.max(entry.lastUid, record.uid);
    this.messages++;
    this.bytes += record.size;
    return true;
  }

  /**
   * Lowers each checkpoint of `folder` to the highest UID whose file `exists`
   * finds: a line can name its own path and still have no file behind it (a
   * forged line with a high UID would otherwise make every later run skip the
   * folder's new mail). Usually one check per UIDVALIDITY, the highest line;
   * more only where files are missing. The lines stay counted as archived.
   * Returns the UIDs whose files are missing, by UIDVALIDITY.
   */
  async confirmCheckpoints(
    folder: string,
    exists: (uidValidity: number, uid: number) => Promise<boolean>,
  ): Promise<Map<number, number[]>> {
    const missing = new Map<number, number[]>();
    for (const [uidValidity, entry] of this.folders.get(folder) ?? []) {
      const descending = [...entry.uids].sort((a, b) => b - a);
      let confirmed = 0;
      for (const uid of descending) {
        if (await exists(uidValidity, uid)) {
          confirmed = uid;
          break;
        }
        missing.set(uidValidity, [...(missing.get(uidValidity) ?? []), uid]);
      }
      entry.lastUid = confirmed;
    }
    return missing;
  }

  /** The folder's checkpoints, one per UIDVALIDITY it has had. */
  ranges(folder: string): Map<number, DoneRange> {
    const out = new Map<number, DoneRange>();
    for (const [uv, entry] of this.folders.get(folder) ?? []) {
      out.set(uv, { lastUid: entry.lastUid, count: entry.uids.size });
    }
    return out;
  }

  folderNames(): string[] {
    return [...this.folders.keys()];
  }
}

/** Appends to one mailbox's manifest. One writer per manifest: the store's lock ensures it. */
export class ManifestWriter {
  private broken = false;

  private constructor(
    private readonly file: string,
    private readonly handle: FileHandle,
    private length: number,
  ) {}

  /**
   * Reads the manifest into `index` and opens it for appending, cutting off a
   * line a crash left unfinished.
   */
  static async open(
    file: string,
    index: ManifestIndex,
  ): Promise<{ writer: ManifestWriter; read: ManifestReadResult }> {
    const read = await readManifest(file, (record) => {
      index.add(record);
    });
    let created = false;
    await stat(file).catch(() => {
      created = true;
    });
    // Like the message files: the lines name senders, recipients and subjects. A manifest
    // written by an earlier version (0644) is tightened too.
    const handle = await open(file, 'a', 0o600);
    try {
      if (((await handle.stat()).mode & 0o077) !== 0) await handle.chmod(0o600);
      if (read.tornBytes > 0) {
        await handle.truncate(read.validLength);
        await handle.datasync();
      }
      if (created) {
        await handle.sync();
        await fsyncDirectory(dirname(file));
      }
    } catch (error) {
      await handle.close();
      throw error;
    }
    return { writer: new ManifestWriter(file, handle, read.validLength), read };
  }

  /** Appends the lines and flushes them to disk; resolves once they are durable. */
  async append(records: readonly ManifestRecord[]): Promise<void> {
    if (records.length === 0) return;
    if (this.broken) {
      throw new ArchiveDiskError({
        code: 'ARCHIVE_MANIFEST_WRITE_FAILED',
        message: `An earlier write to ${this.file} failed`,
        remedy: 'Fix the cause (disk full, permissions) and run the archive again.',
      });
    }
    const data = Buffer.from(records.map(formatManifestLine).join(''), 'utf8');
    try {
      let written = 0;
      while (written < data.length) {
        const { bytesWritten } = await this.handle.write(data, written, data.length - written);
        written += bytesWritten;
      }
      await this.handle.datasync();
      this.length += data.length;
    } catch (error) {
      // A short write must not leave half a line for the next append to glue onto.
      this.broken = true;
      await this.handle.truncate(this.length).catch(() => {});
      throw diskError(
        'ARCHIVE_MANIFEST_WRITE_FAILED',
        `Could not write to ${this.file}: ${(error as Error).message}`,
        error,
      );
    }
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}
