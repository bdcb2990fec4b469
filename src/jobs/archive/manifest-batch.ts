/**
 * Manifest lines waiting to be written: in batches, since each write is
 * flushed to disk, and never before their files are durable. Several
 * connections queue lines at once; the writes go one after another, in the
 * order the lines were queued.
 */
import type { ManifestIndex, ManifestRecord } from './manifest.js';
import { type ManifestSyncPolicy, shouldWriteManifest } from './plan.js';
import type { ArchiveStore, ManifestAppender } from './store/types.js';

export class ManifestBatch {
  private pending: ManifestRecord[] = [];
  private oldestPendingAt: number | undefined;
  /** The write under way, if any: the next one starts after it. */
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: ArchiveStore,
    private readonly index: ManifestIndex,
    private readonly writer: ManifestAppender,
    private readonly policy: ManifestSyncPolicy,
  ) {}

  /** Adds a line (unless the manifest has it), writing the batch when the policy says so. */
  async queue(record: ManifestRecord): Promise<void> {
    if (this.index.has(record.folder, record.uidValidity, record.uid)) return;
    this.pending.push(record);
    this.oldestPendingAt ??= Date.now();
    if (shouldWriteManifest(this.pending.length, this.oldestPendingAt, Date.now(), this.policy)) {
      await this.flush();
    }
  }

  /** Makes the renamed files durable, then appends their lines: never a line before its file. */
  flush(): Promise<void> {
    const write = this.writing.then(async () => {
      if (this.pending.length === 0) return;
      const batch = this.pending;
      this.pending = [];
      this.oldestPendingAt = undefined;
      await this.store.sync();
      await this.writer.append(batch);
      for (const record of batch) this.index.add(record);
    });
    // A failed write fails its callers; the next flush still runs (and fails too if the writer is broken).
    this.writing = write.catch(() => {});
    return write;
  }
}
