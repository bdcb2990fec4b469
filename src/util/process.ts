/**
 * Whether a process with this pid runs on this machine. Used by the lock files
 * of the archive and the relay spool to take over a lock whose holder died.
 * EPERM means it runs under another user.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
