/**
 * SlabWriter reuses a slab only once every write from it has completed: a
 * writer that holds its writes (a PassThrough nobody reads, like a socket to
 * a client that stopped reading) must still hand over every byte as it was.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { SlabWriter } from '../../../src/jobs/proxy/slab-writer.js';

const CHUNK = 4096;
const CHUNKS = 512;
const CHUNKS_PER_TURN = 8;

describe('SlabWriter', () => {
  it('hands over 2 MB intact while the writer holds its writes, from one reused read buffer', async () => {
    const expected = Buffer.from(Array.from({ length: CHUNK * CHUNKS }, (_, i) => (i * 7) % 253));
    const to = new PassThrough({ highWaterMark: 1024 });
    const out = new SlabWriter(to);
    // As a socket reading into one buffer: each chunk overwrites the last.
    const readBuffer = Buffer.alloc(CHUNK);
    for (let chunk = 0; chunk < CHUNKS; chunk++) {
      expected.copy(readBuffer, 0, chunk * CHUNK, (chunk + 1) * CHUNK);
      out.add(readBuffer, CHUNK, true);
      if ((chunk + 1) % CHUNKS_PER_TURN === 0) out.flush();
    }
    // Nothing read yet: all but the first writes wait in the PassThrough.
    expect(to.writableLength).toBeGreaterThan(expected.length / 2);
    const received: Buffer[] = [];
    for await (const piece of to.end()) received.push(piece as Buffer);
    expect(Buffer.concat(received).equals(expected)).toBe(true);
  });
});
