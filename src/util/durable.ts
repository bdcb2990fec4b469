/**
 * The few filesystem steps that make a write survive a crash. A rename is
 * durable only once the directory holding the new name is flushed; a new
 * file's data only once the file is.
 */
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
  const temp = join(tempDir, `${basename(path)}.${process.pid}.${Date.now()}`);
  const handle = await open(temp, 'w', 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  await rename(temp, path);
  await fsyncDirectory(dirname(path));
}
