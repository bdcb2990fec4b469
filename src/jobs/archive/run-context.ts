import type { Logger } from '../../log/logger.js';
import type { FetchLimits } from '../mailbox-read/fetch-groups.js';
import type { FolderAccess, FolderRef } from '../mailbox-read/folder-access.js';
import type { ProgressCounts } from '../mailbox-read/progress-counts.js';
import type { ManifestIndex } from './manifest.js';
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
  readonly access: FolderAccess;
  readonly progress: ProgressCounts;
  readonly limits: FetchLimits;
  /** Bytes per partial FETCH of a large message. */
  readonly chunkBytes: number;
  /** Throws ARCHIVE_INTERRUPTED once `options.signal` is aborted. */
  checkAborted(): void;
  emit(event: ArchiveProgressEvent): void;
}

/** A folder being archived: selected under this UIDVALIDITY, its result filled as it goes. */
export interface ArchivingFolder extends FolderRef {
  result: ArchiveFolderResult;
}
