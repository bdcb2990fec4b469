/**
 * A new file of the spool, opened as soon as a reception starts rather than
 * when its data is complete. Each file operation is a trip through libuv's
 * thread pool (a thread woken, which takes long on a busy machine); the open
 * then overlaps with the client still sending, and the close happens after
 * the client's 250, so only the write itself stands between the end of DATA
 * and the rename that commits.
 */
import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';

/** O_DSYNC makes each write durable by itself; Windows has none and gets an fsync instead. */
const SYNCED_WRITES = constants.O_DSYNC !== undefined;
const FLAGS =
  constants.O_WRONLY |
  constants.O_CREAT |
  constants.O_EXCL |
  (SYNCED_WRITES ? constants.O_DSYNC : 0);

export class NewSyncedFile {
  private readonly opening: Promise<FileHandle>;

  /** Creates the file (it must not exist), mode 0600. An error surfaces at the first write. */
  constructor(readonly path: string) {
    this.opening = open(path, FLAGS, 0o600);
    // Not awaited until the first write: a failed open must not count as unhandled meanwhile.
    this.opening.catch(() => {});
  }

  /** Appends `data`; with O_DSYNC it is on disk when this resolves. */
  async write(data: Buffer | string): Promise<void> {
    await writeAll(await this.opening, typeof data === 'string' ? Buffer.from(data) : data);
  }

  /** Resolves once everything written is on disk: at once where the writes were synced. */
  async flush(): Promise<void> {
    if (!SYNCED_WRITES) await (await this.opening).sync();
  }

  /** Closes the file if it was opened; never throws. */
  async close(): Promise<void> {
    await this.opening.then((handle) => handle.close()).catch(() => {});
  }
}

/** Writes all of `data` at the file's position (a write may take less than asked). */
export async function writeAll(handle: FileHandle, data: Buffer): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await handle.write(data, offset, data.length - offset);
    offset += bytesWritten;
  }
}
