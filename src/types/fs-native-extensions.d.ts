/** The part of fs-native-extensions (OS file locks) the relay spool and the token cache file use. */
declare module 'fs-native-extensions' {
  /** Non-blocking lock of an open file: `fcntl(F_OFD_SETLK)` on Linux, `flock` on macOS, `LockFileEx` on Windows. */
  export function tryLock(
    fd: number,
    offset?: number,
    length?: number,
    options?: { shared?: boolean },
  ): boolean;
  /** Waits until the lock is granted (the blocking call runs off the main thread). */
  export function waitForLock(
    fd: number,
    offset?: number,
    length?: number,
    options?: { shared?: boolean },
  ): Promise<void>;
  export function unlock(fd: number, offset?: number, length?: number): void;
}
