/**
 * Reading messages from a source mailbox over IMAP, or from an archive
 * folder: the parts the archive job uses and the migrate job and the
 * distributed worker are meant to reuse.
 * Nothing here knows where messages go (files, another mailbox, a blob
 * store): the job says so through callbacks and its own record of what is
 * done.
 *
 *   archive-paths.ts    pure: where an archive keeps its manifest, folders and message files
 *   archive-manifest.ts an archive's manifest read line by line, sound records only
 *   file-hash.ts        SHA-256 and size of a file or a stream, one reused buffer
 *   folder-listing.ts   LIST with STATUS, selectable folders, the job's names, the user's patterns
 *   folder-filter.ts    pure: folder patterns (`*`), \Noselect, patterns that matched nothing
 *   folder-plan.ts      pure: a folder's plan from its STATUS and the job's checkpoint; UID SEARCH criteria
 *   fetch-groups.ts     pure: UID sets, batches, small messages grouped, large ones alone
 *   folder-access.ts    a folder selected read-only through the long session, UIDVALIDITY checked per operation
 *   uid-search.ts       the UIDs above a checkpoint
 *   message-info.ts     FLAGS, INTERNALDATE, RFC822.SIZE of a batch
 *   whole-fetch.ts      small messages, several per FETCH, prepared at once, placed in UID order
 *   partial-download.ts a large message in partial FETCHes, resumable after a reconnect
 *   folder-retry.ts     one folder's work: again after a UIDVALIDITY change, failing the folder or the run
 *   lease-pool.ts       a job's connections lent out in turn; a folder's parts shared with the idle ones
 *   folder-workers.ts   folders spread over a lease pool, those written to one place one after another
 *   progress-counts.ts  messages and bytes done, the estimate refined per folder
 *   read-errors.ts      FolderChangedError, InterruptedError and the job's words for them
 *
 * Each job gives its own codes and words (ReadJobTerms); log lines start
 * with the job's name, as the archive's always have.
 */
export * from './archive-manifest.js';
export * from './archive-paths.js';
export * from './fetch-groups.js';
export * from './file-hash.js';
export * from './folder-access.js';
export * from './folder-filter.js';
export * from './folder-listing.js';
export * from './folder-plan.js';
export * from './folder-retry.js';
export * from './folder-workers.js';
export * from './lease-pool.js';
export * from './message-info.js';
export * from './partial-download.js';
export * from './progress-counts.js';
export * from './read-errors.js';
export * from './uid-search.js';
export * from './whole-fetch.js';
