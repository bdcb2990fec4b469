import { toUidSet } from './fetch-groups.js';
import type { FolderAccess, FolderRef } from './folder-access.js';

/** What a job does with each message a FETCH of whole messages brings. */
export interface WholeMessageHandlers<Prepared, Placed> {
  /** Starts the work on one message's bytes (e.g. a flushed temp file); several run at once. */
  prepare(uid: number, source: Buffer): Promise<Prepared>;
  /** Puts a prepared message in its final place; strictly in UID order, one at a time. */
  place(uid: number, prepared: Prepared): Promise<Placed>;
  /** Records a placed message as done (the job's checkpoint). */
  record(uid: number, placed: Placed): Promise<void>;
  /** Drops a prepared message that will not be placed (the run stopped first). */
  discard(prepared: Prepared): Promise<void>;
  /** Takes a UID the answer skipped on its own (it may have been deleted). */
  fetchSkipped(uid: number): Promise<void>;
  /** Throws to stop between two messages. */
  checkAborted(): void;
}

export interface WholeFetchLimits {
  /** Messages prepared at once while the answer streams in. */
  concurrency: number;
  /** Bytes those may hold in memory meanwhile. */
  maxBytes: number;
}

interface InFlight<Prepared> {
  uid: number;
  bytes: number;
  task: Promise<Prepared>;
}

/**
 * Small messages, several per FETCH, placed and recorded strictly in UID
 * order. A job whose checkpoint is the highest UID done must never record a
 * message after a higher one unless the lower one is recorded or gone. When
 * the answer skips a UID, the FETCH is left there and that message is taken
 * on its own (`fetchSkipped`), which stores it or finds it deleted.
 *
 * While the answer streams in, up to `concurrency` messages are prepared at
 * once: one at a time, the job's own work (a flush, an upload) would leave
 * the connection idle most of the time. Only `place` and `record` stay in UID
 * order, one after another. If anything ends the FETCH early (abort, error,
 * lost connection), the prepared messages not yet placed are discarded once
 * their preparation finishes; nothing is prepared after this returns. After
 * a reconnect the FETCH is sent again for the UIDs not yet placed.
 */
export async function fetchWholeInOrder<Prepared, Placed>(
  access: FolderAccess,
  folder: FolderRef,
  uids: readonly number[],
  handlers: WholeMessageHandlers<Prepared, Placed>,
  limits: WholeFetchLimits,
): Promise<void> {
  const done = new Set<number>();
  let remaining = uids;
  while (remaining.length > 0) {
    await access.run(folder, async (c) => {
      const todo = remaining.filter((uid) => !done.has(uid));
      if (todo.length === 0) return;
      const wanted = new Set(todo);
      const inFlight: InFlight<Prepared>[] = [];
      let inFlightBytes = 0;
      const placeNext = async () => {
        // An abort stops before the next placing: between two messages, as documented.
        handlers.checkAborted();
        const head = inFlight[0] as InFlight<Prepared>;
        const prepared = await head.task;
        inFlight.shift();
        inFlightBytes -= head.bytes;
        const placed = await handlers.place(head.uid, prepared);
        done.add(head.uid);
        await handlers.record(head.uid, placed);
      };
      let next = 0;
      try {
        for await (const msg of c.fetch(
          toUidSet(todo),
          { uid: true, source: true },
          { uid: true },
        )) {
          if (!wanted.has(msg.uid) || done.has(msg.uid) || !msg.source) continue;
          if (msg.uid !== todo[next]) break;
          handlers.checkAborted();
          next++;
          const task = handlers.prepare(msg.uid, msg.source);
          // Awaited in order by placeNext; until then a failure must not count as unhandled.
          task.catch(() => {});
          inFlight.push({ uid: msg.uid, bytes: msg.source.length, task });
          inFlightBytes += msg.source.length;
          while (inFlight.length >= limits.concurrency || inFlightBytes >= limits.maxBytes) {
            await placeNext();
          }
        }
        while (inFlight.length > 0) await placeNext();
      } finally {
        // Left only on an error: the messages not placed are fetched again or by the next run.
        for (const { task } of inFlight.splice(0)) {
          await task.then(
            (prepared) => handlers.discard(prepared),
            () => {},
          );
        }
      }
    });
    const left = remaining.filter((uid) => !done.has(uid));
    const [skipped, ...rest] = left;
    if (skipped === undefined) return;
    await handlers.fetchSkipped(skipped);
    remaining = rest;
  }
}
