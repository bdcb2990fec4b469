/**
 * Group commit: one flush serves every caller that asked while it could
 * still cover them. A rename into the queue is durable only once the
 * directory is flushed, and ten receptions finishing together need one
 * directory fsync, not ten.
 *
 * A caller's promise settles with a flush that started after it asked: a
 * caller arriving while a flush runs waits for the next one (which it shares
 * with everyone else who arrived meanwhile), since the running one may have
 * missed its rename. A failed flush rejects every caller that shared it.
 */
export function groupCommit(flush: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  let next: Promise<void> | undefined;
  const request = (): Promise<void> => {
    if (!running) {
      running = flush().finally(() => {
        running = undefined;
      });
      return running;
    }
    next ??= running
      .catch(() => {})
      .then(() => {
        next = undefined;
        return request();
      });
    return next;
  };
  return request;
}
