/**
 * Which queued messages to hand to the transports now, and when to look
 * again. Pure: the delivery worker owns the timers and the sockets.
 *
 * Per mailbox: at most `maxPerMailbox` deliveries at once (Exchange refuses
 * more than three concurrent submissions per mailbox). A mailbox whose last
 * attempt failed at the connection or login is paused; when the pause ends a
 * single delivery probes it, and only a success reopens it fully. So an
 * unreachable Exchange costs one attempt per pause, not one per message, and
 * the whole queue follows as soon as it answers again.
 */

export interface ScheduledMessage {
  id: string;
  mailbox: string;
  /** ms since the epoch. */
  nextAttemptAt: number;
}

export interface MailboxHealth {
  /** Connection or login failures in a row. */
  failures: number;
  /** No delivery for this mailbox before this time (ms). */
  pausedUntil: number;
}

export interface PlanInput {
  now: number;
  messages: Iterable<ScheduledMessage>;
  /** Ids being delivered now. */
  inFlight: Pick<ReadonlySet<string>, 'has'>;
  /** Deliveries in flight per mailbox. */
  inFlightByMailbox: ReadonlyMap<string, number>;
  health: ReadonlyMap<string, MailboxHealth>;
  maxPerMailbox: number;
}

export interface Plan {
  /** Ids to start now, oldest due first. */
  start: string[];
  /** The earliest time something else becomes due, if anything is waiting. */
  wakeAt?: number;
}

export function planDeliveries(input: PlanInput): Plan {
  // Called on every acceptance and every finished delivery, over the whole queue:
  // one pass, keeping per mailbox only the few it has room for (no sort of the backlog).
  const room = new Map<string, number>();
  const chosen = new Map<string, ScheduledMessage[]>();
  let wakeAt: number | undefined;
  const later = (t: number) => {
    wakeAt = wakeAt === undefined ? t : Math.min(wakeAt, t);
  };
  for (const message of input.messages) {
    if (input.inFlight.has(message.id)) continue;
    const health = input.health.get(message.mailbox);
    if (health && health.pausedUntil > input.now) {
      later(health.pausedUntil);
      continue;
    }
    if (message.nextAttemptAt > input.now) {
      later(message.nextAttemptAt);
      continue;
    }
    let capacity = room.get(message.mailbox);
    if (capacity === undefined) {
      const probing = (health?.failures ?? 0) > 0;
      capacity =
        (probing ? 1 : input.maxPerMailbox) - (input.inFlightByMailbox.get(message.mailbox) ?? 0);
      room.set(message.mailbox, capacity);
    }
    if (capacity <= 0) continue;
    const list = chosen.get(message.mailbox);
    if (list) keepEarliest(list, message, capacity);
    else chosen.set(message.mailbox, [message]);
  }
  const start: string[] = [];
  for (const list of chosen.values()) for (const message of list) start.push(message.id);
  return { start, ...(wakeAt !== undefined ? { wakeAt } : {}) };
}

/** Oldest due first; the id breaks ties so the order does not depend on the queue's. */
function dueBefore(a: ScheduledMessage, b: ScheduledMessage): boolean {
  return a.nextAttemptAt < b.nextAttemptAt || (a.nextAttemptAt === b.nextAttemptAt && a.id < b.id);
}

/** Inserts `message` into the sorted `list` if it is among the `size` earliest. */
function keepEarliest(list: ScheduledMessage[], message: ScheduledMessage, size: number): void {
  let i = list.length;
  while (i > 0 && dueBefore(message, list[i - 1] as ScheduledMessage)) i--;
  if (i >= size) return;
  list.splice(i, 0, message);
  if (list.length > size) list.pop();
}

/** Messages whose retry window has closed while they waited (e.g. behind a paused mailbox). */
export function expiredMessages(
  messages: Iterable<ScheduledMessage & { since: number }>,
  inFlight: Pick<ReadonlySet<string>, 'has'>,
  now: number,
  retryForMs: number,
): string[] {
  const out: string[] = [];
  for (const message of messages) {
    if (!inFlight.has(message.id) && now - message.since > retryForMs) out.push(message.id);
  }
  return out;
}
