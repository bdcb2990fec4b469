/**
 * Bytes from a socket handed to one consumer at a time: the login's line
 * reader, then the splice. The upstream socket reads into one reused buffer
 * (the `onread` option of net/tls.connect) rather than as `data` events:
 * Dovecot and Exchange send TLS records of a few KB, and as events each
 * record became a Buffer of its own, a push through the stream machinery and
 * garbage to collect; reused, a record costs one call and one copy
 * (bench/README.md, proxy).
 */
import type { Duplex } from 'node:stream';

/** `bytes[0, length)` is valid only during the call: the buffer is read into again. */
export type ByteSink = (bytes: Buffer, length: number) => void;

export interface ByteSource {
  /** From now on the bytes go to `sink`. */
  onBytes(sink: ByteSink): void;
}

/** A source whose consumer changes: in between, bytes are kept for the next one. */
export interface HandedOverSource extends ByteSource {
  /** Until the next onBytes, bytes are kept (copied), starting the next consumer's share. */
  hold(): void;
}

/**
 * net.connect's `onread`, which tls.connect takes too (Node's docs; @types/node
 * lists it for net only).
 */
export interface OnRead {
  buffer: Buffer;
  callback: (length: number, bytes: Buffer) => void;
}

/** The plaintext of one TLS record is at most 16 KB; a plain socket reads this much per call. */
const READ_BUFFER_BYTES = 16 * 1024;

/**
 * The `onread` option for net.connect / tls.connect, and the source it feeds.
 * Bytes that come while nobody takes them (between the login and the splice)
 * are held, so nothing is lost between consumers.
 */
export function reusedReadBuffer(): { onread: OnRead; source: HandedOverSource } {
  let sink: ByteSink | undefined;
  const held: Buffer[] = [];
  const holdCopy: ByteSink = (bytes, length) => {
    held.push(Buffer.from(bytes.subarray(0, length)));
  };
  const source: HandedOverSource = {
    onBytes(next) {
      sink = next;
      for (const bytes of held.splice(0)) next(bytes, bytes.length);
    },
    hold() {
      sink = undefined;
    },
  };
  return {
    onread: {
      buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES),
      callback: (length, bytes) => {
        (sink ?? holdCopy)(bytes, length);
      },
    },
    source,
  };
}

/** A stream's `data` events as a source (the client's side: commands, small and few). */
export function dataEvents(stream: Duplex): ByteSource {
  return {
    onBytes(sink) {
      stream.on('data', (chunk: Buffer) => sink(chunk, chunk.length));
    },
  };
}
