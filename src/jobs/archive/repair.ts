import { MailbridgeError } from '../../errors.js';
import type { FolderAccess } from '../mailbox-read/folder-access.js';
import { downloadInPieces } from '../mailbox-read/partial-download.js';
import { byFolder } from './by-folder.js';
import type { UnrepairableFile } from './run-types.js';
import type { ArchiveStore } from './store/types.js';
import type { DamagedRecord } from './verify.js';

export interface RepairOptions {
  /** Folders (archive names) the server still lists. */
  onServer: ReadonlySet<string>;
  chunkBytes: number;
  checkAborted(): void;
}

export interface RepairResult {
  repaired: number;
  unrepairable: UnrepairableFile[];
}

/**
 * Fetches again the files `verify` finds missing or altered, when the
 * server still has that very message: same folder, UIDVALIDITY and UID,
 * bytes that hash to the manifest's SHA-256. Each is written as any message
 * is (temp file, flush, rename over the damaged one, directory flush); its
 * manifest line stays, as it describes exactly these bytes. `out` is filled
 * as it goes, so that a repair cut short still reports what it did.
 */
export async function repairArchive(
  store: ArchiveStore,
  access: FolderAccess,
  options: RepairOptions,
  out: RepairResult,
): Promise<void> {
  const damaged: DamagedRecord[] = [];
  await store.verify({ onDamaged: (record) => damaged.push(record) });
  const notRepaired = (record: DamagedRecord, reason: string) =>
    out.unrepairable.push({ path: record.path, folder: record.folder, reason });
  for (const [path, records] of byFolder(damaged)) {
    options.checkAborted();
    if (!options.onServer.has(path)) {
      for (const r of records) notRepaired(r, 'its folder is no longer on the server');
      continue;
    }
    const { folder } = await access.select(path);
    for (const record of records) {
      if (record.uidValidity !== folder.uidValidity) {
        notRepaired(record, `the folder was numbered anew (UIDVALIDITY ${folder.uidValidity})`);
        continue;
      }
      const partial = await store.createPartial(record.path);
      try {
        if (!(await downloadInPieces(access, folder, record.uid, partial, options))) {
          notRepaired(record, 'the message was deleted on the server');
          continue;
        }
        const written = await partial.flush();
        if (written.sha256 !== record.sha256 || written.size !== record.size) {
          notRepaired(record, "the server's copy differs from the archived one");
          continue;
        }
        await partial.commit(record.path);
        await store.sync();
        out.repaired++;
      } catch (error) {
        const errno = (error as NodeJS.ErrnoException).code;
        if (error instanceof MailbridgeError || typeof errno !== 'string') throw error;
        // Something in the way of the rename (a directory under the file's name).
        notRepaired(record, (error as Error).message);
      } finally {
        await partial.discard();
      }
    }
  }
}
