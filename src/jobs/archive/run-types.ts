/**
 * The archive job's options, progress events and results: its public
 * surface (src/index.ts re-exports them).
 */

import type { TokenProvider } from '../../auth/token-provider.js';
import type { ImapSessionOptions, ImapSessionStats } from '../../clients/imap-session.js';
import type { MailbridgeError } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import type { FetchLimits } from '../mailbox-read/fetch-groups.js';
import type { FolderPlan } from '../mailbox-read/folder-plan.js';
import type { MessageCounts } from '../mailbox-read/progress-counts.js';
import type { ManifestSyncPolicy } from './plan.js';

export interface ArchiveMailboxOptions {
  /** Mailbox to archive (a user or shared mailbox address). */
  mailbox: string;
  /** Archive root; the mailbox gets a directory of its own inside. */
  outDir: string;
  /** Folder paths to take, `*` as wildcard; all selectable folders when empty. */
  folders?: readonly string[];
  /** Folder paths to leave out, `*` as wildcard. */
  exclude?: readonly string[];
  /** Only messages with an INTERNALDATE on or after this day (IMAP `SEARCH SINCE`). */
  since?: Date;
  /**
   * Accept a selection of no folder at all. Otherwise `folders` and `exclude`
   * that leave nothing to archive fail the mailbox (ARCHIVE_NO_FOLDER_MATCHED,
   * exit 2): a scheduled run would back up nothing for ever without anyone
   * noticing. @default false
   */
  allowEmpty?: boolean;
  /** Share one provider per app; a new one is made from `config` when absent. */
  tokenProvider?: TokenProvider;
  logger?: Logger;
  /** Called synchronously; keep it cheap (the CLI only updates counters). */
  onProgress?: (event: ArchiveProgressEvent) => void;
  /** Stops the run between two messages; what is stored stays stored. */
  signal?: AbortSignal;
  /**
   * IMAP connections this run opens to the mailbox: folders are archived on
   * several at once, and a large folder's UIDs are split into parts across
   * them. At most `maxConnections`. @default 1
   */
  connections?: number;
  /** Connections to one mailbox open at once, across the process. @default 8 */
  maxConnections?: number;
  /** Passed to the long-session helper. */
  session?: Pick<
    ImapSessionOptions,
    'maxAttempts' | 'baseDelayMs' | 'maxThrottleWaitMs' | 'reconnectMarginMs' | 'connectionSlots'
  >;
  /** How messages are grouped into FETCH commands. */
  fetch?: Partial<FetchLimits> & {
    /**
     * Bytes per partial FETCH of a large message. Larger pieces mean fewer
     * round trips and more memory. @default 256 KiB
     */
    chunkBytes?: number;
  };
  /** When manifest lines are written (each write is flushed to disk). */
  manifestSync?: Partial<ManifestSyncPolicy>;
  /**
   * Before archiving, fetch again the files `verify` finds missing or
   * altered, when the server still has them (see `unrepairable` for those it
   * has not). Reads every file of the mailbox directory. @default false
   */
  repair?: boolean;
}

/** Messages and bytes archived in this run so far, and the messages it expects to archive. */
export type ArchiveCounts = MessageCounts;

export type ArchiveProgressEvent =
  | {
      type: 'mailbox-start';
      mailbox: string;
      directory: string;
      folders: number;
      counts: ArchiveCounts;
    }
  | {
      type: 'folder-start';
      mailbox: string;
      folder: string;
      uidValidity: number;
      reason: Extract<FolderPlan, { action: 'fetch' }>['reason'];
      toFetch: number;
      counts: ArchiveCounts;
    }
  | {
      type: 'message';
      mailbox: string;
      folder: string;
      uid: number;
      size: number;
      counts: ArchiveCounts;
    }
  | { type: 'folder-done'; mailbox: string; folder: ArchiveFolderResult; counts: ArchiveCounts }
  | { type: 'mailbox-done'; mailbox: string; result: ArchiveMailboxResult; counts: ArchiveCounts };

export interface ArchiveFolderResult {
  folder: string;
  /** Directory name inside the mailbox directory; absent when nothing was ever written. */
  directory?: string;
  uidValidity?: number;
  status: 'archived' | 'up-to-date' | 'empty' | 'failed' | 'interrupted';
  reason?: Extract<FolderPlan, { action: 'fetch' }>['reason'];
  messagesNew: number;
  bytesNew: number;
  /** Messages deleted on the server between the search and their fetch. */
  vanished: number;
  parseErrors: number;
  /** Files found in place without a manifest line (after a crash) and recorded. */
  recovered: number;
  error?: { code: string; message: string };
}

/** A missing or altered file that `repair` could not fetch again. */
export interface UnrepairableFile {
  /** Relative to the mailbox directory, as in the manifest. */
  path: string;
  folder: string;
  reason: string;
}

export interface ArchiveMailboxResult {
  mailbox: string;
  /** The mailbox's archive directory. */
  directory: string;
  /** Every selected folder archived (or already up to date). */
  ok: boolean;
  /** Stopped by `signal`; run again to continue. */
  interrupted: boolean;
  folders: ArchiveFolderResult[];
  messagesNew: number;
  bytesNew: number;
  /** Messages in the archive (all folders, all UIDVALIDITY values) after the run. */
  messagesTotal: number;
  bytesTotal: number;
  parseErrors: number;
  recovered: number;
  vanished: number;
  /** `folders` patterns that matched no folder. */
  unmatchedPatterns: string[];
  /** Damaged files fetched again (`repair`). */
  repaired: number;
  /** Damaged files the server could not give again (`repair`); the mailbox is then not `ok`. */
  unrepairable: UnrepairableFile[];
  durationMs: number;
  session: ImapSessionStats;
}

export interface ArchiveMailboxesOptions extends Omit<ArchiveMailboxOptions, 'mailbox'> {
  mailboxes: readonly string[];
  /** Mailboxes archived at once. @default 4 */
  concurrency?: number;
}

export interface ArchiveMailboxFailure {
  mailbox: string;
  ok: false;
  interrupted: false;
  error: MailbridgeError;
  /** Archived before the failure: these messages stay archived. */
  messagesNew: number;
  bytesNew: number;
}

export interface ArchiveRunResult {
  ok: boolean;
  mailboxes: (ArchiveMailboxResult | ArchiveMailboxFailure)[];
  durationMs: number;
}
