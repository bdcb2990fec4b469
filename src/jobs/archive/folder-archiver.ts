/**
 * Archives one folder: SELECT (read-only, so nothing is marked \Seen), the
 * orphans a crash left for it, the plan against the manifest's checkpoint,
 * `UID SEARCH UID n:*`, then, in parts of neighbouring UIDs, FLAGS,
 * INTERNALDATE and RFC822.SIZE and the messages themselves: small ones
 * several per FETCH, large ones in partial pieces (message-archiver.ts).
 * The parts go to the folder's connection and to every connection of the
 * mailbox the pool can spare (shareParts), their manifest lines in UID order
 * (part-lines.ts).
 *
 * Every command goes through the long-session helper, which reconnects with a
 * fresh token, waits out throttling and re-selects the folder, then runs the
 * operation again. Operations are written so that running them again
 * continues the work: they skip what was stored, and they first check that
 * the re-selected folder still has the same UIDVALIDITY.
 */

import { chunk, groupForFetch } from '../mailbox-read/fetch-groups.js';
import type { FolderAccess } from '../mailbox-read/folder-access.js';
import { type FolderStatus, planFolder } from '../mailbox-read/folder-plan.js';
import { workOnFolder } from '../mailbox-read/folder-retry.js';
import { shareParts } from '../mailbox-read/lease-pool.js';
import { fetchMessageInfo } from '../mailbox-read/message-info.js';
import { InterruptedError } from '../mailbox-read/read-errors.js';
import { searchNewUids } from '../mailbox-read/uid-search.js';
import { ArchiveDiskError } from './disk-errors.js';
import { archiveStreamedMessage, archiveWholeMessages } from './message-archiver.js';
import { recoverFolderOrphans } from './orphan-recovery.js';
import { PartLines } from './part-lines.js';
import type { ArchiveRunContext, ArchivingFolder } from './run-context.js';
import type { ArchiveFolderResult } from './run-types.js';
import type { OrphanFile } from './store/types.js';

/** UIDs per FETCH of FLAGS, INTERNALDATE and RFC822.SIZE: a part, with one connection. */
const METADATA_BATCH = 500;
/**
 * With several connections, parts are smaller, so that the last ones end
 * close together: four per connection, 50 UIDs at least (each part costs two
 * round trips more).
 */
const PARTS_PER_CONNECTION = 4;
const MIN_PART = 50;

/**
 * Archives a folder into `result` on the connection `access`. A failure of
 * this folder alone is recorded there; one that concerns the whole mailbox
 * is thrown.
 */
export async function archiveFolder(
  run: ArchiveRunContext,
  access: FolderAccess,
  path: string,
  listedStatus: FolderStatus | undefined,
  orphans: OrphanFile[],
  result: ArchiveFolderResult,
): Promise<void> {
  // The cheap way first: STATUS from the listing says whether there is anything to do.
  if (listedStatus && orphans.length === 0) {
    const plan = planFolder(run.index.ranges(path), listedStatus);
    if (plan.action === 'skip') {
      result.status = plan.reason;
      result.uidValidity = plan.uidValidity;
      return;
    }
  }
  const pendingOrphans = { files: orphans };
  const error = await workOnFolder(
    () => archiveSelectedFolder(run, access, path, result, pendingOrphans),
    {
      mailbox: run.mailbox,
      folder: path,
      job: 'archive',
      logger: run.logger,
      afterFailure: async (failure) => {
        await run.batch.flush();
        if (failure instanceof InterruptedError) result.status = 'interrupted';
      },
      onFolderChanged: () =>
        run.logger.log('info', 'archive: folder UIDVALIDITY changed while archiving; again', {
          mailbox: run.mailbox,
          folder: path,
        }),
      endsRun: (failure) => failure instanceof ArchiveDiskError,
    },
  );
  if (error) {
    result.status = 'failed';
    result.error = { code: error.code, message: error.message };
  }
}

async function archiveSelectedFolder(
  run: ArchiveRunContext,
  access: FolderAccess,
  path: string,
  result: ArchiveFolderResult,
  pendingOrphans: { files: OrphanFile[] },
): Promise<void> {
  const { folder: selected, status } = await access.select(path);
  result.uidValidity = status.uidValidity;
  const lines = new PartLines(run.batch);
  const on = (connection: FolderAccess, part: number): ArchivingFolder => ({
    ...selected,
    result,
    access: connection,
    queue: (record) => lines.queue(part, record),
  });

  const orphans = pendingOrphans.files;
  if (orphans.length > 0) {
    await recoverFolderOrphans(access, selected, orphans, run);
    pendingOrphans.files = [];
    result.recovered += orphans.length;
    await run.batch.flush();
  }

  const plan = planFolder(run.index.ranges(path), status);
  if (plan.action === 'skip') {
    if (result.messagesNew === 0) result.status = plan.reason;
    return;
  }
  // Above the checkpoint, the manifest may have lines already: recovered ones (manifest.ts).
  const uids = (await searchNewUids(access, selected, plan.afterUid, run.options.since)).filter(
    (uid) => !run.index.has(path, selected.uidValidity, uid),
  );
  run.progress.searched(path, uids.length);
  if (uids.length === 0) {
    if (result.messagesNew === 0) result.status = 'up-to-date';
    return;
  }
  result.status = 'archived';
  result.reason = plan.reason;
  result.directory = await run.store.folderDir(path);
  run.emit({
    type: 'folder-start',
    mailbox: run.mailbox,
    folder: path,
    uidValidity: status.uidValidity,
    reason: plan.reason,
    toFetch: uids.length,
    counts: run.progress.snapshot(),
  });

  const parts = chunk(uids, partSize(uids.length, run.connections.size)).map((part, index) => ({
    uids: part,
    index,
  }));
  try {
    await shareParts(run.connections, access, parts, async (connection, part) => {
      if (connection !== access) await connection.join(selected);
      await archivePart(run, on(connection, part.index), part.uids);
      await lines.finish(part.index);
    });
  } catch (error) {
    await lines.abandon();
    throw error;
  }
  await run.batch.flush();
}

function partSize(uids: number, connections: number): number {
  if (connections === 1) return METADATA_BATCH;
  const even = Math.ceil(uids / (connections * PARTS_PER_CONNECTION));
  return Math.min(METADATA_BATCH, Math.max(MIN_PART, even));
}

/** FLAGS, INTERNALDATE and RFC822.SIZE of a part's UIDs, then their messages, in UID order. */
async function archivePart(
  run: ArchiveRunContext,
  folder: ArchivingFolder,
  uids: number[],
): Promise<void> {
  run.checkAborted();
  const infos = await folder.access.run(folder, (c) => fetchMessageInfo(c, uids));
  // A UID the answer left out is fetched on its own, in its place in UID order: stored if
  // the server still has it, counted as deleted if not. Skipping it would lose it for
  // good, as the checkpoint moves past it.
  const sized = uids.map((uid) => ({
    uid,
    size: infos.get(uid)?.size ?? Number.POSITIVE_INFINITY,
  }));
  for (const group of groupForFetch(sized, run.limits)) {
    if (group.kind === 'whole') await archiveWholeMessages(run, folder, group.uids, infos);
    else await archiveStreamedMessage(run, folder, group.uid, infos.get(group.uid));
  }
}
