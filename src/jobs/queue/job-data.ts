/**
 * What travels through Redis: a job's data (one mailbox of an archive run,
 * or one mailbox pair of a migrate run, with the options), its progress while
 * a worker has it, and its result. Plain JSON, so workers of another version
 * can read it. Never a password: a worker takes those from its own settings.
 */

export const ARCHIVE_QUEUE = 'archive';
/** A queue of its own, so that workers of a version without migrate leave these jobs alone. */
export const MIGRATE_QUEUE = 'migrate';

export type JobKind = 'archive' | 'migrate';

export interface ArchiveJobData {
  runId: string;
  mailbox: string;
  outDir: string;
  folders: string[];
  exclude: string[];
  /** `YYYY-MM-DD`. */
  since?: string;
  allowEmpty: boolean;
  repair: boolean;
}

export interface MigrateJobData {
  runId: string;
  /** Endpoints as `describeEndpoint` writes them: `m365:ADDRESS`, `imaps://USER@HOST:PORT`. */
  from: string;
  to: string;
  folders: string[];
  exclude: string[];
  map: string[];
  /** `YYYY-MM-DD`. */
  since?: string;
  connections?: number;
  syncFlags: boolean;
  /** Folder of the pairs' state folders, as given on every worker; else each worker's default. */
  stateRoot?: string;
  /** Config files of `m365:` endpoints in another tenant, paths as given on every worker. */
  fromConfig?: string;
  toConfig?: string;
}

export interface MigrateJobResult {
  worker: string;
  copied: number;
  alreadyPresent: number;
  /** Messages the destination refused; `refused` lists them. */
  skipped: number;
  bytes: number;
  folders: number;
  durationMs: number;
  refused: { folder: string; uid: number; reason: string }[];
}

/** While active: messages done of those the started folders hold (`expected`). */
export interface ArchiveJobProgress {
  /** `host:pid` of the worker. */
  worker: string;
  messages: number;
  bytes: number;
  expected: number;
}

export interface ArchiveJobResult {
  worker: string;
  messagesNew: number;
  bytesNew: number;
  messagesTotal: number;
  bytesTotal: number;
  folders: number;
  durationMs: number;
}

/** A failure's reason as BullMQ stores it: `CODE: message`, so `jobs status` can give the code. */
export function failureReason(code: string, message: string): string {
  return `${code}: ${message}`;
}

export function parseFailureReason(reason: string | undefined): { code: string; message: string } {
  const m = /^([A-Z][A-Z0-9_]+): ([\s\S]*)$/.exec(reason ?? '');
  if (m) return { code: m[1] as string, message: m[2] as string };
  // BullMQ's own reasons: "job stalled more than allowable limit".
  if (/stalled/i.test(reason ?? '')) return { code: 'QUEUE_JOB_STALLED', message: reason ?? '' };
  return { code: 'ARCHIVE_FAILED', message: reason ?? 'unknown' };
}
