/** The archive job's public surface; src/index.ts re-exports it. */

export type { FolderFilter } from './filters.js';
export { matchesPattern } from './filters.js';
export type { ManifestLineProblem, ManifestReadResult, ManifestRecord } from './manifest.js';
export { readManifest } from './manifest.js';
export type { AttachmentInfo, MessageAddress, MessageMetadata } from './metadata.js';
export { parseMessageMetadata } from './metadata.js';
export {
  folderDirName as archiveFolderDirName,
  mailboxDirName as archiveMailboxDirName,
} from './paths.js';
export type { ArchiveSummary } from './progress.js';
export { summarizeRun } from './progress.js';
export type {
  ArchiveCounts,
  ArchiveFolderResult,
  ArchiveMailboxesOptions,
  ArchiveMailboxFailure,
  ArchiveMailboxOptions,
  ArchiveMailboxResult,
  ArchiveProgressEvent,
  ArchiveRunResult,
  UnrepairableFile,
} from './runner.js';
export { archiveMailbox, archiveMailboxes, DEFAULT_ARCHIVE_CONCURRENCY } from './runner.js';
export type {
  AlteredFile,
  DamagedRecord,
  ManifestProblem,
  VerifyOptions,
  VerifyReport,
} from './verify.js';
export { verifyArchive } from './verify.js';
