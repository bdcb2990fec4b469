/**
 * The delivery worker: takes committed messages from the spool queue and
 * submits them to Exchange Online, one pooled XOAUTH2 transport per sending
 * mailbox. It owns the timers; what to send when (schedule.ts), how long to
 * wait (backoff.ts) and what a failure means (backoff.ts) are pure.
 *
 * At most `connectionsPerMailbox` messages per mailbox are in flight, which
 * bounds the duplicates a crash can cause: only a message whose DATA reached
 * Exchange but whose delivery record was not yet written is sent again
 * (RFC 1047: the window between the final `.` and the reply cannot be closed).
 */
import { open } from 'node:fs/promises';
import type Mail from 'nodemailer/lib/mailer/index.js';
import { type Logger, silentLogger } from '../../log/logger.js';
import { formatDuration } from '../../util/format.js';
import {
  type BackoffOptions,
  classifyDeliveryError,
  type DeliveryFailure,
  logSafe,
  nextStep,
  retryDelay,
  senderLoginRefused,
  spoolErrorDelay,
} from './backoff.js';
import { buildBounce, mustNotBounce } from './bounce.js';
import type { RelayMetrics } from './metrics.js';
import { createRecipientRouter, type RecipientRouter, type RoutePart } from './route.js';
import {
  expiredMessages,
  type MailboxHealth,
  planDeliveries,
  type ScheduledMessage,
} from './schedule.js';
import type { Spool, SpoolEnvelope } from './spool.js';

/** What the worker needs of a transport: `createSmtpTransport` fits. */
export interface DeliveryTransport {
  sendMail(message: Mail.Options): Promise<{
    accepted: (string | Mail.Address)[];
    rejected: (string | Mail.Address)[];
    rejectedErrors?: unknown[];
    response: string;
  }>;
  close(): void;
}

export interface DeliveryWorkerOptions {
  spool: Spool;
  /** Makes the transport of one mailbox; called once per mailbox. */
  transportFor: (mailbox: string) => DeliveryTransport;
  /** Which route each recipient takes; without one, all go through the message's mailbox. */
  router?: RecipientRouter;
  /** Makes the High Volume Email transport; needed when the router has an HVE route. */
  hveTransport?: () => DeliveryTransport;
  connectionsPerMailbox: number;
  retryForMs: number;
  backoff: BackoffOptions;
  /** Queue a bounce to the sender when a message goes to dead/. */
  bounce: boolean;
  hostname: string;
  metrics: RelayMetrics;
  logger?: Logger;
  /** How often the queue folder is scanned for messages released by `relay retry`. @default 2000 */
  scanIntervalMs?: number;
  now?: () => number;
  random?: () => number;
}

/**
 * Messages just accepted are kept in memory up to this many bytes in all, so
 * that their first attempt need not read the spool file back.
 */
const CONTENT_BUDGET_BYTES = 32 * 1024 * 1024;

type Scheduled = ScheduledMessage & { since: number };

export class DeliveryWorker {
  private readonly queue = new Map<string, SpoolEnvelope>();
  /** Envelopes are replaced, never changed, so their parsed times can be kept with them. */
  private readonly parsed = new WeakMap<SpoolEnvelope, Scheduled>();
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly inFlightByMailbox = new Map<string, number>();
  private readonly health = new Map<string, MailboxHealth>();
  private readonly transports = new Map<string, DeliveryTransport>();
  /** The bytes of messages not yet tried, as the server spooled them (within CONTENT_BUDGET_BYTES). */
  private readonly contents = new Map<string, Buffer>();
  private contentBytes = 0;
  /** Spool writes that failed in a row, for the wait before the next attempt. */
  private spoolFailures = 0;
  /** Ids finished in this process, so a scan racing a removal cannot bring one back. */
  private readonly finished = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private scanTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private scanning = false;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly router: RecipientRouter;
  deadCount = 0;

  constructor(private readonly options: DeliveryWorkerOptions) {
    this.logger = options.logger ?? silentLogger;
    this.now = options.now ?? Date.now;
    this.router = options.router ?? createRecipientRouter(undefined);
  }

  get queueDepth(): number {
    return this.queue.size;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Starts with the messages recovered from the spool. */
  start(initial: SpoolEnvelope[], deadCount: number): void {
    this.deadCount = deadCount;
    for (const envelope of initial) this.queue.set(envelope.id, envelope);
    const interval = this.options.scanIntervalMs ?? 2000;
    this.scanTimer = setInterval(() => void this.scan(), interval);
    this.scanTimer.unref();
    this.pump();
  }

  /** A message the server just committed, with its bytes when it kept them. */
  enqueue(envelope: SpoolEnvelope, content?: Buffer): void {
    if (this.stopping || this.finished.has(envelope.id)) return;
    this.queue.set(envelope.id, envelope);
    if (content && this.contentBytes + content.length <= CONTENT_BUDGET_BYTES) {
      this.contents.set(envelope.id, content);
      this.contentBytes += content.length;
    }
    this.pump();
  }

  /**
   * Stops starting deliveries and waits up to `timeoutMs` for those in
   * flight; whatever is left stays spooled for the next start.
   */
  async stop(timeoutMs: number): Promise<{ unfinished: number }> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.scanTimer) clearInterval(this.scanTimer);
    let timeout: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.inFlight.values()]),
      new Promise<void>((resolve) => {
        timeout = setTimeout(resolve, timeoutMs);
      }),
    ]);
    if (timeout) clearTimeout(timeout);
    const unfinished = this.inFlight.size;
    for (const transport of this.transports.values()) transport.close();
    this.transports.clear();
    return { unfinished };
  }

  /** Picks up messages released by `relay retry` (new files and `.kick` markers). */
  async scan(): Promise<void> {
    if (this.scanning || this.stopping) return;
    this.scanning = true;
    try {
      const { spool } = this.options;
      for (const id of await spool.listKicks()) {
        await spool.clearKick(id);
        let envelope = this.queue.get(id);
        if (!envelope) {
          // Released from dead/ (or queued while no relay ran): its .json is in queue/ now.
          envelope = await spool.readEnvelope(id).catch(() => undefined);
          if (!envelope) continue;
          this.finished.delete(id);
          this.deadCount = (await spool.listDead()).length;
        }
        const now = new Date(this.now()).toISOString();
        this.queue.set(id, { ...envelope, nextAttemptAt: now });
        const health = this.health.get(this.router.key(envelope));
        if (health) health.pausedUntil = 0;
        this.logger.log('info', 'released', { event: 'released', id });
      }
      this.pump();
    } catch (error) {
      this.logger.log('warn', 'spool scan failed', { error: (error as Error).message });
    } finally {
      this.scanning = false;
    }
  }

  private pump(): void {
    if (this.stopping) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.options.spool.deliveryBlocked) {
      // A delivery record waits for disk space (spool.ts): nothing more leaves until it is written.
      this.timer = setTimeout(() => this.pump(), 500);
      this.timer.unref();
      return;
    }
    const now = this.now();
    const scheduled: Scheduled[] = [];
    for (const envelope of this.queue.values()) scheduled.push(this.scheduled(envelope));
    for (const id of expiredMessages(scheduled, this.inFlight, now, this.options.retryForMs)) {
      const envelope = this.queue.get(id) as SpoolEnvelope;
      this.queue.delete(id);
      this.track(id, this.router.key(envelope), () =>
        this.giveUp(
          envelope,
          `gave up after ${formatDuration(now - Date.parse(envelope.since))} (relay.retryFor) and ${envelope.attempts} attempt(s)${envelope.lastError ? `; last failure ${envelope.lastError.code}: ${envelope.lastError.reply}` : ''}`,
          envelope.lastError?.responseCode,
        ),
      );
    }
    const plan = planDeliveries({
      now,
      messages: scheduled,
      inFlight: this.inFlight,
      inFlightByMailbox: this.inFlightByMailbox,
      health: this.health,
      maxPerMailbox: this.options.connectionsPerMailbox,
    });
    for (const id of plan.start) {
      const envelope = this.queue.get(id);
      if (envelope) {
        this.track(id, this.router.key(envelope), (release) => this.deliver(envelope, release));
      }
    }
    if (plan.wakeAt !== undefined) {
      const delay = Math.max(10, Math.min(plan.wakeAt - now, 60_000));
      this.timer = setTimeout(() => this.pump(), delay);
      this.timer.unref();
    }
  }

  /** An envelope's times, parsed once per envelope (pump runs over the whole queue on every event). */
  private scheduled(envelope: SpoolEnvelope): Scheduled {
    let entry = this.parsed.get(envelope);
    if (!entry) {
      entry = {
        id: envelope.id,
        mailbox: this.router.key(envelope),
        nextAttemptAt: Date.parse(envelope.nextAttemptAt),
        since: Date.parse(envelope.since),
      };
      this.parsed.set(envelope, entry);
    }
    return entry;
  }

  /**
   * Runs one message's work holding one of its mailbox's slots. `release`
   * hands the slot on before the work ends (once the upstream's reply is
   * recorded, the rest is the spool's housekeeping).
   */
  private track(id: string, mailbox: string, work: (release: () => void) => Promise<void>): void {
    this.inFlightByMailbox.set(mailbox, (this.inFlightByMailbox.get(mailbox) ?? 0) + 1);
    let held = true;
    const release = () => {
      if (!held) return;
      held = false;
      const n = (this.inFlightByMailbox.get(mailbox) ?? 1) - 1;
      if (n > 0) this.inFlightByMailbox.set(mailbox, n);
      else this.inFlightByMailbox.delete(mailbox);
      this.pump();
    };
    const done = work(release)
      .catch((error: unknown) => {
        // A spool write failed: keep the message where it is and try again later,
        // not at once (a full disk would otherwise make this a busy loop).
        this.spoolFailures++;
        this.logger.log('error', 'spool update failed', {
          event: 'spool-error',
          id,
          error: (error as Error).message,
        });
        const envelope = this.queue.get(id);
        if (envelope) {
          const wait = spoolErrorDelay(this.spoolFailures, this.options.random);
          const at = new Date(this.now() + wait).toISOString();
          this.queue.set(id, { ...envelope, nextAttemptAt: at });
        }
      })
      .finally(() => {
        this.inFlight.delete(id);
        this.dropContent(id);
        if (held) release();
        else this.pump();
      });
    this.inFlight.set(id, done);
  }

  private transport(part: RoutePart): DeliveryTransport {
    let transport = this.transports.get(part.key);
    if (!transport) {
      const { hveTransport } = this.options;
      if (part.route === 'hve' && !hveTransport) {
        throw new Error('unreachable: an HVE route without an HVE transport');
      }
      transport =
        part.route === 'hve' && hveTransport ? hveTransport() : this.options.transportFor(part.key);
      this.transports.set(part.key, transport);
    }
    return transport;
  }

  private async deliver(queued: SpoolEnvelope, release: () => void): Promise<void> {
    const { spool } = this.options;
    const started = this.now();
    const envelope: SpoolEnvelope = { ...queued, attempts: queued.attempts + 1 };
    // One part per attempt; the recipients of the other parts wait as still to deliver.
    const [part, ...others] = this.router.parts(envelope) as [RoutePart, ...RoutePart[]];
    const rest = others.flatMap((other) => other.to);
    if (part.fallback) {
      this.logger.log('info', 'internal recipients sent through the mailbox', {
        event: 'route-fallback',
        id: envelope.id,
        mailbox: part.account,
        reason: part.fallback,
      });
    }
    const message: Mail.Options = {
      envelope: { from: part.from, to: part.to },
      raw: this.contents.get(envelope.id) ?? { path: spool.queuePath(envelope.id, 'eml') },
    };
    let accepted: string[] = [];
    let rejected: { recipient: string; failure: DeliveryFailure }[] = [];
    let response = '';
    /** The part failed as a whole (no per-recipient replies) while other parts wait. */
    let wholePart = false;
    try {
      const info = await this.transport(part).sendMail(message);
      accepted = info.accepted.map(addressOf);
      response = logSafe(info.response ?? '');
      rejected = (info.rejectedErrors ?? []).map((error) => ({
        recipient: String((error as { recipient?: unknown }).recipient ?? ''),
        failure: classifyDeliveryError(error),
      }));
    } catch (error) {
      const perRecipient = rejectedErrorsOf(error);
      if (!perRecipient && rest.length === 0) {
        const failure = classifyDeliveryError(error);
        await this.failed(
          envelope,
          failure.login &&
            failure.responseCode === 535 &&
            part.route === 'mailbox' &&
            sendsAsSender(envelope)
            ? senderLoginRefused(failure, envelope.from)
            : failure,
          part.key,
        );
        return;
      }
      wholePart = !perRecipient;
      if (perRecipient) {
        rejected = perRecipient.map((e) => ({
          recipient: String((e as { recipient?: unknown }).recipient ?? ''),
          failure: classifyDeliveryError(e),
        }));
      } else {
        // The part failed as a whole while other parts wait: its recipients share its
        // failure, and the other parts are not held back by a verdict about this one.
        const failure = classifyDeliveryError(error);
        if (failure.kind === 'temporary' && failure.scope === 'mailbox') {
          this.markMailboxFailing(part.key, this.now());
        }
        rejected = part.to.map((recipient) => ({ recipient, failure }));
      }
    }
    if (!wholePart) this.markMailboxHealthy(part.key);

    const permanent = rejected.filter((r) => r.failure.kind === 'permanent');
    const temporary = rejected.filter((r) => r.failure.kind === 'temporary');
    const partDone = temporary.length === 0 && permanent.length === 0;
    const complete = partDone && rest.length === 0;
    const now = this.now();
    if (accepted.length > 0) {
      // Told once the record is on disk (before the spool removes the message), or
      // after a record the disk refused is held: the slot may then carry the next message.
      let told = false;
      const recorded = () => {
        if (told) return;
        told = true;
        if (complete) release();
        this.logger.log('info', 'delivered', {
          event: 'delivered',
          id: envelope.id,
          messageId: envelope.messageId,
          mailbox: part.account,
          route: part.route === 'hve' ? 'hve' : undefined,
          recipients: accepted.length,
          size: envelope.size,
          attempts: envelope.attempts,
          sendMs: now - started,
          latencyMs: now - Date.parse(envelope.receivedAt),
          partial: complete ? undefined : true,
        });
      };
      await spool.recordDelivery(
        {
          id: envelope.id,
          messageId: envelope.messageId,
          mailbox: part.account,
          ...(part.route === 'hve' ? { route: 'hve' as const } : {}),
          from: part.from,
          to: accepted,
          size: envelope.size,
          receivedAt: envelope.receivedAt,
          deliveredAt: new Date(now).toISOString(),
          attempts: envelope.attempts,
          response,
          complete,
        },
        recorded,
      );
      recorded();
    }
    if (complete) {
      this.finish(envelope.id);
      this.options.metrics.delivered++;
      this.options.metrics.observeLatency(now - Date.parse(envelope.receivedAt));
      return;
    }
    const delivered = [...(envelope.delivered ?? []), ...accepted];
    if (permanent.length > 0) {
      const first = permanent[0]?.failure as DeliveryFailure;
      const reason = permanent
        .map((r) => `<${r.recipient}>: ${r.failure.code}: ${r.failure.reply}`)
        .join('; ');
      if (temporary.length === 0 && rest.length === 0) {
        await this.giveUp(
          { ...envelope, to: permanent.map((r) => r.recipient), delivered },
          `permanent failure ${reason}`,
          first.responseCode,
          first.code,
        );
        return;
      }
      const copyId = await spool.copyToDead(
        { ...envelope, delivered },
        permanent.map((r) => r.recipient),
        `permanent failure ${reason}`,
        envelope.attempts,
      );
      this.deadCount++;
      this.options.metrics.failed++;
      this.logger.log('warn', 'recipients failed permanently', {
        event: 'dead',
        id: copyId,
        messageId: envelope.messageId,
        mailbox: envelope.mailbox,
        code: first.code,
        reply: first.reply,
        recipients: permanent.length,
      });
    }
    const deferred = temporary.map((r) => r.recipient);
    if (temporary.length === 0) {
      // This part is done: the next one goes at once, in a delivery of its own.
      const { lastError: _done, ...next } = envelope;
      await this.continueWith({ ...next, to: rest, delivered, attempts: queued.attempts });
      return;
    }
    const worst = temporary[0]?.failure as DeliveryFailure;
    if (rest.length > 0 && !queued.lastError) {
      // The other parts go now instead of waiting out this one's retry, and this part
      // comes after them. Only when the attempt before did not fail too: two parts
      // failing in turn then wait out the backoff like any message.
      await this.continueWith({
        ...envelope,
        to: [...rest, ...deferred],
        delivered,
        lastError: errorOf(worst, now),
      });
      this.deferred(envelope, part.account, worst, 0);
      return;
    }
    // Some recipients were deferred: keep the message for them only.
    await this.failed(
      { ...envelope, to: [...deferred, ...rest], delivered },
      { ...worst, scope: 'message' },
      part.key,
    );
  }

  /** The envelope with the recipients a part left, due now; memory first, as in failed(). */
  private async continueWith(envelope: SpoolEnvelope): Promise<void> {
    const updated = { ...envelope, nextAttemptAt: new Date(this.now()).toISOString() };
    if (this.queue.has(envelope.id)) this.queue.set(envelope.id, updated);
    await this.options.spool.updateEnvelope(updated);
  }

  /** `key`: the route the failure concerns (the mailbox, or HVE's key). */
  private async failed(
    envelope: SpoolEnvelope,
    failure: DeliveryFailure,
    key = envelope.mailbox,
  ): Promise<void> {
    const now = this.now();
    if (failure.kind === 'temporary' && failure.scope === 'mailbox') {
      this.markMailboxFailing(key, now);
    } else if (
      failure.responseCode !== undefined &&
      failure.scope === 'message' &&
      !failure.login
    ) {
      // The server answered about this message: the connection and the login work.
      this.markMailboxHealthy(key);
    }
    const health = this.health.get(key);
    const step = nextStep(
      failure,
      { failures: envelope.attempts, since: Date.parse(envelope.since) },
      now,
      { ...this.options.backoff, retryForMs: this.options.retryForMs },
      this.options.random,
    );
    if (step.action === 'dead') {
      await this.giveUp(
        { ...envelope, lastError: errorOf(failure, now) },
        step.reason,
        failure.responseCode,
        failure.code,
      );
      return;
    }
    // A mailbox-wide failure waits for the mailbox, not for the message's own backoff:
    // when the probe succeeds, everything queued behind it goes at once.
    const at = failure.scope === 'mailbox' && health ? Math.max(health.pausedUntil, now) : step.at;
    const updated: SpoolEnvelope = {
      ...envelope,
      nextAttemptAt: new Date(at).toISOString(),
      lastError: errorOf(failure, now),
    };
    // Memory first: if the disk refuses the update, the recipients Exchange already
    // accepted must still not be sent to again on the next attempt.
    if (this.queue.has(envelope.id)) this.queue.set(envelope.id, updated);
    await this.options.spool.updateEnvelope(updated);
    this.deferred(envelope, envelope.mailbox, failure, at - now);
  }

  /** Counts and logs a delivery put off for `retryInMs`. */
  private deferred(
    envelope: SpoolEnvelope,
    mailbox: string,
    failure: DeliveryFailure,
    retryInMs: number,
  ): void {
    this.options.metrics.deferred++;
    this.logger.log('warn', 'deferred', {
      event: 'deferred',
      id: envelope.id,
      messageId: envelope.messageId,
      mailbox,
      code: failure.code,
      responseCode: failure.responseCode,
      reply: failure.reply,
      attempts: envelope.attempts,
      retryInMs,
    });
  }

  /** Moves a message to dead/, counts it, logs it, and queues a bounce when asked to. */
  private async giveUp(
    envelope: SpoolEnvelope,
    reason: string,
    responseCode?: number,
    code?: string,
  ): Promise<void> {
    const { spool } = this.options;
    const headers = this.options.bounce
      ? await readHeaders(spool.queuePath(envelope.id, 'eml'))
      : '';
    await spool.moveToDead(envelope, reason);
    this.finish(envelope.id);
    this.deadCount++;
    this.options.metrics.failed++;
    this.logger.log('error', 'failed', {
      event: 'dead',
      id: envelope.id,
      messageId: envelope.messageId,
      mailbox: envelope.mailbox,
      code: code ?? envelope.lastError?.code,
      responseCode,
      reason,
      attempts: envelope.attempts,
    });
    if (!this.options.bounce || envelope.bounce || mustNotBounce(envelope.from, headers)) return;
    const raw = buildBounce({
      hostname: this.options.hostname,
      from: envelope.mailbox,
      to: envelope.from,
      originalMessageId: envelope.messageId,
      receivedAt: envelope.receivedAt,
      recipients: envelope.to,
      reason,
      ...(responseCode !== undefined ? { responseCode } : {}),
      headers,
    });
    const bounce = await spool.enqueueGenerated(raw, {
      from: envelope.mailbox,
      to: [envelope.from],
      mailbox: envelope.mailbox,
      client: { address: 'relay' },
      bounce: true,
    });
    this.options.metrics.bounces++;
    this.logger.log('info', 'bounce queued', {
      event: 'bounce',
      id: bounce.id,
      original: envelope.id,
      mailbox: envelope.mailbox,
    });
    this.enqueue(bounce);
  }

  private finish(id: string): void {
    this.queue.delete(id);
    this.finished.add(id);
    // The spool took what this message needed written: writes work again.
    this.spoolFailures = 0;
  }

  private dropContent(id: string): void {
    const content = this.contents.get(id);
    if (!content) return;
    this.contents.delete(id);
    this.contentBytes -= content.length;
  }

  private markMailboxFailing(mailbox: string, now: number): void {
    const health = this.health.get(mailbox) ?? { failures: 0, pausedUntil: 0 };
    // Concurrent failures of one outage count once.
    if (health.pausedUntil > now) return;
    health.failures++;
    health.pausedUntil =
      now + retryDelay(health.failures, this.options.backoff, this.options.random);
    this.health.set(mailbox, health);
  }

  private markMailboxHealthy(mailbox: string): void {
    if (this.health.has(mailbox)) {
      this.health.delete(mailbox);
      this.logger.log('info', 'mailbox reachable again', { event: 'mailbox-ok', mailbox });
    }
  }
}

function errorOf(failure: DeliveryFailure, now: number): NonNullable<SpoolEnvelope['lastError']> {
  return {
    code: failure.code,
    reply: failure.reply,
    at: new Date(now).toISOString(),
    ...(failure.responseCode !== undefined ? { responseCode: failure.responseCode } : {}),
  };
}

/** nodemailer's EENVELOPE when every recipient was refused: one error per recipient. */
function rejectedErrorsOf(error: unknown): unknown[] | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current && typeof current === 'object'; depth++) {
    const e = current as { code?: unknown; rejectedErrors?: unknown; cause?: unknown };
    if (e.code === 'EENVELOPE' && Array.isArray(e.rejectedErrors) && e.rejectedErrors.length > 0) {
      return e.rejectedErrors;
    }
    current = e.cause;
  }
  return undefined;
}

function addressOf(value: string | Mail.Address): string {
  return typeof value === 'string' ? value : (value.address ?? '');
}

/** A route without a `mailbox`: the envelope sender signs in as itself. */
function sendsAsSender(envelope: SpoolEnvelope): boolean {
  return envelope.mailbox === envelope.from.trim().toLowerCase();
}

/** The header section of a spooled message, at most 64 KiB, for a bounce. */
async function readHeaders(path: string): Promise<string> {
  const handle = await open(path, 'r').catch(() => undefined);
  if (!handle) return '';
  try {
    const buffer = Buffer.alloc(64 * 1024);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    const text = buffer.subarray(0, bytesRead).toString('latin1');
    const end = text.search(/\r?\n\r?\n/);
    return end === -1 ? text : text.slice(0, end);
  } finally {
    await handle.close();
  }
}
