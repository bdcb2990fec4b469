/**
 * One folder's work, with the policy that decides what a failure stops. The
 * session helper has already retried what a reconnect can fix; what is left
 * either concerns the whole mailbox (the login, the network, a stop, the
 * job's own storage) and ends the run, or this folder only (the server
 * refused something about it, e.g. it was deleted meanwhile) and fails just
 * the folder. A folder re-created under the work is worked on again.
 */
import { AuthenticationError, MailbridgeError, NetworkError } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import { displayText } from '../../util/display-text.js';
import { FolderChangedError, InterruptedError } from './read-errors.js';

const MAX_FOLDER_ATTEMPTS = 3;

export interface FolderRetryOptions {
  mailbox: string;
  folder: string;
  /** First word of the log lines: the job's name. */
  job: string;
  logger: Logger;
  /** Runs after every failure, before the policy (the archive writes its waiting manifest lines). */
  afterFailure?: (error: unknown) => Promise<void>;
  /** Told before the folder is worked on again because it was re-created meanwhile. */
  onFolderChanged?: () => void;
  /** Failures of the job's own that end the run too (the archive's disk errors). */
  endsRun?: (error: unknown) => boolean;
}

/**
 * Runs `work` until it completes; returns the error that failed this folder
 * alone, and throws the ones that end the run.
 */
export async function workOnFolder(
  work: () => Promise<void>,
  options: FolderRetryOptions,
): Promise<MailbridgeError | undefined> {
  for (let attempt = 1; ; attempt++) {
    try {
      await work();
      return undefined;
    } catch (error) {
      await options.afterFailure?.(error);
      if (error instanceof FolderChangedError && attempt < MAX_FOLDER_ATTEMPTS) {
        options.onFolderChanged?.();
        continue;
      }
      if (
        error instanceof InterruptedError ||
        error instanceof AuthenticationError ||
        error instanceof NetworkError ||
        options.endsRun?.(error) ||
        !(error instanceof MailbridgeError)
      ) {
        throw error;
      }
      options.logger.log('warn', `${options.job}: folder failed`, {
        mailbox: options.mailbox,
        folder: displayText(options.folder),
        code: error.code,
        error: displayText(error.message),
      });
      return error;
    }
  }
}
