import type { ChildProcess } from 'node:child_process';

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

/**
 * `signal` to the process group a detached child leads (its own children
 * included); nothing when it has no pid or the group is gone.
 */
export function signalProcessGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}
