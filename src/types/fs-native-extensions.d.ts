/** The part of fs-native-extensions (OS file locks) the relay spool uses. */
declare module 'fs-native-extensions' {
  /** Non-blocking lock of an open file: `fcntl(F_OFD_SETLK)` on Linux, `flock` on macOS, `LockFileEx` on Windows. */
  export function tryLock(
    fd: number,
    offset?: number,
    length?: number,
    options?: { shared?: boolean },
  ): boolean;
  export function unlock(fd: number, offset?: number, length?: number): void;
}
