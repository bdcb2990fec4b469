/**
 * The few filesystem steps that make a write survive a crash. A rename is
 * durable only once the directory holding the new name is flushed; a new
 * file's data only once the file is.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * fsync on a directory. Windows cannot open a directory for it and NTFS
 * journals renames itself, so there it is skipped.
 */
export async function fsyncDirectory(path: string): Promise<void> {
  if (process.platform === 'win32') return;
  const handle = await open(path, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Writes a small file completely or not at all: temp file (in `tempDir`, on
 * the same filesystem), flush, rename, flush the directory.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Buffer,
  tempDir: string,
): Promise<void> {
  // Random, not a time stamp: two writes of one file in the same millisecond must not share a temp.
  const temp = join(tempDir, `${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}`);
  try {
    await writeFileDurably(temp, data);
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await fsyncDirectory(dirname(path));
}

/**
 * Creates or replaces a file and flushes its data (the caller flushes the
 * directory, or renames it into place first). Mode 0600.
 */
export async function writeFileDurably(path: string, data: string | Buffer): Promise<void> {
  const handle = await open(path, 'w', 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
