/**
 * The two failures a job that reads a mailbox handles itself rather than
 * reporting: each job gives them its own codes and words (the archive's are
 * `ARCHIVE_UIDVALIDITY_CHANGED` and `ARCHIVE_INTERRUPTED`).
 */
import type { ErrorCode } from '../../error-codes.js';
import { MailbridgeError } from '../../errors.js';

/** The folder's UIDVALIDITY changed under a running operation (deleted and re-created). */
export class FolderChangedError extends MailbridgeError {
  override name = 'FolderChangedError';
}

/** The caller's signal stopped the run between two messages; what is done stays done. */
export class InterruptedError extends MailbridgeError {
  override name = 'InterruptedError';
}

/** How a job that reads a mailbox speaks of itself in log lines and errors. */
export interface ReadJobTerms {
  /** The job's name, first in its log lines and in remedies: `archive`. */
  name: string;
  /** Code of a folder numbered anew (new UIDVALIDITY) under a running operation. */
  folderChangedCode: ErrorCode;
  /** What the job then does with the folder, said to the user. */
  folderChangedRemedy: string;
}
