/**
 * The archive job's public surface; src/index.ts re-exports it.
 *
 * Module map. What any job that reads a mailbox over IMAP needs (listing and
 * selecting folders, the UID plan, fetch grouping, per-folder retries, the
 * partial and whole FETCH loops, progress counts) lives in ../mailbox-read/
 * (map in its index.ts); this folder holds what is the archive's own:
 *
 *   runner.ts           entry points: archiveMailbox, archiveMailboxes (several at once), archiveError
 *   mailbox-job.ts      one mailbox's run: folders, orphans, repair, checkpoints, estimates, result
 *   folder-archiver.ts  one folder: select, its orphans, plan, search, FETCH in parts over the connections
 *   part-lines.ts       a folder's manifest lines in UID order when its parts run at once
 *   config-section.ts   the config file's `archive:` section
 *   message-archiver.ts one message: temp file, flush, rename in UID order, manifest line
 *   run-context.ts      what those share during one mailbox's run
 *   run-types.ts        options, progress events and results (public types)
 *   manifest-batch.ts   manifest lines written in batches, never before their files
 *   manifest.ts         the manifest: read, write, index of what is archived, checkpoints
 *   checkpoints.ts      checkpoints confirmed against the files on disk, once per run
 *   orphan-recovery.ts  files a crash left in place without manifest lines
 *   repair.ts           `--repair`: damaged files fetched again when the server has them
 *   store/types.ts      what a run needs of where it writes (ArchiveStore); store/open.ts picks one
 *   store.ts            the local one, a mailbox directory: lock, temp files, durable renames, orphans
 *   store/blob-*.ts     the Azure Blob Storage one: URL, client and errors, store, verify's listing
 *   paths.ts            folder and message file names
 *   plan.ts             when to write the manifest (and the generic plan, re-exported)
 *   filters.ts          folder patterns (the generic ones, re-exported)
 *   by-folder.ts        grouping by folder
 *   disk-errors.ts      disk failures as ARCHIVE_ENOSPC and kin
 *   verify.ts           `archive verify`
 *   progress.ts         pure progress state, rates, ETA and the CLI's text
 *   metadata.ts, metadata-types.ts, header-fields.ts, mime-outline.ts, outline-metadata.ts,
 *   mailparser-parsers.ts   a message's manifest fields (sender, subject, attachments)
 */

export type { FolderFilter } from '../mailbox-read/folder-filter.js';
export { matchesPattern } from '../mailbox-read/folder-filter.js';
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
export type * from './run-types.js';
export {
  archiveMailbox,
  archiveMailboxes,
  DEFAULT_ARCHIVE_CONCURRENCY,
  DEFAULT_ARCHIVE_CONNECTIONS,
} from './runner.js';
export type {
  AlteredFile,
  DamagedRecord,
  ManifestProblem,
  VerifyOptions,
  VerifyReport,
} from './verify.js';
export { verifyArchive } from './verify.js';
