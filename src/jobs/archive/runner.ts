/**
 * The archive job's entry points: `archiveMailbox` (one mailbox,
 * mailbox-job.ts) and `archiveMailboxes` (several at once, one token
 * provider, a failure of one not stopping the others). The module map is in
 * index.ts.
 */
import { createTokenProvider } from '../../auth/token-provider.js';
import type { MailbridgeConfig } from '../../config/types.js';
import { MailbridgeError } from '../../errors.js';
import { silentLogger } from '../../log/logger.js';
import { InterruptedError } from '../mailbox-read/read-errors.js';
import { diskError, diskErrorCode } from './disk-errors.js';
import { archivedBefore, archiveMailbox, checkConnections } from './mailbox-job.js';
import type {
  ArchiveCounts,
  ArchiveMailboxesOptions,
  ArchiveMailboxFailure,
  ArchiveMailboxResult,
  ArchiveRunResult,
} from './run-types.js';

export { archiveMailbox, checkConnections, DEFAULT_ARCHIVE_CONNECTIONS } from './mailbox-job.js';
export type * from './run-types.js';

export const DEFAULT_ARCHIVE_CONCURRENCY = 4;

/**
 * Archives several mailboxes, `concurrency` at a time, with one token
 * provider. A mailbox that fails does not stop the others.
 */
export async function archiveMailboxes(
  config: MailbridgeConfig,
  options: ArchiveMailboxesOptions,
): Promise<ArchiveRunResult> {
  const started = Date.now();
  const { mailboxes, concurrency = DEFAULT_ARCHIVE_CONCURRENCY, ...shared } = options;
  // Wrong for every mailbox alike: said once, before any starts.
  checkConnections(shared.connections, shared.maxConnections);
  const unique = [...new Map(mailboxes.map((m) => [m.trim().toLowerCase(), m.trim()])).values()];
  const tokenProvider =
    shared.tokenProvider ?? createTokenProvider(config, { logger: shared.logger ?? silentLogger });
  const results: (ArchiveMailboxResult | ArchiveMailboxFailure)[] = new Array(unique.length);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= unique.length) return;
      const mailbox = unique[i] as string;
      if (shared.signal?.aborted) {
        results[i] = failure(mailbox, interruptedError(mailbox));
        continue;
      }
      try {
        results[i] = await archiveMailbox(config, { ...shared, mailbox, tokenProvider });
      } catch (error) {
        results[i] = failure(mailbox, archiveError(error, mailbox), archivedBefore(error));
      }
    }
  };
  const workers = Math.max(1, Math.min(concurrency, unique.length));
  await Promise.all(Array.from({ length: workers }, worker));
  return {
    ok: results.every((r) => r.ok),
    mailboxes: results,
    durationMs: Date.now() - started,
  };
}

function failure(
  mailbox: string,
  error: MailbridgeError,
  done?: ArchiveCounts,
): ArchiveMailboxFailure {
  return {
    mailbox,
    ok: false,
    interrupted: false,
    error,
    messagesNew: done?.messages ?? 0,
    bytesNew: done?.bytes ?? 0,
  };
}

function interruptedError(mailbox: string): MailbridgeError {
  return new InterruptedError({
    code: 'ARCHIVE_INTERRUPTED',
    message: `The archive of ${mailbox} was interrupted before it started`,
    remedy: 'Run it again.',
  });
}

/** A mailbox run's failure as a MailbridgeError (`ARCHIVE_ENOSPC` and its kin for the disk's). */
export function archiveError(error: unknown, mailbox: string): MailbridgeError {
  if (error instanceof MailbridgeError) return error;
  const err = error as NodeJS.ErrnoException;
  if (err.code) {
    return diskError(diskErrorCode(error), `Archiving ${mailbox} failed: ${err.message}`, error);
  }
  return new MailbridgeError({
    code: 'ARCHIVE_FAILED',
    message: `Archiving ${mailbox} failed: ${err.message ?? String(error)}`,
    remedy: 'Run again with --debug and report the output if it keeps failing.',
    cause: error,
  });
}
