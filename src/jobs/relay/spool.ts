/**
 * The relay's spool: the only place a message lives between the client's
 * `250` and Exchange's. Layout under the spool directory:
 *
 *   tmp/<id>.json                  an envelope being written (never acknowledged)
 *   queue/<id>.eml                 the message as received (plus a Message-ID if it had none)
 *   queue/<id>.json                its envelope; its presence commits the message
 *   queue/<id>.kick                "try now", left by `mailbridge relay retry`
 *   dead/<id>.eml, .json, .reason.txt   permanent failures, with the server's reply
 *   quarantine/<id>.eml, .json, .reason.txt   committed messages whose envelope cannot be read
 *   delivered.jsonl                one line per delivery (the delivery record), keyed by spool id
 *   lock                           an OS lock held by the relay using this spool, and its pid
 *
 * Commit order: the .eml is written straight into queue/ (an .eml without
 * its .json is an uncommitted reception, which recover() discards, so it
 * needs no rename of its own) and the .json into tmp/, both flushed (fsync,
 * or O_DSYNC for a file written in one go); the .json is renamed into
 * queue/, then queue/ itself is fsynced (once for all the receptions that got
 * there together: group commit); only then may the client hear `250`. A message leaves queue/ only after
 * Exchange accepted it and the delivery record was appended: the .json goes
 * first (uncommitting it), then the .eml. `recover()` finishes or rolls back
 * whatever a crash interrupted, following the same order.
 *
 * A delivery record the disk refuses (ENOSPC) is kept in memory and retried;
 * until it is written nothing more is delivered or accepted, so a full disk
 * never turns into a message sent again on every retry.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import {
  copyFile,
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigurationError, MailbridgeError } from '../../errors.js';
import { fsyncDirectory, writeFileAtomic, writeFileDurably } from '../../util/durable.js';
import { type NativeFileLocks, nativeFileLocks } from '../../util/file-lock.js';
import { groupCommit } from './group-commit.js';
import { NewSyncedFile } from './synced-file.js';

export interface SpoolEnvelope {
  version: 1;
  id: string;
  /** Envelope sender; `''` is the null sender. */
  from: string;
  /** Recipients still to deliver. */
  to: string[];
  /** The Microsoft 365 mailbox the app signs in as to submit it. */
  mailbox: string;
  /** The message's Message-ID header (`<…>`), kept so a duplicate is recognisable. */
  messageId: string;
  /** Whether the relay added the Message-ID because the message had none. */
  messageIdAdded: boolean;
  /** Bytes of the spooled file. */
  size: number;
  receivedAt: string;
  /** Start of the retry window: `receivedAt`, or when `relay retry` released it. */
  since: string;
  client: { address: string; user?: string };
  /** Delivery attempts so far. */
  attempts: number;
  nextAttemptAt: string;
  lastError?: { code: string; reply: string; at: string; responseCode?: number };
  /** Recipients Exchange already accepted (after a partial delivery). */
  delivered?: string[];
  /** A bounce made by the relay: never bounced itself. */
  bounce?: boolean;
  /** Set in dead/: when and why. */
  deadAt?: string;
  reason?: string;
}

/** One line of delivered.jsonl. */
export interface DeliveryRecord {
  id: string;
  messageId: string;
  mailbox: string;
  from: string;
  /** Recipients accepted by this delivery. */
  to: string[];
  size: number;
  receivedAt: string;
  deliveredAt: string;
  attempts: number;
  /** Exchange's reply to the message. */
  response: string;
  /** Set when the part went through High Volume Email (`mailbox` is then the HVE account). */
  route?: 'hve';
  /** False when recipients remain (a partial delivery). */
  complete: boolean;
}

export interface ReceiveInput {
  from: string;
  to: string[];
  mailbox: string;
  client: { address: string; user?: string };
  /** Stop writing past this many bytes: the message will be refused. */
  maxBytes: number;
  bounce?: boolean;
}

export type ReceiveResult =
  /** `content`: the bytes spooled, when the message is small enough to keep in memory. */
  | { ok: true; envelope: SpoolEnvelope; content?: Buffer }
  | { ok: false; reason: 'too-large'; bytes: number }
  /** The client's stream ended in an error (it disconnected mid-DATA): nothing was kept. */
  | { ok: false; reason: 'disconnected'; error: Error };

export interface RecoveryReport {
  queued: number;
  /** Receptions never acknowledged, removed. */
  discarded: number;
  /** Messages whose delivery record was written before the crash, removed from the queue now. */
  alreadyDelivered: number;
  /** Interrupted moves to or from dead/ that were completed or undone. */
  repaired: number;
  /** Committed messages whose envelope could not be read, moved to quarantine/. */
  quarantined: number;
}

/** A message set aside because its envelope cannot be read. */
export interface QuarantinedMessage {
  id: string;
  /** Where the message file is kept. */
  path: string;
  quarantinedAt: string;
  reason: string;
}

export interface SpoolOptions {
  hostname?: string;
  /**
   * Told when a delivery record cannot be written (delivery and acceptance
   * stop) and when the held records were written (both resume).
   */
  onRecordState?: (state: 'blocked' | 'resumed', error?: Error) => void;
}

/** Spool ids: a base-36 time stamp then random hex, so that names sort by arrival. */
export const SPOOL_ID = /^[0-9a-z]{19}(?:-[0-9]{1,6})?$/;
const DELIVERED_ROTATE_BYTES = 64 * 1024 * 1024;
/** How much of the header section is searched for Message-ID. */
const HEADER_SCAN_BYTES = 256 * 1024;
/**
 * A message being received is written in pieces of this size; one no bigger
 * is written in one go and also handed to delivery in memory.
 */
const MEMORY_BATCH_BYTES = 256 * 1024;
/** While delivery records are held in memory, writing them is tried again this often. */
const RECORD_RETRY_MS = 1000;
/**
 * A refused lock is asked for again a few times over this long: `relay status`
 * holds a shared lock for an instant, and a new holder writes its pid just after locking.
 */
const LOCK_PATIENCE_MS = 300;

export function newSpoolId(now = Date.now()): string {
  return `${now.toString(36).padStart(9, '0')}${randomBytes(5).toString('hex')}`;
}

export class Spool {
  readonly dir: string;
  readonly tmpDir: string;
  readonly queueDir: string;
  readonly deadDir: string;
  readonly quarantineDir: string;
  readonly deliveredPath: string;
  readonly lockPath: string;
  private readonly hostname: string;
  private readonly onRecordState: NonNullable<SpoolOptions['onRecordState']>;
  private lockHandle: FileHandle | undefined;
  /** Delivery records Exchange's reply produced but the disk refused, oldest first. */
  private unrecorded: DeliveryRecord[] = [];
  private recordError: Error | undefined;
  private recordTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  /** delivered.jsonl, open for appending while records are written. */
  private recordsFile: Promise<FileHandle> | undefined;
  /** Known to end with a newline (or be empty): set by this process's last append. */
  private recordsEndLine = false;
  /** Flushes queue/ once for every reception that renamed its files into it meanwhile. */
  private readonly syncQueueDir: () => Promise<void>;
  /** queue/, kept open for those flushes while the spool is locked. */
  private queueDirHandle: Promise<FileHandle> | undefined;

  constructor(dir: string, options: SpoolOptions = {}) {
    this.dir = dir;
    this.tmpDir = join(dir, 'tmp');
    this.queueDir = join(dir, 'queue');
    this.deadDir = join(dir, 'dead');
    this.quarantineDir = join(dir, 'quarantine');
    this.deliveredPath = join(dir, 'delivered.jsonl');
    this.lockPath = join(dir, 'lock');
    this.hostname = options.hostname ?? osHostname();
    this.onRecordState = options.onRecordState ?? (() => {});
    this.syncQueueDir = groupCommit(() => this.flushQueueDir());
  }

  /**
   * True while a delivery record waits in memory for the disk: no message may
   * leave the queue (it would be sent again if its record were lost) and none
   * may be accepted.
   */
  get deliveryBlocked(): boolean {
    return this.recordError !== undefined;
  }

  /** Creates the folders (mode 0700: messages are private). */
  async init(): Promise<void> {
    try {
      for (const folder of [
        this.dir,
        this.tmpDir,
        this.queueDir,
        this.deadDir,
        this.quarantineDir,
      ]) {
        await mkdir(folder, { recursive: true, mode: 0o700 });
      }
    } catch (cause) {
      throw new ConfigurationError({
        code: 'RELAY_SPOOL_UNUSABLE',
        message: `The relay spool ${this.dir} cannot be created (${(cause as NodeJS.ErrnoException).code ?? 'error'})`,
        remedy: 'Point relay.spool at a directory the relay user owns, on a local file system.',
        cause,
      });
    }
  }

  /**
   * Takes the spool for this process with an OS lock on `lock` (an open file
   * description lock on Linux), held until `unlock()` or the process ends:
   * the kernel releases it at a crash or `kill -9`, so no stale lock is ever
   * taken over and two relays starting at once cannot both win.
   *
   * @throws ConfigurationError `RELAY_SPOOL_LOCKED` when another relay holds it
   */
  async lock(): Promise<void> {
    if (this.lockHandle) return;
    const deadline = Date.now() + LOCK_PATIENCE_MS;
    for (;;) {
      const { tryLock } = await osLocks();
      const handle = await open(this.lockPath, constants.O_RDWR | constants.O_CREAT, 0o600);
      let granted = false;
      try {
        granted = tryLock(handle.fd);
        // A relay that stops unlinks the file while it still holds it: a lock on
        // that old file, opened just before, guards nothing.
        if (granted && (await sameFile(handle, this.lockPath))) {
          await handle.truncate(0);
          await handle.write(`${process.pid}\n`, 0);
          this.lockHandle = handle;
          return;
        }
      } catch (error) {
        await handle.close();
        throw error;
      }
      await handle.close();
      if (!granted && Date.now() >= deadline) {
        const holder = await this.lockHolder();
        const who = holder?.pid !== undefined ? `process ${holder.pid}` : 'another process';
        throw new ConfigurationError({
          code: 'RELAY_SPOOL_LOCKED',
          message: `The relay spool ${this.dir} is in use by ${who}, a relay that is running now`,
          remedy: `Run one relay per spool directory: stop the other one${holder?.pid !== undefined ? ` (kill -TERM ${holder.pid})` : ''} or give this one its own spool (relay.spool or --spool).`,
        });
      }
      if (!granted) await sleep(25);
    }
  }

  /**
   * Whether a relay holds the spool now, and its pid when it could be read.
   * Asks the OS (a shared lock tried and let go at once), not the pid in the file.
   */
  async lockHolder(): Promise<{ pid: number | undefined } | undefined> {
    const { tryLock, unlock: unlockFile } = await osLocks();
    const handle = await open(this.lockPath, constants.O_RDONLY).catch(() => undefined);
    if (!handle) return undefined;
    try {
      if (tryLock(handle.fd, 0, 0, { shared: true })) {
        unlockFile(handle.fd);
        return undefined;
      }
      // Windows locks are mandatory: there the pid cannot be read while the relay runs.
      const text = await handle.readFile('utf8').catch(() => '');
      const pid = Number.parseInt(text.trim(), 10);
      return { pid: Number.isInteger(pid) && pid > 0 ? pid : undefined };
    } finally {
      await handle.close();
    }
  }

  async unlock(): Promise<void> {
    await this.stopRecordRetries();
    await this.closeQueueDir();
    const handle = this.lockHandle;
    if (!handle) return;
    this.lockHandle = undefined;
    // Unlinked while still held, so that whoever opened it meanwhile sees a stale file (see lock()).
    await unlink(this.lockPath).catch(() => {});
    await handle.close();
  }

  /** Finishes or undoes what a crash interrupted; see the module comment. */
  async recover(): Promise<RecoveryReport> {
    const report: RecoveryReport = {
      queued: 0,
      discarded: 0,
      alreadyDelivered: 0,
      repaired: 0,
      quarantined: 0,
    };
    for (const name of await readdir(this.tmpDir)) {
      await rm(join(this.tmpDir, name), { force: true, recursive: true });
      if (name.endsWith('.eml')) report.discarded++;
    }
    const queue = await listIds(this.queueDir);
    const dead = await listIds(this.deadDir);
    const quarantined = await listIds(this.quarantineDir);
    for (const id of queue.eml) {
      if (queue.json.has(id)) continue;
      if (dead.json.has(id) && !dead.eml.has(id)) {
        // `relay retry` moved the .eml out of dead/ but not yet the .json: undo.
        await rename(this.queuePath(id, 'eml'), this.deadPath(id, 'eml'));
        report.repaired++;
      } else {
        // Never committed (the client never heard 250), or delivered and half removed.
        await unlink(this.queuePath(id, 'eml'));
        report.discarded++;
      }
    }
    for (const id of queue.json) {
      if (queue.eml.has(id)) continue;
      if (dead.eml.has(id) && !dead.json.has(id)) {
        // A move to dead/ stopped between its two renames: finish it.
        await rename(this.queuePath(id, 'json'), this.deadPath(id, 'json'));
        report.repaired++;
        continue;
      }
      if (quarantined.eml.has(id) && !quarantined.json.has(id)) {
        await rename(this.queuePath(id, 'json'), join(this.quarantineDir, `${id}.json`));
        report.repaired++;
        continue;
      }
      const envelope = await this.readJson(this.queuePath(id, 'json')).catch(() => undefined);
      await rename(this.queuePath(id, 'json'), this.deadPath(id, 'json'));
      await writeFile(
        this.deadPath(id, 'reason.txt'),
        `Spool id ${id}${envelope ? ` (Message-ID ${envelope.messageId})` : ''}: the message file is missing from the queue; only its envelope is left.\n`,
      );
      report.repaired++;
    }
    // Delivery records written just before a crash: the message went out, drop it (or the
    // recipients it reached) instead of sending it again.
    const pending = new Set([...queue.json].filter((id) => queue.eml.has(id)));
    // An accepted message whose envelope cannot be read is set aside where
    // `relay status` shows it, never dropped and never guessed at.
    for (const id of pending) {
      const problem = await this.readEnvelope(id).then(
        () => undefined,
        (error: unknown) => (error as Error).message,
      );
      if (problem === undefined) continue;
      await this.quarantine(id, problem);
      pending.delete(id);
      report.quarantined++;
    }
    const records = await this.readDeliveryRecords(pending);
    for (const id of pending) {
      const done = records.get(id);
      if (!done) continue;
      if (done.complete) {
        await this.removeFromQueue(id);
        pending.delete(id);
        report.alreadyDelivered++;
        continue;
      }
      const envelope = await this.readEnvelope(id);
      const reached = new Set(done.to.map((a) => a.toLowerCase()));
      const left = envelope.to.filter((a) => !reached.has(a.toLowerCase()));
      if (left.length !== envelope.to.length) {
        await this.updateEnvelope({
          ...envelope,
          to: left,
          delivered: [...(envelope.delivered ?? []), ...done.to],
        });
      }
    }
    await this.rotateDeliveryRecords();
    report.queued = pending.size;
    return report;
  }

  /**
   * Writes one message from the client's DATA stream into the queue: the
   * bytes as received, with a `Message-ID:` line in front when the header
   * has none. Resolves only once the message is committed and flushed.
   */
  async receive(stream: Readable, input: ReceiveInput): Promise<ReceiveResult> {
    if (this.recordError) {
      // Drained, so that the client hears the 4xx.
      for await (const _ of stream);
      throw new MailbridgeError({
        code: 'RELAY_DELIVERY_RECORD_UNWRITABLE',
        message: `The relay is not accepting mail: its delivery record cannot be written (${errnoOf(this.recordError)})`,
        remedy: `Free space on the file system of ${this.dir}; the relay resumes by itself.`,
        cause: this.recordError,
      });
    }
    const id = newSpoolId();
    // Written in place: until its .json joins it, an .eml in queue/ commits nothing.
    const eml = this.queuePath(id, 'eml');
    const tmpJson = join(this.tmpDir, `${id}.json`);
    const emlFile = new NewSyncedFile(eml);
    const jsonFile = new NewSyncedFile(tmpJson);
    let committed = false;
    try {
      let head: Buffer[] = [];
      let headBytes = 0;
      let headerDone = false;
      let messageId: string | undefined;
      let added = false;
      let bytes = 0;
      let tooLarge = false;
      // Held in memory and written in pieces of MEMORY_BATCH_BYTES, not per chunk of the
      // stream: each file operation is a trip through libuv's small thread pool, which the
      // fsyncs of other receptions also queue on. A message no bigger than one piece is
      // written at the end in one durable write, and delivery starts from it in memory.
      let unwritten: Buffer[] = [];
      let unwrittenBytes = 0;
      let large = false;
      const writeOut = async () => {
        large = true;
        const data = Buffer.concat(unwritten);
        unwritten = [];
        unwrittenBytes = 0;
        await emlFile.write(data);
      };
      const emit = async (data: Buffer) => {
        bytes += data.length;
        unwritten.push(data);
        unwrittenBytes += data.length;
        if (unwrittenBytes >= MEMORY_BATCH_BYTES) await writeOut();
      };
      const flushHead = async () => {
        const buffered = Buffer.concat(head);
        head = [];
        messageId = findMessageId(buffered);
        if (!messageId) {
          messageId = `<${id}@${this.hostname}>`;
          added = true;
          await emit(Buffer.from(`Message-ID: ${messageId}\r\n`, 'latin1'));
        }
        await emit(buffered);
        headerDone = true;
      };
      // A failed write does not stop reading: the client's DATA must be drained
      // for it to hear the 451, and the stream belongs to the SMTP connection.
      let writeError: unknown;
      let received = 0;
      const chunks = readChunks(stream);
      for await (const chunk of chunks) {
        const data = chunk as Buffer;
        received += data.length;
        if (tooLarge || writeError) continue;
        if (received > input.maxBytes) {
          tooLarge = true;
          continue;
        }
        try {
          if (headerDone) {
            await emit(data);
            continue;
          }
          head.push(data);
          headBytes += data.length;
          const joined = head.length > 1 ? Buffer.concat(head) : data;
          if (head.length > 1) head = [joined];
          if (headerEnd(joined) !== -1 || headBytes >= HEADER_SCAN_BYTES) {
            headBytes = 0;
            await flushHead();
          }
        } catch (error) {
          writeError = error;
        }
      }
      if (chunks.streamError)
        return { ok: false, reason: 'disconnected', error: chunks.streamError };
      if (writeError) throw writeError;
      if (tooLarge) return { ok: false, reason: 'too-large', bytes: received };
      if (!headerDone) await flushHead();
      const content = large ? undefined : Buffer.concat(unwritten);

      const now = new Date().toISOString();
      const envelope: SpoolEnvelope = {
        version: 1,
        id,
        from: input.from,
        to: input.to,
        mailbox: input.mailbox,
        messageId: messageId as string,
        messageIdAdded: added,
        size: bytes,
        receivedAt: now,
        since: now,
        client: input.client,
        attempts: 0,
        nextAttemptAt: now,
        ...(input.bounce ? { bounce: true } : {}),
      };
      // The two files are written side by side: the .json is not in queue/ yet, so the order is free.
      await Promise.all(
        [
          [emlFile, content ?? Buffer.concat(unwritten)] as const,
          [jsonFile, `${JSON.stringify(envelope)}\n`] as const,
        ].map(async ([file, data]) => {
          await file.write(data);
          await file.flush();
        }),
      );
      unwritten = [];
      await rename(tmpJson, this.queuePath(id, 'json'));
      await this.syncQueueDir();
      committed = true;
      return { ok: true, envelope, ...(content ? { content } : {}) };
    } finally {
      // After a commit the files are closed behind the client's 250, not before it.
      const closing = Promise.all([emlFile.close(), jsonFile.close()]);
      if (!committed) {
        await closing;
        await rm(eml, { force: true });
        await rm(tmpJson, { force: true });
      }
    }
  }

  /** Queues a message made by the relay itself (a bounce), with the same durability. */
  async enqueueGenerated(
    raw: Buffer,
    input: Omit<ReceiveInput, 'maxBytes'>,
  ): Promise<SpoolEnvelope> {
    const result = await this.receive(Readable.from([raw]), {
      ...input,
      maxBytes: Number.MAX_SAFE_INTEGER,
    });
    if (!result.ok) throw new Error('unreachable: a generated message has no size limit or client');
    return result.envelope;
  }

  queuePath(id: string, kind: 'eml' | 'json' | 'kick'): string {
    return join(this.queueDir, `${id}.${kind}`);
  }

  deadPath(id: string, kind: 'eml' | 'json' | 'reason.txt'): string {
    return join(this.deadDir, `${id}.${kind}`);
  }

  /** Envelopes of every committed message in the queue. */
  async listQueue(): Promise<SpoolEnvelope[]> {
    const ids = await listIds(this.queueDir);
    const out: SpoolEnvelope[] = [];
    for (const id of [...ids.json].sort()) {
      if (!ids.eml.has(id)) continue;
      const envelope = await this.readEnvelope(id).catch(() => undefined);
      if (envelope) out.push(envelope);
    }
    return out;
  }

  async listDead(): Promise<SpoolEnvelope[]> {
    const ids = await listIds(this.deadDir);
    const out: SpoolEnvelope[] = [];
    for (const id of [...ids.json].sort()) {
      const envelope = await this.readJson(this.deadPath(id, 'json')).catch(() => undefined);
      if (envelope) out.push(envelope);
    }
    return out;
  }

  /**
   * Ids with a `.kick` marker in the queue, less those delivered whose record
   * still waits in memory: released again, they would be sent twice.
   */
  async listKicks(): Promise<string[]> {
    const held = new Set(this.unrecorded.map((r) => r.id));
    return [...(await listIds(this.queueDir)).kick].filter((id) => !held.has(id));
  }

  async clearKick(id: string): Promise<void> {
    await rm(this.queuePath(id, 'kick'), { force: true });
  }

  /** A queued message's envelope, checked. @throws when it cannot be read or is not an envelope */
  async readEnvelope(id: string): Promise<SpoolEnvelope> {
    return parseEnvelope(await readFile(this.queuePath(id, 'json'), 'utf8'), id);
  }

  /** Replaces the envelope atomically and durably (attempts, next attempt, last error). */
  async updateEnvelope(envelope: SpoolEnvelope): Promise<void> {
    await writeFileAtomic(
      this.queuePath(envelope.id, 'json'),
      `${JSON.stringify(envelope)}\n`,
      this.tmpDir,
    );
  }

  /**
   * Records a delivery, then removes the message when no recipient is left.
   * The record is written before the removal: after a crash in between,
   * `recover()` finds it and does not send the message again. A record the
   * disk refuses is held in memory, the message stays where it is, and
   * `deliveryBlocked` stops everything else until the record is written
   * (tried again every second); only then does the message leave the queue.
   * `onRecorded` is told as soon as the record is on disk, before the removal:
   * from then on a crash cannot make the message go out again.
   */
  async recordDelivery(record: DeliveryRecord, onRecorded?: () => void): Promise<void> {
    if (!this.recordError) {
      try {
        await this.appendRecord(record);
        onRecorded?.();
        if (record.complete) await this.removeFromQueue(record.id);
        return;
      } catch (error) {
        this.recordError = error as Error;
        this.onRecordState('blocked', this.recordError);
      }
    }
    this.unrecorded.push(record);
    this.scheduleRecordRetry();
  }

  /** Writes the held delivery records, in order, as far as the disk allows. */
  async flushDeliveryRecords(): Promise<void> {
    this.flushing ??= (async () => {
      try {
        while (this.unrecorded.length > 0) {
          const record = this.unrecorded[0] as DeliveryRecord;
          await this.appendRecord(record);
          // Held (and so kept from `relay retry`) until it has left the queue.
          if (record.complete) await this.removeFromQueue(record.id);
          this.unrecorded.shift();
        }
        this.recordError = undefined;
        this.onRecordState('resumed');
      } catch (error) {
        this.recordError = error as Error;
      } finally {
        this.flushing = undefined;
      }
    })();
    await this.flushing;
  }

  private scheduleRecordRetry(): void {
    if (this.recordTimer) return;
    this.recordTimer = setTimeout(() => {
      this.recordTimer = undefined;
      void this.flushDeliveryRecords().then(() => {
        if (this.unrecorded.length > 0 && this.lockHandle) this.scheduleRecordRetry();
      });
    }, RECORD_RETRY_MS);
    this.recordTimer.unref();
  }

  /** A last try for held records (at stop); those still unwritten are sent again after restart. */
  private async stopRecordRetries(): Promise<void> {
    if (this.recordTimer) clearTimeout(this.recordTimer);
    this.recordTimer = undefined;
    if (this.unrecorded.length > 0) await this.flushDeliveryRecords();
    await this.closeRecords();
  }

  /**
   * One line onto delivered.jsonl. Not fsynced per line: a process crash keeps
   * what was written; only a power failure could lose a line, and that costs a
   * duplicate, never a message. A write cut short (ENOSPC) is cut back off, and
   * a line left unfinished by a crash is ended first, so every record stays
   * whole. Whether the file ends a line is checked once, not per record: only
   * this process writes it, and after a failure it is checked again. The file
   * stays open between records (an open and a close fewer per message); it is
   * the relay's own, renamed only by recover() at start-up, which closes it first.
   */
  private async appendRecord(record: DeliveryRecord): Promise<void> {
    let handle: FileHandle | undefined;
    try {
      this.recordsFile ??= open(this.deliveredPath, 'a+', 0o600);
      handle = await this.recordsFile;
      let line = `${JSON.stringify(record)}\n`;
      if (!this.recordsEndLine) {
        const { size } = await handle.stat();
        if (size > 0) {
          const last = Buffer.alloc(1);
          await handle.read(last, 0, 1, size - 1);
          if (last[0] !== 0x0a) line = `\n${line}`;
        }
      }
      const data = Buffer.from(line, 'utf8');
      let written = 0;
      try {
        while (written < data.length) {
          written += (await handle.write(data, written, data.length - written)).bytesWritten;
        }
      } catch (error) {
        const cut = handle;
        await cut
          .stat()
          .then(({ size }) => cut.truncate(size - written))
          .catch(() => {});
        throw error;
      }
      this.recordsEndLine = true;
    } catch (error) {
      this.recordsEndLine = false;
      // Opened again for the next record, which checks the file's end again.
      await this.closeRecords();
      throw error;
    }
  }

  /**
   * The group commit's flush of queue/, on a handle kept open: an open and a
   * close fewer (two thread-pool trips) between the end of DATA and the 250.
   * Windows cannot open a directory for it (see fsyncDirectory).
   */
  private async flushQueueDir(): Promise<void> {
    if (process.platform === 'win32') return;
    this.queueDirHandle ??= open(this.queueDir, constants.O_RDONLY);
    try {
      await (await this.queueDirHandle).sync();
    } catch (error) {
      // Opened again for the next flush.
      await this.closeQueueDir();
      throw error;
    }
  }

  private async closeQueueDir(): Promise<void> {
    const handle = this.queueDirHandle;
    this.queueDirHandle = undefined;
    await handle?.then((h) => h.close()).catch(() => {});
  }

  private async closeRecords(): Promise<void> {
    const file = this.recordsFile;
    this.recordsFile = undefined;
    await file?.then((handle) => handle.close()).catch(() => {});
  }

  /** Moves a message to dead/ with the reason beside it. */
  async moveToDead(envelope: SpoolEnvelope, reason: string): Promise<void> {
    const id = envelope.id;
    const dead: SpoolEnvelope = { ...envelope, deadAt: new Date().toISOString(), reason };
    await writeFile(this.deadPath(id, 'reason.txt'), reasonText(dead), { mode: 0o600 });
    // The .json is rewritten in queue/ first so the move is two renames that recover() can finish.
    await this.updateEnvelope(dead);
    await rename(this.queuePath(id, 'eml'), this.deadPath(id, 'eml')).catch((error: unknown) => {
      // A message file that vanished still leaves its envelope and reason in dead/.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    });
    await rename(this.queuePath(id, 'json'), this.deadPath(id, 'json'));
    await fsyncDirectory(this.deadDir);
    await fsyncDirectory(this.queueDir);
  }

  /**
   * Puts a copy of a message in dead/ for the recipients that failed
   * permanently while others are still to be delivered. Returns its id.
   */
  async copyToDead(
    envelope: SpoolEnvelope,
    recipients: string[],
    reason: string,
    suffix: number,
  ): Promise<string> {
    const id = `${envelope.id}-${suffix}`;
    const dead: SpoolEnvelope = {
      ...envelope,
      id,
      to: recipients,
      deadAt: new Date().toISOString(),
      reason,
    };
    await copyFile(this.queuePath(envelope.id, 'eml'), this.deadPath(id, 'eml'));
    await writeFile(this.deadPath(id, 'reason.txt'), reasonText(dead), { mode: 0o600 });
    await writeFileDurably(this.deadPath(id, 'json'), `${JSON.stringify(dead)}\n`);
    await fsyncDirectory(this.deadDir);
    return id;
  }

  /**
   * `relay retry`: a dead message goes back to the queue with a new retry
   * window; a queued one gets a `.kick` marker the running relay acts on.
   */
  async release(id: string): Promise<'released' | 'kicked' | 'unknown'> {
    if (!SPOOL_ID.test(id)) return 'unknown';
    const inDead = await exists(this.deadPath(id, 'json'));
    if (inDead) {
      const envelope = await this.readJson(this.deadPath(id, 'json'));
      const now = new Date().toISOString();
      const { deadAt: _deadAt, reason: _reason, ...rest } = envelope;
      const released: SpoolEnvelope = { ...rest, attempts: 0, since: now, nextAttemptAt: now };
      await writeFileAtomic(
        this.deadPath(id, 'json'),
        `${JSON.stringify(released)}\n`,
        this.tmpDir,
      );
      await rename(this.deadPath(id, 'eml'), this.queuePath(id, 'eml'));
      await rename(this.deadPath(id, 'json'), this.queuePath(id, 'json'));
      await fsyncDirectory(this.queueDir);
      await rm(this.deadPath(id, 'reason.txt'), { force: true });
      await writeFile(this.queuePath(id, 'kick'), '');
      return 'released';
    }
    if (await exists(this.queuePath(id, 'json'))) {
      await writeFile(this.queuePath(id, 'kick'), '');
      return 'kicked';
    }
    return 'unknown';
  }

  /** Messages set aside because their envelope could not be read. */
  async listQuarantine(): Promise<QuarantinedMessage[]> {
    const ids = await listIds(this.quarantineDir);
    const out: QuarantinedMessage[] = [];
    for (const id of [...ids.eml].sort()) {
      const text = await readFile(join(this.quarantineDir, `${id}.reason.txt`), 'utf8').catch(
        () => '',
      );
      const info = await stat(join(this.quarantineDir, `${id}.eml`)).catch(() => undefined);
      out.push({
        id,
        path: join(this.quarantineDir, `${id}.eml`),
        quarantinedAt: info?.mtime.toISOString() ?? '',
        reason: /^Reason: *(.*)$/m.exec(text)?.[1] ?? 'unknown',
      });
    }
    return out;
  }

  /** Moves a committed message whose envelope is unreadable to quarantine/, as it is. */
  private async quarantine(id: string, problem: string): Promise<void> {
    const reason = `the envelope ${id}.json cannot be read (${problem}); its recipients are unknown`;
    await writeFileDurably(
      join(this.quarantineDir, `${id}.reason.txt`),
      [
        `Spool id:    ${id}`,
        `Reason:      ${reason}`,
        'What to do:  read the message file beside this one and send it again from its sender.',
        '',
      ].join('\n'),
    );
    // The .eml first: an .eml alone in queue/ would count as an unacknowledged reception,
    // while a .json left behind is finished by recover().
    await rename(this.queuePath(id, 'eml'), join(this.quarantineDir, `${id}.eml`));
    await rename(this.queuePath(id, 'json'), join(this.quarantineDir, `${id}.json`));
    await fsyncDirectory(this.quarantineDir);
    await fsyncDirectory(this.queueDir);
  }

  private async removeFromQueue(id: string): Promise<void> {
    // The .json first: it uncommits the message; an .eml alone is cleared by recover().
    // No unlink of a .kick per message (it almost never exists): the delivery worker's
    // scan removes every .kick it finds, one left on a delivered message included.
    await unlinkIfPresent(this.queuePath(id, 'json'));
    await unlinkIfPresent(this.queuePath(id, 'eml'));
  }

  /** Latest record per id, for the ids asked about. */
  async readDeliveryRecords(ids: ReadonlySet<string>): Promise<Map<string, DeliveryRecord>> {
    const found = new Map<string, DeliveryRecord>();
    if (ids.size === 0) return found;
    const text = await readFile(this.deliveredPath, 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      if (!line) continue;
      let record: DeliveryRecord;
      try {
        record = JSON.parse(line) as DeliveryRecord;
      } catch {
        continue; // a line cut short by a crash
      }
      if (!ids.has(record.id)) continue;
      const previous = found.get(record.id);
      found.set(
        record.id,
        previous
          ? { ...record, to: [...previous.to, ...record.to], complete: record.complete }
          : record,
      );
    }
    return found;
  }

  private async rotateDeliveryRecords(): Promise<void> {
    const info = await stat(this.deliveredPath).catch(() => undefined);
    if (info && info.size > DELIVERED_ROTATE_BYTES) {
      await this.closeRecords();
      this.recordsEndLine = false;
      await rename(this.deliveredPath, `${this.deliveredPath}.1`);
    }
  }

  private async readJson(path: string): Promise<SpoolEnvelope> {
    return parseEnvelope(await readFile(path, 'utf8'));
  }
}

/** The Message-ID in a header section (folded lines allowed), or `undefined`. */
export function findMessageId(head: Buffer): string | undefined {
  const end = headerEnd(head);
  const text = head.subarray(0, end === -1 ? head.length : end).toString('latin1');
  const unfolded = text.replace(/\r?\n[ \t]+/g, ' ');
  const m = /^message-id:[ \t]*(<[^<>\s]+>)/im.exec(unfolded);
  return m?.[1];
}

/** Offset of the blank line that ends the header section, or -1. */
function headerEnd(data: Buffer): number {
  if (data.length >= 2 && data[0] === 0x0d && data[1] === 0x0a) return 0;
  const crlf = data.indexOf('\r\n\r\n');
  const lf = data.indexOf('\n\n');
  if (crlf === -1) return lf;
  if (lf === -1) return crlf;
  return Math.min(crlf, lf);
}

function reasonText(envelope: SpoolEnvelope): string {
  return [
    `Spool id:    ${envelope.id}`,
    `Message-ID:  ${envelope.messageId}`,
    `From:        <${envelope.from}>`,
    `To:          ${envelope.to.map((a) => `<${a}>`).join(', ')}`,
    `Mailbox:     ${envelope.mailbox}`,
    `Received:    ${envelope.receivedAt}`,
    `Failed:      ${envelope.deadAt}`,
    `Attempts:    ${envelope.attempts}`,
    `Reason:      ${envelope.reason}`,
    '',
  ].join('\n');
}

async function listIds(
  dir: string,
): Promise<{ eml: Set<string>; json: Set<string>; kick: Set<string> }> {
  const out = { eml: new Set<string>(), json: new Set<string>(), kick: new Set<string>() };
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const m = /^(.+)\.(eml|json|kick)$/.exec(name);
    if (m && SPOOL_ID.test(m[1] as string))
      out[m[2] as 'eml' | 'json' | 'kick'].add(m[1] as string);
  }
  return out;
}

/**
 * An envelope from its file, checked enough that the worker can act on it.
 * @throws Error saying what is wrong (not JSON, a field missing, another id)
 */
export function parseEnvelope(text: string, id?: string): SpoolEnvelope {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`not JSON (${text.length} bytes)`);
  }
  const e = value as Partial<SpoolEnvelope> | null;
  const missing = [
    !e || typeof e !== 'object' ? 'an object' : undefined,
    e?.version !== 1 ? 'version 1' : undefined,
    typeof e?.id !== 'string' || (id !== undefined && e.id !== id) ? `id ${id ?? ''}` : undefined,
    typeof e?.from !== 'string' ? 'from' : undefined,
    !Array.isArray(e?.to) || !e.to.every((a) => typeof a === 'string') ? 'to' : undefined,
    typeof e?.mailbox !== 'string' || !e.mailbox ? 'mailbox' : undefined,
    typeof e?.messageId !== 'string' ? 'messageId' : undefined,
    typeof e?.attempts !== 'number' ? 'attempts' : undefined,
    ...(['receivedAt', 'since', 'nextAttemptAt'] as const).map((k) =>
      typeof e?.[k] !== 'string' || Number.isNaN(Date.parse(e[k] as string)) ? k : undefined,
    ),
  ].filter((m) => m !== undefined);
  if (missing.length > 0) throw new Error(`no valid ${missing.join(', ')}`);
  return e as SpoolEnvelope;
}

/** A stream's chunks, with an error of the stream (the client went away) kept instead of thrown. */
function readChunks(stream: Readable): AsyncIterable<unknown> & { streamError?: Error } {
  const result: AsyncIterable<unknown> & { streamError?: Error } = {
    async *[Symbol.asyncIterator]() {
      try {
        for await (const chunk of stream) yield chunk;
      } catch (error) {
        result.streamError = error as Error;
      }
    },
  };
  return result;
}

function errnoOf(error: Error): string {
  return (error as NodeJS.ErrnoException).code ?? error.message;
}

/**
 * The native lock calls; a platform without a prebuilt binary loses only the
 * relay, not every command.
 * @throws ConfigurationError `RELAY_SPOOL_LOCK_UNAVAILABLE`
 */
function osLocks(): Promise<NativeFileLocks> {
  return nativeFileLocks().catch((cause: Error) => {
    throw new ConfigurationError({
      code: 'RELAY_SPOOL_LOCK_UNAVAILABLE',
      message: `The relay cannot lock its spool: ${cause.message}`,
      remedy:
        'Run the relay on Linux with glibc (x64, arm64), macOS or Windows, for example with the Dockerfile in examples/relay.',
      cause,
    });
  });
}

/** Whether an open file is still the one at `path` (not unlinked or replaced since). */
async function sameFile(handle: FileHandle, path: string): Promise<boolean> {
  const [open, named] = await Promise.all([handle.stat(), stat(path).catch(() => undefined)]);
  return named !== undefined && open.ino === named.ino && open.dev === named.dev;
}

/** unlink, with a file already gone taken as done (rm's `force` costs an lstat more). */
async function unlinkIfPresent(path: string): Promise<void> {
  await unlink(path).catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  });
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
