/**
 * One direction's outgoing bytes for the splice: what the reads of a turn
 * brought is copied into a slab and written as one slice of it. In a bulk
 * transfer the slabs are recycled once every write from them has completed,
 * so a FETCH of 400 MB allocates a few slabs rather than a Buffer per TLS
 * record (the garbage of which cost the proxy as much as encrypting:
 * bench/README.md, proxy). A quiet session keeps none.
 */
import type { Duplex } from 'node:stream';

/** A bulk transfer's slab: four TLS records of 16 KB. */
const BULK_SLAB = 64 * 1024;
/** Commands and replies: one TLS record's worth, let go once written. */
const SMALL_SLAB = 16 * 1024;
/** Recycled slabs kept: what the splice lets wait for a slow reader (256 KB), and one. */
const MAX_FREE = 5;

interface Slab {
  bytes: Buffer;
  /** bytes[written, filled) is copied in, not yet handed to write(). */
  filled: number;
  written: number;
  /** Writes from this slab not yet completed: until 0 it must not be reused. */
  writing: number;
  /** No longer filled: recycled once `writing` is 0. */
  retired: boolean;
}

export class SlabWriter {
  private slab: Slab | undefined;
  private readonly free: Buffer[] = [];
  private bulk = false;

  constructor(private readonly to: Duplex) {}

  /** Copies `bytes[0, length)` in; `bulk`: part of a bulk transfer (large, recycled slabs). */
  add(bytes: Buffer, length: number, bulk: boolean): void {
    this.bulk = bulk;
    let slab = this.slab;
    if (slab === undefined || slab.bytes.length - slab.filled < length) {
      this.flush();
      if (slab) this.retire(slab);
      slab = { bytes: this.take(length), filled: 0, written: 0, writing: 0, retired: false };
      this.slab = slab;
    }
    bytes.copy(slab.bytes, slab.filled, 0, length);
    slab.filled += length;
  }

  /** Writes what was added since the last flush, as one write. */
  flush(): void {
    const slab = this.slab;
    if (slab === undefined || slab.filled === slab.written) return;
    if (this.to.destroyed || !this.to.writable) return;
    slab.writing++;
    this.to.write(slab.bytes.subarray(slab.written, slab.filled), () => {
      slab.writing--;
      if (slab.retired && slab.writing === 0) this.recycle(slab.bytes);
    });
    slab.written = slab.filled;
  }

  /** The stream went quiet: keep no slab beyond the writes under way. */
  release(): void {
    this.free.length = 0;
    if (this.slab && this.slab.filled === this.slab.written) {
      this.retire(this.slab);
      this.slab = undefined;
    }
  }

  private take(length: number): Buffer {
    if (length <= BULK_SLAB && this.bulk) {
      return this.free.pop() ?? Buffer.allocUnsafe(BULK_SLAB);
    }
    return Buffer.allocUnsafe(Math.max(length, SMALL_SLAB));
  }

  private retire(slab: Slab): void {
    slab.retired = true;
    if (slab.writing === 0) this.recycle(slab.bytes);
  }

  private recycle(bytes: Buffer): void {
    if (this.bulk && bytes.length === BULK_SLAB && this.free.length < MAX_FREE) {
      this.free.push(bytes);
    }
  }
}
