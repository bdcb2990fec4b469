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
 *
 * Nor does a recovered line (a file found in place after a crash): with a
 * folder archived over several connections at once, a part's files can be in
 * place while an earlier part's are still missing (part-lines.ts). A run
 * searches from the checkpoint and leaves out what the manifest already has.
 */
import { type FileHandle, open, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fsyncDirectory } from '../../util/durable.js';
import {
  type ArchivedMessage,
  type ManifestReadResult,
  readManifestChunks as readChunks,
  readManifest as readFile,
} from '../mailbox-read/archive-manifest.js';
import type { DoneRange } from '../mailbox-read/folder-plan.js';
import { ArchiveDiskError, diskError } from './disk-errors.js';
import type { MessageMetadata } from './metadata.js';

export {
  lineProblem,
  type ManifestLineProblem,
  type ManifestReadResult,
} from '../mailbox-read/archive-manifest.js';

/** A manifest line: where the message came from, its file, and what its headers say. */
export interface ManifestRecord extends ArchivedMessage, MessageMetadata {}

export function formatManifestLine(record: ManifestRecord): string {
  return `${JSON.stringify(record)}\n`;
}

/** Streams the sound records of a manifest file (mailbox-read/archive-manifest.ts). */
export function readManifest(
  file: string,
  onRecord: (record: ManifestRecord, line: number) => void,
): Promise<ManifestReadResult> {
  return readFile<ManifestRecord>(file, onRecord);
}

/** {@link readManifest} from the manifest's bytes as they arrive (a file, a blob download). */
export function readManifestChunks(
  chunks: AsyncIterable<Buffer | string> | Iterable<Buffer>,
  onRecord: (record: ManifestRecord, line: number) => void,
): Promise<ManifestReadResult> {
  return readChunks<ManifestRecord>(chunks, onRecord);
}

interface UidValidityEntry {
  /** Highest UID of a line written in UID order: the checkpoint. */
  lastUid: number;
  uids: Set<number>;
  /** UIDs of recovered lines: archived, but no checkpoint. */
  recovered: Set<number>;
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
      entry = { lastUid: 0, uids: new Set(), recovered: new Set() };
      byUv.set(record.uidValidity, entry);
    }
    if (entry.uids.has(record.uid)) return false;
    entry.uids.add(record.uid);
    if (record.recovered) entry.recovered.add(record.uid);
    else entry.lastUid = Math.max(entry.lastUid, record.uid);
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
   * Recovered lines are not checked: they are no checkpoint.
   * Returns the UIDs whose files are missing, by UIDVALIDITY.
   */
  async confirmCheckpoints(
    folder: string,
    exists: (uidValidity: number, uid: number) => Promise<boolean>,
  ): Promise<Map<number, number[]>> {
    const missing = new Map<number, number[]>();
    for (const [uidValidity, entry] of this.folders.get(folder) ?? []) {
      const descending = [...entry.uids]
        .filter((uid) => !entry.recovered.has(uid))
        .sort((a, b) => b - a);
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
