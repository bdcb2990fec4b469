/**
 * Lines (and IMAP literals) from a socket, for the few exchanges the proxy
 * speaks itself: the client's commands before login, the upstream's replies
 * during its own login. Bounded: a line longer than `maxLine` ends the
 * reading with `LineTooLongError`, so a client cannot make the proxy buffer
 * without end. `detach` hands back what was read past the last line, for the
 * splice that follows.
 */
import type { Duplex } from 'node:stream';
import type { HandedOverSource } from './byte-source.js';

export class LineTooLongError extends Error {
  constructor(readonly limit: number) {
    super(`line longer than ${limit} bytes`);
  }
}

export class LineReader {
  private buffer: Buffer = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | undefined;
  private readonly onData = (chunk: Buffer) => {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    this.signal();
  };
  private readonly onEnd = () => {
    this.ended = true;
    this.signal();
  };

  /**
   * `source`: where the socket's bytes come from when it reads into a reused
   * buffer (byte-source.ts) rather than emitting `data`.
   */
  constructor(
    private readonly socket: Duplex,
    private readonly maxLine: number,
    private readonly source?: HandedOverSource,
  ) {
    if (source)
      source.onBytes((view, length) => this.onData(Buffer.from(view.subarray(0, length))));
    else socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onEnd);
  }

  /** The next line without its CRLF, or `undefined` once the peer has gone. */
  async line(): Promise<string | undefined> {
    for (;;) {
      const end = this.buffer.indexOf(0x0a);
      if (end !== -1 && end <= this.maxLine) {
        const line = this.buffer.subarray(0, end).toString('utf8').replace(/\r$/, '');
        this.buffer = this.buffer.subarray(end + 1);
        return line;
      }
      if (end > this.maxLine || (end === -1 && this.buffer.length > this.maxLine)) {
        throw new LineTooLongError(this.maxLine);
      }
      if (this.ended) return undefined;
      await this.more();
    }
  }

  /** Exactly `count` bytes (an IMAP literal), or `undefined` once the peer has gone. */
  async bytes(count: number): Promise<Buffer | undefined> {
    while (this.buffer.length < count) {
      if (this.ended) return undefined;
      await this.more();
    }
    const out = this.buffer.subarray(0, count);
    this.buffer = this.buffer.subarray(count);
    return out;
  }

  /** Stops reading; returns the bytes read but not yet consumed. */
  detach(): Buffer {
    // Paused until the splice pipes it: data now would have no reader and be lost.
    this.socket.pause();
    if (this.source) this.source.hold();
    else this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onEnd);
    const rest = this.buffer;
    this.buffer = Buffer.alloc(0);
    this.signal();
    return rest;
  }

  private more(): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }

  private signal(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
