/**
 * What travels through Redis: a job's data (one mailbox of a run and the
 * archive's options), its progress while a worker has it, and its result.
 * Plain JSON, so workers of another version can read it.
 */

export const ARCHIVE_QUEUE = 'archive';

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
