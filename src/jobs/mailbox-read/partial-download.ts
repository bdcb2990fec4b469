import { ProtocolError } from '../../errors.js';
import type { FolderAccess, FolderRef } from './folder-access.js';

/** Where a message's pieces go: `size` is what it holds so far, so a retry asks for the rest. */
export interface PieceSink {
  readonly size: number;
  write(piece: Buffer): Promise<void>;
}

export interface PartialDownloadOptions {
  /** Bytes per partial FETCH: larger pieces mean fewer round trips and more memory. */
  chunkBytes: number;
  /** Throws to stop between two pieces. */
  checkAborted(): void;
  /** Called with each piece once the sink has it (e.g. a streaming parser). */
  onPiece?: (piece: Buffer) => Promise<void>;
}

/**
 * Streams one message into `sink`, one partial FETCH
 * (`BODY.PEEK[]<offset.length>`) per piece, each its own command, so that a
 * reconnect (a token expiry, a dropped connection, throttling) resumes the
 * message where it stopped instead of starting it again. False when the
 * server no longer has the message.
 */
export async function downloadInPieces(
  access: FolderAccess,
  folder: FolderRef,
  uid: number,
  sink: PieceSink,
  options: PartialDownloadOptions,
): Promise<boolean> {
  const { chunkBytes } = options;
  for (;;) {
    options.checkAborted();
    const offset = sink.size;
    const piece = await access.run(folder, async (c) => {
      const msg = await c.fetchOne(
        String(uid),
        { uid: true, source: { start: offset, maxLength: chunkBytes } },
        { uid: true },
      );
      // No FETCH answer at all: the message was expunged. An empty one: the end.
      if (!msg) return undefined;
      return msg.source ?? Buffer.alloc(0);
    });
    if (piece === undefined) return false;
    if (piece.length > chunkBytes && offset > 0) {
      throw new ProtocolError({
        code: 'IMAP_PARTIAL_FETCH_IGNORED',
        message: `The server answered a partial FETCH of UID ${uid} in ${folder.path} with more than was asked`,
        remedy: 'Report this server behaviour; large messages cannot be streamed from it.',
      });
    }
    if (piece.length > 0) {
      await sink.write(piece);
      await options.onPiece?.(piece);
    }
    // A short piece is the end; a server that ignores the range sends it all at once (offset 0).
    if (piece.length !== chunkBytes) return true;
  }
}
