/** SHA-256 of an archived message file: written by the archive, checked by verify and by restore. */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';

/** A stored message's SHA-256 (hex) and size. */
export interface WrittenFile {
  sha256: string;
  size: number;
}

/** SHA-256 and size of a file, read through one reused buffer (no garbage per chunk). */
export async function hashFile(
  path: string,
  buffer = Buffer.allocUnsafe(256 * 1024),
): Promise<WrittenFile> {
  const handle = await open(path, 'r');
  try {
    return await hashChunks(
      (async function* () {
        for (;;) {
          const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
          if (bytesRead === 0) return;
          yield buffer.subarray(0, bytesRead);
        }
      })(),
    );
  } finally {
    await handle.close();
  }
}

/** SHA-256 and size of a stream of bytes (a file read, a blob download). */
export async function hashChunks(chunks: AsyncIterable<Buffer>): Promise<WrittenFile> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of chunks) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest('hex'), size };
}
