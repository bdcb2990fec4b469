/**
 * The manifest lines of one folder whose UIDs are split into parts, several
 * archived at once on different connections. A folder's checkpoint is the
 * highest UID of its lines, so a line may be written only once every lower
 * UID of the folder is archived or gone: the lines of a part wait until
 * every part before it is done. A part's files may be in place before then;
 * after a crash they are found as orphans, and orphans never move the
 * checkpoint (manifest.ts), so the lower UIDs that were still missing are
 * searched for and archived by the next run.
 */
import type { ManifestRecord } from './manifest.js';
import type { ManifestBatch } from './manifest-batch.js';

export class PartLines {
  /** The lowest part not done: its lines go straight to the batch. */
  private current = 0;
  private readonly waiting = new Map<number, ManifestRecord[]>();
  private readonly done = new Set<number>();

  constructor(private readonly batch: ManifestBatch) {}

  /** Queues the line of a message of `part` whose file is in place, or keeps it for its turn. */
  queue(part: number, record: ManifestRecord): Promise<void> {
    if (part === this.current) return this.batch.queue(record);
    const lines = this.waiting.get(part);
    if (lines) lines.push(record);
    else this.waiting.set(part, [record]);
    return Promise.resolve();
  }

  /** Every message of `part` is archived or gone: the lines of the parts after it may follow. */
  finish(part: number): Promise<void> {
    this.done.add(part);
    const released: Promise<void>[] = [];
    while (this.done.delete(this.current)) {
      this.current++;
      released.push(...this.take(this.current).map((record) => this.batch.queue(record)));
    }
    return Promise.all(released).then(() => {});
  }

  /**
   * After a failure: the lines still waiting are queued as recovered ones,
   * which never move the checkpoint, so their files are not fetched again and
   * the lower UIDs still missing are searched for once more.
   */
  abandon(): Promise<void> {
    const parts = [...this.waiting.keys()].sort((a, b) => a - b);
    const records = parts.flatMap((part) => this.take(part));
    return Promise.all(
      records.map((record) => this.batch.queue({ ...record, recovered: true })),
    ).then(() => {});
  }

  private take(part: number): ManifestRecord[] {
    const lines = this.waiting.get(part) ?? [];
    this.waiting.delete(part);
    return lines;
  }
}
