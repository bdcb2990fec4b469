/**
 * Pure decisions of the archive job. What to fetch from a folder and in which
 * groups are the generic ones of any job that reads a mailbox
 * (../mailbox-read/), re-exported here; when to write the manifest is the
 * archive's own.
 */

export * from '../mailbox-read/fetch-groups.js';
export * from '../mailbox-read/folder-plan.js';

export interface ManifestSyncPolicy {
  /** Write the manifest after this many messages at the latest. @default 256 */
  maxPending: number;
  /** …or once the oldest waiting line is this old. @default 200 */
  maxDelayMs: number;
}

export const DEFAULT_MANIFEST_SYNC: ManifestSyncPolicy = { maxPending: 256, maxDelayMs: 200 };

/**
 * Whether to write the waiting manifest lines now. Waiting is safe: a file
 * renamed into place without its line is found and recorded on the next run
 * (see store.ts), and the checkpoint comes from the manifest, so it can only
 * lag the files, never run ahead of them.
 */
export function shouldWriteManifest(
  pending: number,
  oldestPendingAt: number | undefined,
  now: number,
  policy: ManifestSyncPolicy = DEFAULT_MANIFEST_SYNC,
): boolean {
  if (pending === 0 || oldestPendingAt === undefined) return false;
  return pending >= policy.maxPending || now - oldestPendingAt >= policy.maxDelayMs;
}
