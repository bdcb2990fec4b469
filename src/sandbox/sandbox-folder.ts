/**
 * Where the sandbox lives. As root, Dovecot's processes run as its system
 * users (dovecot, mail), which must pass through every folder above the
 * sandbox's: root's home (mode 0700) is not such a place, so root's default
 * is /var/lib/mailbridge/sandbox, whose parents only root may write.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { MailbridgeError } from '../errors.js';

/** Root's default when its own state folder is closed to Dovecot's users. */
export const ROOT_SANDBOX_DIR = '/var/lib/mailbridge/sandbox';

const isRoot = () => process.getuid?.() === 0;

/**
 * `$XDG_STATE_HOME/mailbridge/sandbox`; as root, ROOT_SANDBOX_DIR when a
 * folder above that one exists and others may not enter it. Every command
 * computes the same answer, so `stop` finds what `start` started.
 */
export function defaultSandboxDir(stateHome: string): string {
  const dir = join(stateHome, 'mailbridge', 'sandbox');
  return isRoot() && closedFolders(dir).length > 0 ? ROOT_SANDBOX_DIR : dir;
}

/** Existing folders above `dir`, outermost first, that others may not pass through. */
function closedFolders(dir: string): string[] {
  const closed: string[] = [];
  for (let folder = dirname(dir); folder !== dirname(folder); folder = dirname(folder)) {
    if (existsSync(folder) && (statSync(folder).mode & 0o001) === 0) closed.unshift(folder);
  }
  return closed;
}

/**
 * Creates `dir` for this user only; as root, creates the missing folders
 * above it enterable (never listable) by others and refuses a `dir` that
 * Dovecot's users cannot reach, naming every folder in the way.
 */
export function prepareSandboxDir(dir: string): void {
  makeParents(dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // The secrets stay in folders of their own that only the owner may open.
  chmodSync(dir, isRoot() ? 0o711 : 0o700);
  if (!isRoot()) return;
  const closed = closedFolders(dir);
  if (closed.length === 0) return;
  throw new MailbridgeError({
    code: 'SANDBOX_START_FAILED',
    message: `Dovecot's users (dovecot, mail) cannot pass through ${closed[0]} to reach the sandbox folder ${dir}${closed.length > 1 ? ` (nor ${closed.slice(1).join(', ')})` : ''}`,
    remedy: `Leave --dir out (as root the default is ${ROOT_SANDBOX_DIR}), give a --dir whose parent folders others may enter, or let them pass: chmod o+x ${closed.join(' ')}.`,
  });
}

/** The missing folders above `path`: as root enterable by others, so that a sandbox below stays reachable. */
function makeParents(path: string): void {
  if (!isRoot()) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    return;
  }
  const missing: string[] = [];
  for (let folder = dirname(path); !existsSync(folder); folder = dirname(folder)) {
    missing.unshift(folder);
  }
  for (const folder of missing) {
    mkdirSync(folder);
    chmodSync(folder, 0o711);
  }
}

/** Beside the default folder: where the last `sandbox start` put its sandbox. */
const startedDirFile = (defaultDir: string) => join(dirname(defaultDir), 'last-sandbox-dir');

/**
 * Records `dir` as the last sandbox started, for commands given no --dir; a
 * home this user may not write (nobody's /nonexistent) only loses that help.
 */
export function recordStartedDir(defaultDir: string, dir: string): void {
  try {
    makeParents(startedDirFile(defaultDir));
    writeFileSync(startedDirFile(defaultDir), `${dir}\n`, { mode: 0o600 });
  } catch {}
}

/** The folder the last `sandbox start` recorded, if any. */
export function startedDir(defaultDir: string): string | undefined {
  try {
    return readFileSync(startedDirFile(defaultDir), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
