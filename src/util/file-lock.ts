/**
 * An exclusive kernel lock on a file, through fs-native-extensions (an open
 * file description lock on Linux, `flock` on macOS, `LockFileEx` on Windows).
 * The kernel drops it when its holder exits or is killed, so a crash never
 * leaves a stale lock for anyone to clear by hand.
 */
import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';

export type NativeFileLocks = typeof import('fs-native-extensions');
let nativeLoaded: Promise<NativeFileLocks> | undefined;

/**
 * The native lock calls, loaded on first use so that a platform without a
 * prebuilt binary loses only what locks (each caller says what, with its own
 * code), not every command.
 * @throws Error naming the platform when the module has no build for it
 */
export function nativeFileLocks(): Promise<NativeFileLocks> {
  nativeLoaded ??= import('fs-native-extensions').catch((cause: unknown) => {
    nativeLoaded = undefined;
    throw new Error(
      `the file-lock module has no build for ${process.platform}-${process.arch} (${(cause as Error).message.split('\n')[0]})`,
      { cause },
    );
  });
  return nativeLoaded;
}

export interface HeldFileLock {
  /** Lets go of the lock (closing the file). */
  release(): Promise<void>;
}

/**
 * Takes the lock on `path` (created 0600 if missing) without waiting and
 * writes this process's pid into it; undefined when another process holds it.
 * @throws Error when the native lock module has no build for this platform
 */
export async function tryExclusiveFileLock(path: string): Promise<HeldFileLock | undefined> {
  const { tryLock } = await nativeFileLocks();
  const handle = await open(path, constants.O_RDWR | constants.O_CREAT, 0o600);
  try {
    if (!tryLock(handle.fd)) {
      await handle.close();
      return undefined;
    }
    await handle.truncate(0);
    await handle.write(`${process.pid}\n`, 0);
  } catch (error) {
    await handle.close();
    throw error;
  }
  return { release: () => handle.close() };
}

/** The pid the holder wrote, when it can be read (Windows locks keep it unreadable). */
export async function lockHolderPid(path: string): Promise<number | undefined> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, constants.O_RDONLY);
    const pid = Number.parseInt((await handle.readFile('utf8')).trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  } finally {
    await handle?.close();
  }
}
