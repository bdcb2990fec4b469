/**
 * Copies one folder: the source's messages not yet in the state, each APPENDed
 * to the destination with its INTERNALDATE and flags and journalled once the
 * server has it. The folder is planned on one connection pair; its messages
 * then go in batches of neighbouring UIDs to that pair and to every pair the
 * pool can spare, so one large folder uses all the connections. Never a
 * duplicate: when the state cannot vouch for the
 * destination folder (no state, or the folder has grown past what the state
 * put there), the destination's identities are read once and a message
 * already there is recorded, not sent again.
 */
import type { FetchMessageObject, ImapFlow, MailboxObject } from 'imapflow';
import type { AppendPipeline } from '../../clients/imap-append-pipeline.js';
import type { ImapFlowErrorFields } from '../../clients/imap-client.js';
import type { ImapSession } from '../../clients/imap-session.js';
import { MailbridgeError } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import { displayText } from '../../util/display-text.js';
import { type LeasePool, shareParts } from '../mailbox-read/lease-pool.js';
import type { FolderMapping } from './folder-plan.js';
import { IDENTITY_HEADERS, IdentityCounts, messageIdentity } from './identity.js';
import { flagsToCopy, uidSet } from './message-flags.js';
import type { PairDestination } from './pair-destination.js';
import type { MigrationState } from './state.js';

/**
 * A batch of bodies fetched at once: bounded in count and bytes, so memory
 * stays bounded. A pair holds two at most: one being APPENDed while it reads
 * the next.
 */
const BATCH_MESSAGES = 200;
const BATCH_BYTES = 8 * 1024 * 1024;
/**
 * Pipelined APPENDs unanswered at once: enough to cover a round trip of a slow
 * link many times over, few enough that a failed connection leaves little to check.
 */
const PIPELINE_MESSAGES = 64;
/** Above this, a message is read in pieces into a buffer of its own size (fetchInPieces). */
const LARGE_MESSAGE_BYTES = 8 * 1024 * 1024;
const PIECE_BYTES = 2 * 1024 * 1024;
const PIPELINE_BYTES = 8 * 1024 * 1024;
/**
 * Messages in one APPEND where the server offers MULTIAPPEND: Dovecot locks
 * and updates the folder once per APPEND, not per message. Two groups at
 * least fit the pipeline's window, so one is sent while the last is answered.
 */
const MULTIAPPEND_MESSAGES = 32;
const MULTIAPPEND_BYTES = 4 * 1024 * 1024;

export interface SkippedMessage {
  uid: number;
  size?: number;
  /** The server's words, made safe to show. */
  reason: string;
}

export interface MigrateFolderResult {
  source: string;
  destination: string;
  /** The destination folder was created by this run (or would be, with dryRun). */
  created: boolean;
  /** Copied by this run (with dryRun: would be copied). */
  copied: number;
  /** Found at the destination by identity and recorded, not copied again. */
  alreadyPresent: number;
  skipped: SkippedMessage[];
  bytes: number;
}

export type MigrateProgressEvent =
  | { type: 'folder-start'; source: string; destination: string; pending: number }
  | { type: 'message'; source: string; outcome: 'copied' | 'present' | 'skipped'; bytes: number }
  | { type: 'folder-done'; result: MigrateFolderResult };

/** A source session, and the destination's session or pipelined APPEND connection. */
export interface ConnectionPair {
  source: ImapSession;
  destination: PairDestination;
}

export interface CopyContext {
  /** The pairs a large folder's batches may also go to. */
  pool: LeasePool<ConnectionPair>;
  state: MigrationState;
  since?: Date;
  dryRun: boolean;
  logger: Logger;
  signal?: AbortSignal;
  onProgress?: (event: MigrateProgressEvent) => void;
}

interface SourceMessage {
  uid: number;
  size: number;
  flags: Set<string>;
  internalDate: Date | undefined;
}

/** `pair` is the caller's lease: the folder is planned there. */
export async function copyFolder(
  ctx: CopyContext,
  pair: ConnectionPair,
  mapping: FolderMapping,
): Promise<MigrateFolderResult> {
  const result: MigrateFolderResult = {
    source: mapping.source,
    destination: mapping.destination,
    created: false,
    copied: 0,
    alreadyPresent: 0,
    skipped: [],
    bytes: 0,
  };
  const status = await pair.source.open(mapping.source, { readOnly: true });
  const uidValidity = String(status.uidValidity);
  const found =
    status.exists === 0
      ? []
      : (await pair.source.run((c) =>
          c.search(ctx.since ? { since: ctx.since } : { all: true }, { uid: true }),
        )) || [];
  const done = ctx.state.copiedInto(mapping.source, uidValidity, mapping.destination);
  const remapped = ctx.state.copied(mapping.source, uidValidity).size - done.size;
  if (remapped > 0) {
    ctx.logger.log(
      'warn',
      'messages copied earlier into another destination folder are copied into this one, as the mapping now says; the earlier copies stay',
      { source: mapping.source, destination: mapping.destination, messages: remapped },
    );
  }
  const pending = found.filter((uid) => !done.has(uid)).sort((a, b) => a - b);
  ctx.onProgress?.({
    type: 'folder-start',
    source: mapping.source,
    destination: mapping.destination,
    pending: pending.length,
  });
  if (pending.length > 0) await copyPending(ctx, pair, mapping, uidValidity, pending, result);
  ctx.onProgress?.({ type: 'folder-done', result });
  return result;
}

/** What every batch of one folder shares, whichever pair copies it. */
interface FolderRun {
  mapping: FolderMapping;
  uidValidity: string;
  destValidity: string;
  permanentFlags: MailboxObject['permanentFlags'];
  /** At most the destination's UIDNEXT now: where an APPEND of unknown outcome is looked for. */
  destNext: number;
  identities: IdentityCounts | undefined;
  result: MigrateFolderResult;
  /** Per pair, its last batch's APPENDs, still going while the pair reads the next batch. */
  sending: Map<ConnectionPair, Promise<void>>;
}

async function copyPending(
  ctx: CopyContext,
  pair: ConnectionPair,
  mapping: FolderMapping,
  uidValidity: string,
  pending: number[],
  result: MigrateFolderResult,
): Promise<void> {
  const messages = await sourceMessages(pair.source, pending);
  const wouldCopyAll = () => {
    result.copied = messages.length;
    result.bytes = messages.reduce((sum, m) => sum + m.size, 0);
  };
  const skipAll = (reason: string) => {
    for (const m of messages) {
      result.skipped.push({ uid: m.uid, size: m.size, reason });
      ctx.onProgress?.({ type: 'message', source: mapping.source, outcome: 'skipped', bytes: 0 });
    }
  };

  if (!mapping.exists) {
    result.created = true;
    if (ctx.dryRun) return wouldCopyAll();
    const refusal = await createFolder(pair.destination, mapping);
    if (refusal !== undefined)
      return skipAll(`the destination refused to create the folder: ${refusal}`);
  }
  const target = await pair.destination.open(mapping.destination, { readOnly: ctx.dryRun });
  const destValidity = String(target.uidValidity);
  const identities = (await needsIdentityCheck(ctx, mapping, uidValidity, target))
    ? await destinationIdentities(ctx, pair.destination, mapping, uidValidity, destValidity)
    : undefined;
  // Nothing to compare against: no body needs reading.
  if (ctx.dryRun && !identities) return wouldCopyAll();

  const run: FolderRun = {
    mapping,
    uidValidity,
    destValidity,
    permanentFlags: target.permanentFlags,
    destNext: target.uidNext,
    identities,
    result,
    sending: new Map(),
  };
  await shareParts(
    ctx.pool,
    pair,
    [...batches(messages)],
    (worker, batch) => copyBatch(ctx, worker, run, batch),
    async (worker) => {
      const sending = run.sending.get(worker);
      run.sending.delete(worker);
      await sending;
    },
  );
}

/** Selects the folder's source on `pair` unless it is already; the destination is selected where it is used. */
async function selectFolder(
  ctx: CopyContext,
  pair: ConnectionPair,
  run: FolderRun,
): Promise<boolean> {
  const { mapping } = run;
  if (pair.source.selected?.path !== mapping.source) {
    const status = await pair.source.open(mapping.source, { readOnly: true });
    // Recreated since it was planned: its UIDs name other messages now; the next run re-plans it.
    if (String(status.uidValidity) !== run.uidValidity) {
      ctx.logger.log('warn', 'the source folder changed its UIDVALIDITY during the run', {
        folder: mapping.source,
      });
      return false;
    }
  }
  return true;
}

/** A message to APPEND, with what its outcome is recorded under. */
interface Outgoing {
  message: SourceMessage;
  raw: Buffer;
  identity: string;
  flags: string[];
  /** The destination's UIDNEXT at most, when it was sent: where to look for it when its outcome is unknown. */
  since: number;
}

/**
 * Reads one batch on the pair's source and leaves its APPENDs going
 * (`run.sending`) once the pair's batch before has been answered: the source
 * reads the next batch while the destination takes this one, so on a slow
 * link neither waits for the other.
 */
async function copyBatch(
  ctx: CopyContext,
  pair: ConnectionPair,
  run: FolderRun,
  batch: SourceMessage[],
): Promise<void> {
  const outgoing = await readBatch(ctx, pair, run, batch);
  await run.sending.get(pair);
  const sending = sendBatch(ctx, pair, run, outgoing);
  // Awaited by the pair's next batch or by shareParts' finish; until then a failure is not unhandled.
  sending.catch(() => {});
  run.sending.set(pair, sending);
}

/** The batch's messages not yet at the destination; those found there by identity are recorded. */
async function readBatch(
  ctx: CopyContext,
  pair: ConnectionPair,
  run: FolderRun,
  batch: SourceMessage[],
): Promise<Outgoing[]> {
  const { mapping, uidValidity, destValidity, identities, result } = run;
  if (!(await selectFolder(ctx, pair, run))) return [];
  const bodies = await fetchBodies(pair.source, batch, ctx.dryRun);
  const outgoing: Outgoing[] = [];
  for (const message of batch) {
    throwIfInterrupted(ctx.signal);
    const raw = bodies.get(message.uid);
    // Expunged at the source since the listing: nothing left to copy.
    if (!raw) continue;
    const identity = messageIdentity(raw);
    const present = identities?.take(identity);
    if (present !== undefined) {
      result.alreadyPresent++;
      if (!ctx.dryRun) {
        await ctx.state.record({
          f: mapping.source,
          v: uidValidity,
          u: message.uid,
          df: mapping.destination,
          dv: destValidity,
          du: present,
          s: 'present',
        });
      }
      ctx.onProgress?.({ type: 'message', source: mapping.source, outcome: 'present', bytes: 0 });
      continue;
    }
    if (ctx.dryRun) {
      result.copied++;
      result.bytes += message.size;
      continue;
    }
    outgoing.push({
      message,
      raw,
      identity,
      flags: flagsToCopy(message.flags, run.permanentFlags),
      since: run.destNext,
    });
  }
  bodies.clear();
  return outgoing;
}

/** APPENDs `outgoing` and records each; the pipeline first, the session for what it left. */
async function sendBatch(
  ctx: CopyContext,
  pair: ConnectionPair,
  run: FolderRun,
  outgoing: Outgoing[],
): Promise<void> {
  const { mapping } = run;
  // The pipeline also for one message: imapflow copies a message into its command, and a large one twice is too much.
  const pipeline = outgoing.length > 0 ? await pair.destination.pipeline() : undefined;
  const leftOver = pipeline ? await appendPipelined(ctx, run, pipeline, outgoing) : [];
  // What was in flight when the signal came is answered and journalled; nothing more is sent.
  throwIfInterrupted(ctx.signal);
  for (const { item, unsure } of pipeline
    ? leftOver
    : outgoing.map((item) => ({ item, unsure: false }))) {
    throwIfInterrupted(ctx.signal);
    // An APPEND cut short is looked for among the folder's newest messages: it must be selected.
    if (pair.destination.selected?.path !== mapping.destination) {
      await pair.destination.open(mapping.destination);
    }
    const outcome = await appendOnce(pair.destination, mapping.destination, {
      raw: item.raw,
      identity: item.identity,
      flags: item.flags,
      internalDate: item.message.internalDate,
      since: unsure ? item.since : run.destNext,
      unsure,
    });
    await settle(ctx, run, item, outcome);
  }
}

/**
 * Sends `outgoing` on the pipeline, a window at a time, and records each
 * message the server took in the order the answers come. Where the server
 * offers MULTIAPPEND, neighbouring messages go in one APPEND (stored all or
 * none). Returns those to send again through the session: refused ones (the
 * session gets the server's words, or waits out throttling), and those in
 * flight when the connection failed (`unsure`: the server may have stored them).
 */
async function appendPipelined(
  ctx: CopyContext,
  run: FolderRun,
  pipeline: AppendPipeline,
  outgoing: Outgoing[],
): Promise<{ item: Outgoing; unsure: boolean }[]> {
  const leftOver: { item: Outgoing; unsure: boolean }[] = [];
  const journal: Promise<void>[] = [];
  const inFlight: Promise<void>[] = [];
  let messages = 0;
  let bytes = 0;
  // Not awaited: the APPENDs follow at once, and go in whether or not it is selected.
  pipeline.select(run.mapping.destination).catch(() => {});

  for (const group of appendGroups(outgoing, pipeline.multiAppend)) {
    if (!pipeline.usable || ctx.signal?.aborted) {
      for (const item of group) leftOver.push({ item, unsure: false });
      continue;
    }
    const size = group.reduce((sum, item) => sum + item.raw.length, 0);
    messages += group.length;
    bytes += size;
    const answered = pipeline
      .appendMany(
        run.mapping.destination,
        group.map((item) => ({
          raw: item.raw,
          flags: item.flags,
          internalDate: item.message.internalDate,
        })),
      )
      .then(
        (answer) => {
          if (!answer.ok) {
            // None of the group was stored: each goes again on its own, to get its own answer.
            for (const item of group) leftOver.push({ item, unsure: false });
            return;
          }
          // UIDs that do not match the group one for one name nothing: the identity check covers it.
          const uids =
            answer.uids?.length === group.length
              ? answer.uids
              : group.length === 1 && answer.uid !== undefined
                ? [answer.uid]
                : undefined;
          group.forEach((item, index) => {
            const uid = uids?.[index];
            const outcome = {
              present: false,
              ...(uid !== undefined ? { uid } : {}),
              ...(uid !== undefined && answer.uidValidity !== undefined
                ? { uidValidity: answer.uidValidity }
                : {}),
            };
            // Not chained: the state writes lines recorded meanwhile in one go.
            const settled = settle(ctx, run, item, outcome);
            // Awaited below with the rest; until then a failure must not count as unhandled.
            settled.catch(() => {});
            journal.push(settled);
          });
        },
        () => {
          for (const item of group) leftOver.push({ item, unsure: true });
        },
      )
      .finally(() => {
        messages -= group.length;
        bytes -= size;
      });
    inFlight.push(answered);
    while (messages >= PIPELINE_MESSAGES || bytes > PIPELINE_BYTES) {
      await inFlight.shift();
    }
  }
  await Promise.all(inFlight);
  await Promise.all(journal);
  return leftOver.sort((a, b) => a.item.message.uid - b.item.message.uid);
}

/** Neighbouring messages, one APPEND each: several per APPEND with MULTIAPPEND, bounded in count and bytes. */
function* appendGroups(outgoing: Outgoing[], multiAppend: boolean): Generator<Outgoing[]> {
  let group: Outgoing[] = [];
  let bytes = 0;
  const limit = multiAppend ? MULTIAPPEND_MESSAGES : 1;
  for (const item of outgoing) {
    if (
      group.length > 0 &&
      (group.length >= limit || bytes + item.raw.length > MULTIAPPEND_BYTES)
    ) {
      yield group;
      group = [];
      bytes = 0;
    }
    group.push(item);
    bytes += item.raw.length;
  }
  if (group.length > 0) yield group;
}

/** Records what became of one APPEND and tells the progress listener. */
async function settle(
  ctx: CopyContext,
  run: FolderRun,
  item: Outgoing,
  outcome: AppendOutcome,
): Promise<void> {
  const { mapping, uidValidity, destValidity, result } = run;
  const { message, raw } = item;
  if ('refused' in outcome) {
    result.skipped.push({
      uid: message.uid,
      size: raw.length,
      reason: displayText(outcome.refused),
    });
    // The logger escapes its fields: outside text goes to it as received.
    ctx.logger.log('warn', 'the destination refused a message', {
      folder: mapping.source,
      uid: message.uid,
      size: raw.length,
      reply: outcome.refused,
    });
    ctx.onProgress?.({ type: 'message', source: mapping.source, outcome: 'skipped', bytes: 0 });
    return;
  }
  // Only APPENDs already answered raise it: one still in flight may yet get a lower UID.
  if (outcome.uid !== undefined) run.destNext = Math.max(run.destNext, outcome.uid + 1);
  await ctx.state.record({
    f: mapping.source,
    v: uidValidity,
    u: message.uid,
    df: mapping.destination,
    ...(outcome.uid !== undefined
      ? { dv: outcome.uidValidity ?? destValidity, du: outcome.uid }
      : {}),
    s: outcome.present ? 'present' : 'copied',
  });
  if (outcome.present) result.alreadyPresent++;
  else {
    result.copied++;
    result.bytes += raw.length;
  }
  ctx.onProgress?.({
    type: 'message',
    source: mapping.source,
    outcome: outcome.present ? 'present' : 'copied',
    bytes: outcome.present ? 0 : raw.length,
  });
}

async function sourceMessages(source: ImapSession, uids: number[]): Promise<SourceMessage[]> {
  const fetched = await source.run((c) =>
    c.fetchAll(
      uidSet(uids),
      { uid: true, flags: true, internalDate: true, size: true },
      { uid: true },
    ),
  );
  const wanted = new Set(uids);
  return fetched
    .filter((m) => wanted.has(m.uid))
    .map((m) => ({
      uid: m.uid,
      size: m.size ?? 0,
      flags: m.flags ?? new Set<string>(),
      internalDate:
        m.internalDate instanceof Date
          ? m.internalDate
          : m.internalDate
            ? new Date(m.internalDate)
            : undefined,
    }))
    .sort((a, b) => a.uid - b.uid);
}

function* batches(messages: SourceMessage[]): Generator<SourceMessage[]> {
  let batch: SourceMessage[] = [];
  let bytes = 0;
  for (const m of messages) {
    if (batch.length > 0 && (batch.length >= BATCH_MESSAGES || bytes + m.size > BATCH_BYTES)) {
      yield batch;
      batch = [];
      bytes = 0;
    }
    batch.push(m);
    bytes += m.size;
  }
  if (batch.length > 0) yield batch;
}

/** Message bytes by UID (BODY.PEEK[]: the source is never marked \Seen); a dry run needs only the identity headers. */
async function fetchBodies(
  source: ImapSession,
  batch: SourceMessage[],
  headersOnly: boolean,
): Promise<Map<number, Buffer>> {
  const bodies = new Map<number, Buffer>();
  const large = headersOnly ? [] : batch.filter((m) => m.size > LARGE_MESSAGE_BYTES);
  const whole = batch.filter((m) => !large.includes(m));
  const query = headersOnly
    ? { uid: true, headers: [...IDENTITY_HEADERS] }
    : { uid: true, source: true };
  const fetched: FetchMessageObject[] =
    whole.length === 0
      ? []
      : await source.run((c) => c.fetchAll(uidSet(whole.map((m) => m.uid)), query, { uid: true }));
  for (const m of fetched) {
    const bytes = headersOnly ? m.headers : m.source;
    if (bytes) bodies.set(m.uid, bytes);
  }
  for (const m of large) {
    const bytes = await fetchInPieces(source, m);
    if (bytes) bodies.set(m.uid, bytes);
  }
  return bodies;
}

/**
 * A large message in partial FETCHes, copied into one buffer of its
 * announced size: imapflow gathers a whole literal and then joins it, two
 * copies at once, which for a 50 MB message is more than the memory bound.
 * Undefined when the server no longer has it.
 */
async function fetchInPieces(
  source: ImapSession,
  message: SourceMessage,
): Promise<Buffer | undefined> {
  let body = Buffer.allocUnsafe(message.size);
  let length = 0;
  for (;;) {
    const offset = length;
    const piece = await source.run(async (c) => {
      const m = await c.fetchOne(
        String(message.uid),
        { uid: true, source: { start: offset, maxLength: PIECE_BYTES } },
        { uid: true },
      );
      return m ? (m.source ?? Buffer.alloc(0)) : undefined;
    });
    if (piece === undefined) return undefined;
    // The server's RFC822.SIZE was short (it should not be): grow, once per such piece.
    if (length + piece.length > body.length) {
      const grown = Buffer.allocUnsafe(length + piece.length);
      body.copy(grown, 0, 0, length);
      body = grown;
    }
    piece.copy(body, length);
    length += piece.length;
    // A short piece is the end; a server that ignores the range sends it all at once.
    if (piece.length < PIECE_BYTES || (offset === 0 && piece.length > PIECE_BYTES)) {
      return body.subarray(0, length);
    }
  }
}

/**
 * Whether the state can vouch for the destination folder. It cannot when it
 * put nothing there yet while the folder holds messages (a new machine, a
 * lost state folder), when the folder's UIDNEXT moved past the last message
 * it put there (a crash between APPEND and the journal, or another writer),
 * or when the source folder was recreated (a new UIDVALIDITY).
 */
async function needsIdentityCheck(
  ctx: CopyContext,
  mapping: FolderMapping,
  uidValidity: string,
  target: MailboxObject,
): Promise<boolean> {
  if (target.exists === 0) return false;
  const known = ctx.state.destinationUidNext(mapping.destination, String(target.uidValidity));
  if (known === undefined || known < target.uidNext) return true;
  return (
    ctx.state.knowsFolder(mapping.source) &&
    ctx.state.copied(mapping.source, uidValidity).size === 0
  );
}

/** One FETCH of the identity headers of the whole folder, less what the state accounts for. */
async function destinationIdentities(
  ctx: CopyContext,
  destination: ImapSession,
  mapping: FolderMapping,
  sourceValidity: string,
  destValidity: string,
): Promise<IdentityCounts> {
  const folder = mapping.destination;
  const accounted = ctx.state.destinationUids(folder, destValidity, {
    source: mapping.source,
    uidValidity: sourceValidity,
  });
  const counts = new IdentityCounts();
  const fetched = await destination.run((c) =>
    c.fetchAll('1:*', { uid: true, headers: [...IDENTITY_HEADERS] }, { uid: true }),
  );
  for (const m of fetched) {
    if (m.headers && !accounted.has(m.uid)) counts.add(messageIdentity(m.headers), m.uid);
  }
  ctx.logger.log('debug', 'read destination identities', {
    folder,
    messages: fetched.length,
  });
  return counts;
}

/** `refused`: the server's words, as received. */
type AppendOutcome = { refused: string } | { present: boolean; uid?: number; uidValidity?: string };

/**
 * APPENDs one message. When the connection drops during the APPEND, the
 * server may have stored it anyway: before trying again, the messages that
 * arrived since look for its identity.
 */
async function appendOnce(
  destination: ImapSession,
  folder: string,
  message: {
    raw: Buffer;
    identity: string;
    flags: string[];
    internalDate: Date | undefined;
    since: number;
    /** Sent before on a connection that failed: look for it first. */
    unsure?: boolean;
  },
): Promise<AppendOutcome> {
  let attempts = message.unsure ? 1 : 0;
  return destination.run(async (client: ImapFlow): Promise<AppendOutcome> => {
    attempts++;
    if (attempts > 1) {
      const arrived = await client.fetchAll(
        `${message.since}:*`,
        { uid: true, headers: [...IDENTITY_HEADERS] },
        { uid: true },
      );
      const match = arrived.find(
        (m) =>
          m.uid >= message.since && m.headers && messageIdentity(m.headers) === message.identity,
      );
      if (match) return { present: true, uid: match.uid };
    }
    try {
      const appended = await client.append(
        folder,
        message.raw,
        message.flags,
        message.internalDate,
      );
      if (!appended) throw new Error('APPEND was not sent: the connection is not logged in');
      return {
        present: false,
        ...(appended.uid !== undefined ? { uid: appended.uid } : {}),
        ...(appended.uidValidity !== undefined
          ? { uidValidity: String(appended.uidValidity) }
          : {}),
      };
    } catch (error) {
      const err = error as Error & ImapFlowErrorFields;
      // A refusal is the server's answer about this message; the connection is fine and the run goes on.
      if (client.usable && (err.responseStatus === 'NO' || err.responseStatus === 'BAD')) {
        return { refused: `${err.responseStatus} ${err.responseText ?? err.message}` };
      }
      if (err.serverResponseCode === 'APPENDLIMIT') return { refused: err.message };
      throw error;
    }
  });
}

/** Creates the folder, subscribed as the source's is; the server's words when it refuses. */
async function createFolder(
  destination: ImapSession,
  mapping: FolderMapping,
): Promise<string | undefined> {
  return destination.run(async (client) => {
    try {
      // imapflow subscribes every folder it creates: the source's choice wins.
      await client.mailboxCreate(mapping.destination);
      if (!mapping.subscribed) await client.mailboxUnsubscribe(mapping.destination);
      return undefined;
    } catch (error) {
      const err = error as Error & ImapFlowErrorFields;
      if (client.usable && (err.responseStatus === 'NO' || err.responseStatus === 'BAD')) {
        return displayText(`${err.responseStatus} ${err.responseText ?? err.message}`);
      }
      throw error;
    }
  });
}

/** Stops between messages: everything before is in the journal, so a rerun continues here. */
export function throwIfInterrupted(signal: AbortSignal | undefined): void {
  if (!signal?.aborted) return;
  throw new MailbridgeError({
    code: 'MIGRATE_INTERRUPTED',
    message: 'The migration was stopped before it finished',
    remedy: 'Run it again: it continues where it stopped, copying nothing twice.',
    cause: signal.reason,
  });
}
