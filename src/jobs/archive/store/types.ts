/**
 * What an archive run needs of the place it writes to: a local directory
 * (../store.ts) or a blob container (blob-store.ts). Each keeps the same
 * rules: a message is stored whole or not at all, under the name paths.ts
 * gives it; the manifest is the checkpoint and lists only stored messages;
 * one run writes to a mailbox's archive at a time.
 */
import type { ManifestIndex, ManifestReadResult, ManifestRecord } from '../manifest.js';
import type { VerifyOptions, VerifyReport } from '../verify.js';
import type { WrittenFile } from './file-hash.js';

export type { WrittenFile } from './file-hash.js';

/** A message being written; nothing of it is visible under its name before `commit`. */
export interface PartialMessage {
  readonly size: number;
  write(chunk: Buffer): Promise<void>;
  /** Makes what was written durable where it waits; no more writes after it. Returns its hash. */
  flush(): Promise<WrittenFile>;
  /** Flushes, puts the message in place (relative path) and returns its hash and size. */
  commit(relativePath: string): Promise<WrittenFile>;
  discard(): Promise<void>;
}

/** A complete message in place without a manifest line, left by a crash. */
export interface OrphanFile {
  folder: string;
  folderDir: string;
  uidValidity: number;
  uid: number;
  path: string;
}

/** Appends manifest lines; resolves once they are durable. */
export interface ManifestAppender {
  append(records: readonly ManifestRecord[]): Promise<void>;
  close(): Promise<void>;
}

/** One mailbox's archive, held (locked) by this run from open to `close`. */
export interface ArchiveStore {
  /** Where it is, for people and results: a directory, or a blob URL. */
  readonly dir: string;
  /** The directory name of `folder`, recorded with the folder's name the first time. */
  folderDir(folder: string): Promise<string>;
  /** A message to be stored under `relativePath` (object stores need the name up front). */
  createPartial(relativePath: string): Promise<PartialMessage>;
  /** A message given whole, written and flushed; `commit` puts it in place. */
  prepareMessage(data: Buffer, relativePath: string): Promise<PartialMessage>;
  /** Makes every commit so far durable; called before their manifest lines are written. */
  sync(): Promise<void>;
  /** Reads the manifest into `index` and opens it for appending. */
  openManifest(
    index: ManifestIndex,
  ): Promise<{ writer: ManifestAppender; read: ManifestReadResult }>;
  /** Messages in place that the manifest does not list. */
  findOrphans(index: ManifestIndex): Promise<OrphanFile[]>;
  /** Whether a message is in place under `relativePath`. */
  hasMessage(relativePath: string): Promise<boolean>;
  hashMessage(relativePath: string): Promise<WrittenFile>;
  /** A message in place, for the metadata parser: a file path (read as a stream) or its bytes. */
  messageSource(relativePath: string): Promise<Buffer | string>;
  /** `archive verify` of this mailbox's archive. */
  verify(options?: VerifyOptions): Promise<VerifyReport>;
  /** Releases the lock. Call only after the last manifest write. */
  close(): Promise<void>;
}
