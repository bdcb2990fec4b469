/**
 * Files a crash left in place without manifest lines (renamed into place,
 * the batch of lines not yet written): recorded from the file itself, with
 * the server's flags and INTERNALDATE when its folder is visited.
 */
import type { Logger } from '../../log/logger.js';
import type { FolderAccess, FolderRef } from '../mailbox-read/folder-access.js';
import { fetchMessageInfo, type MessageInfo } from '../mailbox-read/message-info.js';
import type { ManifestBatch } from './manifest-batch.js';
import { parseMessageMetadata } from './metadata.js';
import type { ArchiveStore, OrphanFile } from './store/types.js';

export interface OrphanContext {
  store: ArchiveStore;
  batch: ManifestBatch;
  logger: Logger;
  mailbox: string;
}

/** Records orphans; `infos` for those under `currentUidValidity` (server data is per UIDVALIDITY). */
export async function recordOrphans(
  orphans: readonly OrphanFile[],
  infos: Map<number, MessageInfo> | undefined,
  currentUidValidity: number | undefined,
  context: OrphanContext,
): Promise<void> {
  for (const orphan of orphans) {
    const written = await context.store.hashMessage(orphan.path);
    const metadata = await parseMessageMetadata(await context.store.messageSource(orphan.path));
    const info = orphan.uidValidity === currentUidValidity ? infos?.get(orphan.uid) : undefined;
    await context.batch.queue({
      folder: orphan.folder,
      uidValidity: orphan.uidValidity,
      uid: orphan.uid,
      internalDate: info?.internalDate ?? null,
      flags: info?.flags ?? null,
      size: written.size,
      sha256: written.sha256,
      path: orphan.path,
      ...metadata,
      archivedAt: new Date().toISOString(),
      recovered: true,
    });
  }
  if (orphans.length > 0) {
    context.logger.log('info', 'archive: recorded files left by an interrupted run', {
      mailbox: context.mailbox,
      folder: orphans[0]?.folder,
      files: orphans.length,
    });
  }
}

/** Records the orphans of the selected folder, asking the server for their flags and dates. */
export async function recoverFolderOrphans(
  access: FolderAccess,
  folder: FolderRef,
  orphans: readonly OrphanFile[],
  context: OrphanContext,
): Promise<void> {
  const current = orphans.filter((o) => o.uidValidity === folder.uidValidity);
  const infos = current.length
    ? await access.run(folder, (c) =>
        fetchMessageInfo(
          c,
          current.map((o) => o.uid),
        ),
      )
    : new Map<number, MessageInfo>();
  await recordOrphans(orphans, infos, folder.uidValidity, context);
}
