/**
 * A destination folder deleted, or deleted and made again, between runs: the
 * state still says its messages were copied, but they are gone. Seen from
 * the folder's absence or its new UIDVALIDITY; those messages are planned
 * again, and the identity check before APPEND keeps any that are back in the
 * folder (put there by hand) from being doubled.
 */
import type { ImapSession } from '../../clients/imap-session.js';
import type { Logger } from '../../log/logger.js';
import type { FolderMapping } from './folder-plan.js';
import type { MigrationState } from './state.js';

export async function forgetVanishedCopies(
  destination: ImapSession,
  state: MigrationState,
  mapping: FolderMapping,
  logger: Logger,
): Promise<void> {
  let uidValidity: string | undefined;
  if (mapping.exists) {
    const status = await destination.run((c) =>
      c.status(mapping.destination, { uidValidity: true }),
    );
    // No answer: nothing is known to have changed, and forgetting would copy twice.
    if (!status || status.uidValidity === undefined) return;
    uidValidity = String(status.uidValidity);
  }
  const forgotten = state.forgetDestination(mapping.destination, uidValidity);
  if (forgotten > 0) {
    logger.log(
      'warn',
      'destination folder deleted or made again since the last run: copying again',
      {
        folder: mapping.destination,
        messages: forgotten,
      },
    );
  }
}
