import type { Logger } from '../../log/logger.js';
import type { FetchLimits } from '../mailbox-read/fetch-groups.js';
import type { FolderAccess, FolderRef } from '../mailbox-read/folder-access.js';
import type { LeasePool } from '../mailbox-read/lease-pool.js';
import type { ProgressCounts } from '../mailbox-read/progress-counts.js';
import type { ManifestIndex, ManifestRecord } from './manifest.js';
import type { ManifestBatch } from './manifest-batch.js';
import type {
  ArchiveFolderResult,
  ArchiveMailboxOptions,
  ArchiveProgressEvent,
} from './run-types.js';
import type { ArchiveStore } from './store/types.js';

/** What the parts of one mailbox's archive run share (mailbox-job.ts makes it). */
export interface ArchiveRunContext {
  readonly options: ArchiveMailboxOptions;
  readonly mailbox: string;
  readonly logger: Logger;
  readonly store: ArchiveStore;
  readonly index: ManifestIndex;
  readonly batch: ManifestBatch;
  /** The mailbox's connections (`options.connections`), each with its own selected folder. */
  readonly connections: LeasePool<FolderAccess>;
  readonly progress: ProgressCounts;
  readonly limits: FetchLimits;
  /** Bytes per partial FETCH of a large message. */
  readonly chunkBytes: number;
  /** Throws ARCHIVE_INTERRUPTED once `options.signal` is aborted. */
  checkAborted(): void;
  emit(event: ArchiveProgressEvent): void;
}

/**
 * A folder being archived on one connection (`access`), selected there under
 * this UIDVALIDITY; its result filled as it goes, its manifest lines queued
 * through `queue` (in their turn: part-lines.ts).
 */
export interface ArchivingFolder extends FolderRef {
  result: ArchiveFolderResult;
  access: FolderAccess;
  queue(record: ManifestRecord): Promise<void>;
}
