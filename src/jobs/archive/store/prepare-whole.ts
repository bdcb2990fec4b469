import type { PartialMessage } from './types.js';

/** Writes a message given whole into `partial` and flushes it; discards it on failure. */
export async function writeWhole(partial: PartialMessage, data: Buffer): Promise<PartialMessage> {
  try {
    await partial.write(data);
    await partial.flush();
  } catch (error) {
    await partial.discard();
    throw error;
  }
  return partial;
}
