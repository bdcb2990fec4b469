import type { Logger } from '../../log/logger.js';
import { displayText } from '../../util/display-text.js';
import type { ManifestIndex } from './manifest.js';
import { folderDirName, messagePath } from './paths.js';
import type { ArchiveStore } from './store/types.js';

/**
 * Takes a folder's checkpoints only from manifest lines whose file is there
 * (see ManifestIndex.confirmCheckpoints), once per run, before anything is
 * planned; warns about the lines that name no file.
 */
export async function confirmCheckpoints(
  index: ManifestIndex,
  store: ArchiveStore,
  folder: string,
  log: { logger: Logger; mailbox: string },
): Promise<void> {
  const folderDir = folderDirName(folder);
  const missing = await index.confirmCheckpoints(folder, (uidValidity, uid) =>
    store.hasMessage(messagePath(folderDir, uidValidity, uid)),
  );
  for (const [uidValidity, uids] of missing) {
    log.logger.log('warn', 'archive: manifest lines name no file; the checkpoint ignores them', {
      mailbox: log.mailbox,
      folder: displayText(folder),
      uidValidity,
      uids: uids.slice(0, 5).join(', '),
      lines: uids.length,
      remedy:
        'Check the archive with `mailbridge archive verify`; --repair fetches again what the server still has.',
    });
  }
}
