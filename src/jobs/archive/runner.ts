/**
 * The archive job's runner: the only part that talks to the server and the
 * disk. Decisions come from plan.ts and filters.ts; files from store.ts; the
 * record of what is done from manifest.ts.
 *
 * Per folder: SELECT (read-only, so nothing is marked \Seen), compare
 * UIDVALIDITY with the manifest, `UID SEARCH UID n:*` for UIDs above the
 * checkpoint (dropping the one `n:*` returns when nothing is new), FETCH
 * flags, INTERNALDATE and RFC822.SIZE, then the messages: small ones several
 * per FETCH, large ones in partial chunks (`BODY.PEEK[]<offset.length>`)
 * streamed into a temp file, each chunk its own command, so a reconnect (a
 * token expiry, a dropped connection, throttling) resumes the message where
 * it stopped instead of starting it again.
 *
 * Every command goes through the long-session helper, which reconnects with a
 * fresh token, waits out throttling and re-selects the folder, then runs the
 * operation again. Operations are written so that running them again
 * continues the work: they skip what was stored, and they first check that
 * the re-selected folder still has the same UIDVALIDITY.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImapFlow } from 'imapflow';
import { createTokenProvider, type TokenProvider } from '../../auth/token-provider.js';
import {
  createImapSession,
  type ImapSession,
  type ImapSessionOptions,
  type ImapSessionStats,
} from '../../clients/imap-session.js';
import type { MailbridgeConfig } from '../../config/types.js';
import {
  AuthenticationError,
  ConfigurationError,
  MailbridgeError,
  NetworkError,
  ProtocolError,
} from '../../errors.js';
import { type Logger, silentLogger } from '../../log/logger.js';
import { closestName } from '../../util/did-you-mean.js';
import { displayText } from '../../util/display-text.js';
import { ArchiveDiskError, diskError, diskErrorCode } from './disk-errors.js';
import { folderSelected, isSelectable, unmatchedPatterns } from './filters.js';
import { ManifestIndex, type ManifestRecord, ManifestWriter } from './manifest.js';
import { createMetadataParser, type MessageMetadata, parseMessageMetadata } from './metadata.js';
import { folderDirName, mailboxDirName, messagePath } from './paths.js';
import {
  chunk,
  DEFAULT_FETCH_LIMITS,
  DEFAULT_MANIFEST_SYNC,
  type FetchLimits,
  type FolderPlan,
  type FolderStatus,
  groupForFetch,
  type ManifestSyncPolicy,
  newUids,
  planFolder,
  searchCriteria,
  shouldWriteManifest,
  toUidSet,
} from './plan.js';
import { ArchiveStore, hashFile, type OrphanFile, type PartialMessage } from './store.js';
import { type DamagedRecord, verifyArchive } from './verify.js';

export interface ArchiveMailboxOptions {
  /** Mailbox to archive (a user or shared mailbox address). */
  mailbox: string;
  /** Archive root; the mailbox gets a directory of its own inside. */
  outDir: string;
  /** Folder paths to take, `*` as wildcard; all selectable folders when empty. */
  folders?: readonly string[];
  /** Folder paths to leave out, `*` as wildcard. */
  exclude?: readonly string[];
  /** Only messages with an INTERNALDATE on or after this day (IMAP `SEARCH SINCE`). */
  since?: Date;
  /**
   * Accept a selection of no folder at all. Otherwise `folders` and `exclude`
   * that leave nothing to archive fail the mailbox (ARCHIVE_NO_FOLDER_MATCHED,
   * exit 2): a scheduled run would back up nothing for ever without anyone
   * noticing. @default false
   */
  allowEmpty?: boolean;
  /** Share one provider per app; a new one is made from `config` when absent. */
  tokenProvider?: TokenProvider;
  logger?: Logger;
  /** Called synchronously; keep it cheap (the CLI only updates counters). */
  onProgress?: (event: ArchiveProgressEvent) => void;
  /** Stops the run between two messages; what is stored stays stored. */
  signal?: AbortSignal;
  /** Connections to one mailbox open at once, across the process. @default 8 */
  maxConnections?: number;
  /** Passed to the long-session helper. */
  session?: Pick<
    ImapSessionOptions,
    'maxAttempts' | 'baseDelayMs' | 'maxThrottleWaitMs' | 'reconnectMarginMs'
  >;
  /** How messages are grouped into FETCH commands. */
  fetch?: Partial<FetchLimits> & {
    /**
     * Bytes per partial FETCH of a large message. Larger pieces mean fewer
     * round trips and more memory. @default 256 KiB
     */
    chunkBytes?: number;
  };
  /** When manifest lines are written (each write is flushed to disk). */
  manifestSync?: Partial<ManifestSyncPolicy>;
  /**
   * Before archiving, fetch again the files `verify` finds missing or
   * altered, when the server still has them (see `unrepairable` for those it
   * has not). Reads every file of the mailbox directory. @default false
   */
  repair?: boolean;
}

export interface ArchiveCounts {
  /** Messages archived in this run so far. */
  messages: number;
  bytes: number;
  /** Messages this run expects to archive (an estimate until every folder is searched). */
  estimatedMessages: number;
}

export type ArchiveProgressEvent =
  | {
      type: 'mailbox-start';
      mailbox: string;
      directory: string;
      folders: number;
      counts: ArchiveCounts;
    }
  | {
      type: 'folder-start';
      mailbox: string;
      folder: string;
      uidValidity: number;
      reason: Extract<FolderPlan, { action: 'fetch' }>['reason'];
      toFetch: number;
      counts: ArchiveCounts;
    }
  | {
      type: 'message';
      mailbox: string;
      folder: string;
      uid: number;
      size: number;
      counts: ArchiveCounts;
    }
  | { type: 'folder-done'; mailbox: string; folder: ArchiveFolderResult; counts: ArchiveCounts }
  | { type: 'mailbox-done'; mailbox: string; result: ArchiveMailboxResult; counts: ArchiveCounts };

export interface ArchiveFolderResult {
  folder: string;
  /** Directory name inside the mailbox directory; absent when nothing was ever written. */
  directory?: string;
  uidValidity?: number;
  status: 'archived' | 'up-to-date' | 'empty' | 'failed' | 'interrupted';
  reason?: Extract<FolderPlan, { action: 'fetch' }>['reason'];
  messagesNew: number;
  bytesNew: number;
  /** Messages deleted on the server between the search and their fetch. */
  vanished: number;
  parseErrors: number;
  /** Files found in place without a manifest line (after a crash) and recorded. */
  recovered: number;
  error?: { code: string; message: string };
}

/** A missing or altered file that `repair` could not fetch again. */
export interface UnrepairableFile {
  /** Relative to the mailbox directory, as in the manifest. */
  path: string;
  folder: string;
  reason: string;
}

export interface ArchiveMailboxResult {
  mailbox: string;
  /** The mailbox's archive directory. */
  directory: string;
  /** Every selected folder archived (or already up to date). */
  ok: boolean;
  /** Stopped by `signal`; run again to continue. */
  interrupted: boolean;
  folders: ArchiveFolderResult[];
  messagesNew: number;
  bytesNew: number;
  /** Messages in the archive (all folders, all UIDVALIDITY values) after the run. */
  messagesTotal: number;
  bytesTotal: number;
  parseErrors: number;
  recovered: number;
  vanished: number;
  /** `folders` patterns that matched no folder. */
  unmatchedPatterns: string[];
  /** Damaged files fetched again (`repair`). */
  repaired: number;
  /** Damaged files the server could not give again (`repair`); the mailbox is then not `ok`. */
  unrepairable: UnrepairableFile[];
  durationMs: number;
  session: ImapSessionStats;
}

/** The folder's UIDVALIDITY changed under a running operation (deleted and re-created). */
class FolderChangedError extends MailbridgeError {
  override name = 'FolderChangedError';
}

class InterruptedError extends MailbridgeError {
  override name = 'InterruptedError';
}

interface MessageInfo {
  size: number;
  flags: string[];
  internalDate: string | null;
}

/** A folder as selected: its path and the UIDVALIDITY every operation must still find. */
interface FolderRef {
  path: string;
  uidValidity: number;
}

interface FolderContext extends FolderRef {
  result: ArchiveFolderResult;
}

interface Prepared {
  partial: PartialMessage;
  metadata: MessageMetadata;
}

interface StoreTask {
  uid: number;
  bytes: number;
  task: Promise<Prepared>;
}

/**
 * Measured with the 52 MiB message of test/jobs/archive/crash.test.ts: peak
 * RSS 125-134 MiB with 256 KiB pieces, 131-143 MiB with 512 KiB (200 round
 * trips for 50 MB instead of 100).
 */
const DEFAULT_CHUNK_BYTES = 256 * 1024;
/**
 * Messages given whole that are written and flushed at once, and the bytes
 * they may hold in memory meanwhile (each is below the `streamAboveBytes`
 * fetch limit). Measured with bench/archive.ts's messages: with more flushes
 * in flight the filesystem merges them into fewer journal commits, so the
 * disk alone went from 2,700-3,300 files/s with 4 at once to 4,600-5,600
 * with 16-32, using less CPU; the archive, bound by CPU elsewhere, from
 * 970 to 1,040 msg/s with 32.
 */
const STORE_CONCURRENCY = 32;
const STORE_MAX_BYTES = 32 * 1024 * 1024;
const METADATA_BATCH = 500;
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
const CONTROL = /[\u0000-\u001f\u007f]/;
const MAX_FOLDER_ATTEMPTS = 3;

/**
 * Archives one mailbox into `outDir`, continuing from what an earlier run
 * archived. Safe to stop at any moment (a crash, `kill -9`, `signal`): the
 * next run completes the archive without gaps, duplicates or partial files.
 */
export async function archiveMailbox(
  config: MailbridgeConfig,
  options: ArchiveMailboxOptions,
): Promise<ArchiveMailboxResult> {
  const directory = join(options.outDir, mailboxDirName(options.mailbox));
  const store = await ArchiveStore.open(directory);
  const index = new ManifestIndex();
  let writer: ManifestWriter | undefined;
  let job: MailboxJob | undefined;
  try {
    const opened = await ManifestWriter.open(store.manifestFile, index);
    writer = opened.writer;
    job = new MailboxJob(config, options, store, index, writer);
    if (opened.read.tornBytes > 0) {
      job.logger.log('warn', 'archive manifest ended in a line cut short by a crash; removed it', {
        mailbox: options.mailbox,
        bytes: opened.read.tornBytes,
      });
    }
    const { problems } = opened.read;
    if (problems.length > 0) {
      // Not checkpoints: the folders they name are archived from the sound lines' UIDs.
      job.logger.log('warn', 'archive manifest has lines `archive verify` rejects; ignored', {
        mailbox: options.mailbox,
        lines: problems.length,
        first: problems
          .slice(0, 5)
          .map((p) => `${p.line} (${p.problem})`)
          .join(', '),
      });
    }
    return await job.run();
  } catch (error) {
    if (job && typeof error === 'object' && error !== null) {
      archivedBeforeFailure.set(error, { ...job.counts });
    }
    throw error;
  } finally {
    await writer?.close();
    await store.close();
  }
}

/** What a failed mailbox run had archived, by the error it failed with, for its summary. */
const archivedBeforeFailure = new WeakMap<object, ArchiveCounts>();

class MailboxJob {
  readonly logger: Logger;
  private readonly session: ImapSession;
  private readonly limits: FetchLimits;
  private readonly chunkBytes: number;
  private readonly syncPolicy: ManifestSyncPolicy;
  private readonly started = Date.now();
  private pending: ManifestRecord[] = [];
  private oldestPendingAt: number | undefined;
  readonly counts: ArchiveCounts = { messages: 0, bytes: 0, estimatedMessages: 0 };
  private readonly folderResults: ArchiveFolderResult[] = [];
  private readonly folderEstimates = new Map<string, number>();
  /** Server paths of the folders archived under another name (see underArchiveName). */
  private readonly serverPaths = new Map<string, string>();
  private repaired = 0;
  private readonly unrepairable: UnrepairableFile[] = [];

  constructor(
    config: MailbridgeConfig,
    private readonly options: ArchiveMailboxOptions,
    private readonly store: ArchiveStore,
    private readonly index: ManifestIndex,
    private readonly writer: ManifestWriter,
  ) {
    this.logger = options.logger ?? silentLogger;
    this.session = createImapSession(config, {
      mailbox: options.mailbox,
      tokenProvider: options.tokenProvider ?? createTokenProvider(config, { logger: this.logger }),
      logger: this.logger,
      ...(options.maxConnections !== undefined ? { maxConnections: options.maxConnections } : {}),
      ...options.session,
    });
    this.limits = { ...DEFAULT_FETCH_LIMITS, ...options.fetch };
    this.chunkBytes = options.fetch?.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.syncPolicy = { ...DEFAULT_MANIFEST_SYNC, ...options.manifestSync };
  }

  async run(): Promise<ArchiveMailboxResult> {
    const mailbox = this.options.mailbox;
    let interrupted = false;
    let unmatched: string[] = [];
    try {
      const listed = await this.session.run((c) =>
        c.list({ statusQuery: { messages: true, uidNext: true, uidValidity: true } }),
      );
      const selectable = listed
        .filter((f) => isSelectable(f.flags))
        .map((f) => this.underArchiveName(f));
      const filter = { include: this.options.folders ?? [], exclude: this.options.exclude ?? [] };
      const folders = selectable.filter((f) => folderSelected(f.path, filter));
      unmatched = unmatchedPatterns(
        selectable.map((f) => f.path),
        filter.include,
      );
      for (const pattern of unmatched) {
        this.logger.log('warn', 'archive: no folder matches', {
          mailbox,
          pattern: displayText(pattern),
        });
      }
      if (folders.length === 0 && !this.options.allowEmpty) {
        throw noFolderMatched(
          mailbox,
          filter,
          selectable.map((f) => f.path),
        );
      }

      const orphans = groupBy(await this.store.findOrphans(this.index), (o) => o.folder);
      // Orphans of folders this run does not visit are recorded now, without server data.
      const visiting = new Set(folders.map((f) => f.path));
      for (const [folder, files] of orphans) {
        if (!visiting.has(folder)) await this.recoverOrphans(files, undefined, undefined);
      }
      await this.flush();
      if (this.options.repair) await this.repair(new Set(selectable.map((f) => f.path)));

      for (const f of folders) await this.confirmCheckpoints(f.path);
      const statuses = new Map<string, FolderStatus | undefined>();
      for (const f of folders) {
        const s = f.status;
        const status =
          s?.uidValidity !== undefined
            ? { uidValidity: Number(s.uidValidity), uidNext: s.uidNext, messages: s.messages }
            : undefined;
        statuses.set(f.path, status);
        if (status) {
          const plan = planFolder(this.index.ranges(f.path), status);
          const estimate = plan.action === 'fetch' ? plan.estimate : 0;
          this.folderEstimates.set(f.path, estimate);
          this.counts.estimatedMessages += estimate;
        }
      }
      this.emit({
        type: 'mailbox-start',
        mailbox,
        directory: this.store.dir,
        folders: folders.length,
        counts: { ...this.counts },
      });

      for (const folder of folders) {
        this.checkAborted();
        const result: ArchiveFolderResult = {
          folder: folder.path,
          status: 'up-to-date',
          messagesNew: 0,
          bytesNew: 0,
          vanished: 0,
          parseErrors: 0,
          recovered: 0,
        };
        // Listed before it runs, so an interrupted folder's counts are in the result too.
        this.folderResults.push(result);
        await this.archiveFolder(
          folder.path,
          statuses.get(folder.path),
          orphans.get(folder.path) ?? [],
          result,
        );
        this.emit({ type: 'folder-done', mailbox, folder: result, counts: { ...this.counts } });
      }
      await this.flush();
    } catch (error) {
      // Whatever happened, what is on disk gets its manifest lines now if it can.
      await this.flush().catch((flushError: unknown) => {
        this.logger.log('warn', 'archive: could not write the last manifest lines', {
          mailbox,
          error: (flushError as Error).message,
        });
      });
      if (!(error instanceof InterruptedError)) throw error;
      interrupted = true;
    } finally {
      await this.session.close();
    }
    const result = this.result(interrupted, unmatched);
    this.emit({ type: 'mailbox-done', mailbox, result, counts: { ...this.counts } });
    return result;
  }

  private async archiveFolder(
    path: string,
    listedStatus: FolderStatus | undefined,
    orphans: OrphanFile[],
    result: ArchiveFolderResult,
  ): Promise<void> {
    // The cheap way first: STATUS from the listing says whether there is anything to do.
    if (listedStatus && orphans.length === 0) {
      const plan = planFolder(this.index.ranges(path), listedStatus);
      if (plan.action === 'skip') {
        result.status = plan.reason;
        result.uidValidity = plan.uidValidity;
        return;
      }
    }
    const pendingOrphans = { files: orphans };
    for (let attempt = 1; ; attempt++) {
      try {
        await this.archiveSelectedFolder(path, result, pendingOrphans);
        return;
      } catch (error) {
        await this.flush();
        if (error instanceof InterruptedError) result.status = 'interrupted';
        if (error instanceof FolderChangedError && attempt < MAX_FOLDER_ATTEMPTS) {
          this.logger.log('info', 'archive: folder UIDVALIDITY changed while archiving; again', {
            mailbox: this.options.mailbox,
            folder: path,
          });
          continue;
        }
        if (
          error instanceof InterruptedError ||
          error instanceof AuthenticationError ||
          error instanceof NetworkError ||
          error instanceof ArchiveDiskError ||
          !(error instanceof MailbridgeError)
        ) {
          throw error;
        }
        // The server refused something about this folder only (e.g. it was deleted meanwhile).
        this.logger.log('warn', 'archive: folder failed', {
          mailbox: this.options.mailbox,
          folder: displayText(path),
          code: error.code,
          error: displayText(error.message),
        });
        result.status = 'failed';
        result.error = { code: error.code, message: error.message };
        return;
      }
    }
  }

  private async archiveSelectedFolder(
    path: string,
    result: ArchiveFolderResult,
    pendingOrphans: { files: OrphanFile[] },
  ): Promise<void> {
    const selected = await this.session.open(this.serverPath(path), { readOnly: true });
    const status: FolderStatus = {
      uidValidity: Number(selected.uidValidity),
      uidNext: selected.uidNext,
      messages: selected.exists,
    };
    result.uidValidity = status.uidValidity;
    const folder: FolderContext = { path, uidValidity: status.uidValidity, result };

    const orphans = pendingOrphans.files;
    if (orphans.length > 0) {
      const current = orphans.filter((o) => o.uidValidity === status.uidValidity);
      const info = current.length
        ? await this.runInFolder(folder, (c) =>
            this.fetchInfo(
              c,
              current.map((o) => o.uid),
            ),
          )
        : new Map<number, MessageInfo>();
      await this.recoverOrphans(orphans, info, status.uidValidity);
      pendingOrphans.files = [];
      result.recovered += orphans.length;
      await this.flush();
    }

    const plan = planFolder(this.index.ranges(path), status);
    if (plan.action === 'skip') {
      if (result.messagesNew === 0) result.status = plan.reason;
      return;
    }
    const found = await this.runInFolder(folder, async (c) => {
      const answer = await c.search(searchCriteria(plan.afterUid, this.options.since), {
        uid: true,
      });
      if (Array.isArray(answer)) return answer;
      // imapflow answers `false` both for a refusal and for a connection that went away
      // meanwhile. Neither means "nothing new".
      if (!c.usable) throw Object.assign(new Error('connection lost'), { code: 'NoConnection' });
      throw new ProtocolError({
        code: 'IMAP_SEARCH_REFUSED',
        message: `The server refused UID SEARCH in ${path}`,
        remedy: 'Run the archive again later; the folder is searched again.',
      });
    });
    const uids = newUids(found, plan.afterUid);
    // The search gives the real count in place of the estimate from STATUS.
    const estimated = this.folderEstimates.get(path) ?? 0;
    this.folderEstimates.set(path, uids.length);
    this.counts.estimatedMessages = Math.max(
      this.counts.messages + uids.length,
      this.counts.estimatedMessages - estimated + uids.length,
    );
    if (uids.length === 0) {
      if (result.messagesNew === 0) result.status = 'up-to-date';
      return;
    }
    result.status = 'archived';
    result.reason = plan.reason;
    result.directory = await this.store.folderDir(path);
    this.emit({
      type: 'folder-start',
      mailbox: this.options.mailbox,
      folder: path,
      uidValidity: status.uidValidity,
      reason: plan.reason,
      toFetch: uids.length,
      counts: { ...this.counts },
    });

    for (const batch of chunk(uids, METADATA_BATCH)) {
      this.checkAborted();
      const infos = await this.runInFolder(folder, (c) => this.fetchInfo(c, batch));
      // A UID the answer left out is fetched on its own, in its place in UID order: stored if
      // the server still has it, counted as deleted if not. Skipping it would lose it for
      // good, as the checkpoint moves past it.
      const sized = batch.map((uid) => ({
        uid,
        size: infos.get(uid)?.size ?? Number.POSITIVE_INFINITY,
      }));
      for (const group of groupForFetch(sized, this.limits)) {
        if (group.kind === 'whole') await this.fetchWhole(folder, group.uids, infos);
        else await this.fetchStreamed(folder, group.uid, infos.get(group.uid));
      }
    }
    await this.flush();
  }

  /**
   * Takes the folder's checkpoints only from lines whose file is there (see
   * ManifestIndex.confirmCheckpoints), once per run, before anything is planned.
   */
  private async confirmCheckpoints(folder: string): Promise<void> {
    const folderDir = folderDirName(folder);
    const missing = await this.index.confirmCheckpoints(folder, (uidValidity, uid) =>
      stat(join(this.store.dir, ...messagePath(folderDir, uidValidity, uid).split('/'))).then(
        (s) => s.isFile(),
        (error: NodeJS.ErrnoException) => {
          if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return false;
          throw error;
        },
      ),
    );
    for (const [uidValidity, uids] of missing) {
      this.logger.log('warn', 'archive: manifest lines name no file; the checkpoint ignores them', {
        mailbox: this.options.mailbox,
        folder: displayText(folder),
        uidValidity,
        uids: uids.slice(0, 5).join(', '),
        lines: uids.length,
        remedy:
          'Check the archive with `mailbridge archive verify`; --repair fetches again what the server still has.',
      });
    }
  }

  /**
   * A folder whose decoded name holds control characters (Dovecot lists
   * `del&AH8-x`, modified UTF-7 for `del`, DEL, `x`) is archived under its
   * name as the server lists it: such characters do not belong in file
   * names, manifests or terminals. Folders are selected by their server path.
   */
  private underArchiveName<F extends { path: string; pathAsListed?: string }>(folder: F): F {
    const listedAs = folder.pathAsListed;
    if (!CONTROL.test(folder.path) || !listedAs || listedAs === folder.path) return folder;
    this.serverPaths.set(listedAs, folder.path);
    this.logger.log(
      'warn',
      'archive: folder name holds control characters; archived under its listed name',
      {
        mailbox: this.options.mailbox,
        folder: displayText(folder.path),
        archivedAs: displayText(listedAs),
      },
    );
    return { ...folder, path: listedAs };
  }

  private serverPath(archiveName: string): string {
    return this.serverPaths.get(archiveName) ?? archiveName;
  }

  /** Runs an operation with the folder selected, refusing to go on under another UIDVALIDITY. */
  private runInFolder<T>(folder: FolderRef, operation: (c: ImapFlow) => Promise<T>): Promise<T> {
    return this.session.run(async (client) => {
      const selected = this.session.selected;
      if (
        !selected ||
        selected.path !== this.serverPath(folder.path) ||
        Number(selected.uidValidity) !== folder.uidValidity
      ) {
        throw new FolderChangedError({
          code: 'ARCHIVE_UIDVALIDITY_CHANGED',
          message: `The UIDVALIDITY of ${folder.path} changed from ${folder.uidValidity} to ${String(selected?.uidValidity)}`,
          remedy: 'The folder is archived again under its new UIDVALIDITY.',
        });
      }
      return operation(client);
    });
  }

  private async fetchInfo(c: ImapFlow, uids: number[]): Promise<Map<number, MessageInfo>> {
    const wanted = new Set(uids);
    const infos = new Map<number, MessageInfo>();
    if (uids.length === 0) return infos;
    for await (const msg of c.fetch(
      toUidSet(uids),
      { uid: true, flags: true, internalDate: true, size: true },
      { uid: true },
    )) {
      if (!wanted.has(msg.uid)) continue;
      infos.set(msg.uid, {
        size: msg.size ?? 0,
        // \Recent says which session saw the message first (RFC 3501), nothing about the message.
        flags: [...(msg.flags ?? [])].filter((f) => f.toLowerCase() !== '\\recent'),
        internalDate: isoDate(msg.internalDate),
      });
    }
    return infos;
  }

  /**
   * Small messages, several per FETCH, recorded strictly in UID order. The
   * checkpoint is the highest UID in the manifest, so a message must never be
   * recorded after a higher one unless the lower one is recorded or gone.
   * When the answer skips a UID, the FETCH is left there and that message is
   * fetched on its own, which stores it or finds it deleted.
   *
   * While the answer streams in, up to STORE_CONCURRENCY messages are
   * written to temp files and flushed (fdatasync) at once, and parsed
   * meanwhile: one at a time, the flushes left the connection idle most of
   * the time. Only the renames into place stay in UID order, one after
   * another, each followed by its record, so the files in place are still
   * always every message up to some UID: a crash cannot leave a higher UID's
   * file (recorded by the next run as an orphan, moving the checkpoint) in
   * place without a lower one's. If anything ends the FETCH early (abort,
   * error, lost connection), the temp files not yet renamed are dropped once
   * their writes finish; nothing writes after this returns.
   */
  private async fetchWhole(
    folder: FolderContext,
    uids: number[],
    infos: Map<number, MessageInfo>,
  ): Promise<void> {
    const done = new Set<number>();
    let remaining = uids;
    while (remaining.length > 0) {
      await this.runInFolder(folder, async (c) => {
        const todo = remaining.filter((uid) => !done.has(uid));
        if (todo.length === 0) return;
        const wanted = new Set(todo);
        const inFlight: StoreTask[] = [];
        let inFlightBytes = 0;
        const placeNext = async () => {
          // An abort stops before the next rename: between two messages, as documented.
          this.checkAborted();
          const head = inFlight[0] as StoreTask;
          const prepared = await head.task;
          inFlight.shift();
          inFlightBytes -= head.bytes;
          const rel = messagePath(folder.result.directory as string, folder.uidValidity, head.uid);
          const written = await prepared.partial.commit(rel);
          done.add(head.uid);
          await this.record(folder, head.uid, rel, written, prepared.metadata, infos.get(head.uid));
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
            this.checkAborted();
            next++;
            const task = this.prepareWhole(msg.source);
            // Awaited in order by placeNext; until then a failure must not count as unhandled.
            task.catch(() => {});
            inFlight.push({ uid: msg.uid, bytes: msg.source.length, task });
            inFlightBytes += msg.source.length;
            while (inFlight.length >= STORE_CONCURRENCY || inFlightBytes >= STORE_MAX_BYTES) {
              await placeNext();
            }
          }
          while (inFlight.length > 0) await placeNext();
        } finally {
          // Left only on an error: the messages not renamed are fetched again or by the next run.
          for (const { task } of inFlight.splice(0)) {
            await task.then(
              (prepared) => prepared.partial.discard(),
              () => {},
            );
          }
        }
      });
      const left = remaining.filter((uid) => !done.has(uid));
      const [skipped, ...rest] = left;
      if (skipped === undefined) return;
      await this.fetchStreamed(folder, skipped, infos.get(skipped));
      remaining = rest;
    }
  }

  /** Writes and flushes one message given whole into a temp file, and parses it meanwhile. */
  private async prepareWhole(source: Buffer): Promise<Prepared> {
    const [partial, metadata] = await Promise.allSettled([
      this.store.prepareMessage(source),
      parseMessageMetadata(source),
    ]);
    if (partial.status === 'rejected') throw partial.reason;
    if (metadata.status === 'rejected') {
      await partial.value.discard();
      throw metadata.reason;
    }
    return { partial: partial.value, metadata: metadata.value };
  }

  private async fetchStreamed(
    folder: FolderContext,
    uid: number,
    info: MessageInfo | undefined,
  ): Promise<void> {
    // Lines waiting for the manifest should not wait for a long download.
    await this.flush();
    const partial = await this.store.createPartial();
    // Parsed as it arrives: the file is never read back, and nothing holds the message whole.
    const parser = createMetadataParser();
    let committed = false;
    try {
      if (!(await this.download(folder, uid, partial, (piece) => parser.write(piece)))) {
        folder.result.vanished++;
        return;
      }
      const rel = messagePath(folder.result.directory as string, folder.uidValidity, uid);
      const written = await partial.commit(rel);
      committed = true;
      const metadata = await parser.end();
      await this.record(folder, uid, rel, written, metadata, info);
    } finally {
      if (!committed) {
        parser.abort();
        await partial.discard();
      }
    }
  }

  /**
   * Streams one message into `partial`, a partial FETCH per piece; false when
   * the server no longer has it.
   */
  private async download(
    folder: FolderRef,
    uid: number,
    partial: PartialMessage,
    onPiece?: (piece: Buffer) => Promise<void>,
  ): Promise<boolean> {
    for (;;) {
      this.checkAborted();
      const offset = partial.size;
      const piece = await this.runInFolder(folder, async (c) => {
        const msg = await c.fetchOne(
          String(uid),
          { uid: true, source: { start: offset, maxLength: this.chunkBytes } },
          { uid: true },
        );
        // No FETCH answer at all: the message was expunged. An empty one: the end.
        if (!msg) return undefined;
        return msg.source ?? Buffer.alloc(0);
      });
      if (piece === undefined) return false;
      if (piece.length > this.chunkBytes && offset > 0) {
        throw new ProtocolError({
          code: 'IMAP_PARTIAL_FETCH_IGNORED',
          message: `The server answered a partial FETCH of UID ${uid} in ${folder.path} with more than was asked`,
          remedy: 'Report this server behaviour; large messages cannot be streamed from it.',
        });
      }
      if (piece.length > 0) {
        await partial.write(piece);
        await onPiece?.(piece);
      }
      // A short piece is the end; a server that ignores the range sends it all at once (offset 0).
      if (piece.length !== this.chunkBytes) return true;
    }
  }

  /**
   * Fetches again the files `verify` finds missing or altered, when the
   * server still has that very message: same folder, UIDVALIDITY and UID,
   * bytes that hash to the manifest's SHA-256. Each is written as any message
   * is (temp file, flush, rename over the damaged one, directory flush); its
   * manifest line stays, as it describes exactly these bytes.
   */
  private async repair(onServer: ReadonlySet<string>): Promise<void> {
    const damaged: DamagedRecord[] = [];
    await verifyArchive(this.store.dir, { onDamaged: (record) => damaged.push(record) });
    const notRepaired = (record: DamagedRecord, reason: string) =>
      this.unrepairable.push({ path: record.path, folder: record.folder, reason });
    for (const [path, records] of groupBy(damaged, (r) => r.folder)) {
      this.checkAborted();
      if (!onServer.has(path)) {
        for (const r of records) notRepaired(r, 'its folder is no longer on the server');
        continue;
      }
      const selected = await this.session.open(this.serverPath(path), { readOnly: true });
      const folder: FolderRef = { path, uidValidity: Number(selected.uidValidity) };
      for (const record of records) {
        if (record.uidValidity !== folder.uidValidity) {
          notRepaired(record, `the folder was numbered anew (UIDVALIDITY ${folder.uidValidity})`);
          continue;
        }
        const partial = await this.store.createPartial();
        try {
          if (!(await this.download(folder, record.uid, partial))) {
            notRepaired(record, 'the message was deleted on the server');
            continue;
          }
          const written = await partial.flush();
          if (written.sha256 !== record.sha256 || written.size !== record.size) {
            notRepaired(record, "the server's copy differs from the archived one");
            continue;
          }
          await partial.commit(record.path);
          await this.store.sync();
          this.repaired++;
        } catch (error) {
          const errno = (error as NodeJS.ErrnoException).code;
          if (error instanceof MailbridgeError || typeof errno !== 'string') throw error;
          // Something in the way of the rename (a directory under the file's name).
          notRepaired(record, (error as Error).message);
        } finally {
          await partial.discard();
        }
      }
    }
  }

  private async record(
    folder: FolderContext,
    uid: number,
    path: string,
    written: { sha256: string; size: number },
    metadata: MessageMetadata,
    info: MessageInfo | undefined,
  ): Promise<void> {
    const record: ManifestRecord = {
      folder: folder.path,
      uidValidity: folder.uidValidity,
      uid,
      internalDate: info?.internalDate ?? null,
      flags: info?.flags ?? null,
      size: written.size,
      sha256: written.sha256,
      path,
      ...metadata,
      archivedAt: new Date().toISOString(),
    };
    folder.result.messagesNew++;
    folder.result.bytesNew += written.size;
    if (metadata.parseError) folder.result.parseErrors++;
    this.counts.messages++;
    this.counts.bytes += written.size;
    await this.queue(record);
    this.emit({
      type: 'message',
      mailbox: this.options.mailbox,
      folder: folder.path,
      uid,
      size: written.size,
      counts: { ...this.counts },
    });
  }

  /** Records files a crash left in place without manifest lines. */
  private async recoverOrphans(
    orphans: OrphanFile[],
    infos: Map<number, MessageInfo> | undefined,
    currentUidValidity: number | undefined,
  ): Promise<void> {
    for (const orphan of orphans) {
      const file = this.store.absolute(orphan.path);
      const written = await hashFile(file);
      const metadata = await parseMessageMetadata(file);
      const info = orphan.uidValidity === currentUidValidity ? infos?.get(orphan.uid) : undefined;
      await this.queue({
        folder: orphan.folder,
        uidValidity: orphan.uidValidity,
        uid: orphan.uid,
        internalDate: info?.internalDate ?? null,
        flags: info?.flags ?? null,
        size: written.size,
        sha256: written.sha256,
        path: orphan.path,
        ...metadata,
        archivedAt: new Date().toISOString(),
        recovered: true,
      });
    }
    if (orphans.length > 0) {
      this.logger.log('info', 'archive: recorded files left by an interrupted run', {
        mailbox: this.options.mailbox,
        folder: orphans[0]?.folder,
        files: orphans.length,
      });
    }
  }

  private async queue(record: ManifestRecord): Promise<void> {
    if (this.index.has(record.folder, record.uidValidity, record.uid)) return;
    this.pending.push(record);
    this.oldestPendingAt ??= Date.now();
    if (
      shouldWriteManifest(this.pending.length, this.oldestPendingAt, Date.now(), this.syncPolicy)
    ) {
      await this.flush();
    }
  }

  /** Makes the renamed files durable, then appends their lines: never a line before its file. */
  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.oldestPendingAt = undefined;
    await this.store.sync();
    await this.writer.append(batch);
    for (const record of batch) this.index.add(record);
  }

  private checkAborted(): void {
    if (this.options.signal?.aborted) {
      throw new InterruptedError({
        code: 'ARCHIVE_INTERRUPTED',
        message: `The archive of ${this.options.mailbox} was interrupted`,
        remedy: 'Run it again: it continues where it stopped.',
      });
    }
  }

  private emit(event: ArchiveProgressEvent): void {
    try {
      this.options.onProgress?.(event);
    } catch (error) {
      this.logger.log('warn', 'archive: progress callback failed', {
        error: (error as Error).message,
      });
    }
  }

  private result(interrupted: boolean, unmatched: string[]): ArchiveMailboxResult {
    const folders = this.folderResults;
    const sum = (pick: (f: ArchiveFolderResult) => number) =>
      folders.reduce((total, f) => total + pick(f), 0);
    return {
      mailbox: this.options.mailbox,
      directory: this.store.dir,
      ok:
        !interrupted &&
        folders.every((f) => f.status !== 'failed') &&
        this.unrepairable.length === 0,
      interrupted,
      folders,
      messagesNew: sum((f) => f.messagesNew),
      bytesNew: sum((f) => f.bytesNew),
      messagesTotal: this.index.messages,
      bytesTotal: this.index.bytes,
      parseErrors: sum((f) => f.parseErrors),
      recovered: sum((f) => f.recovered),
      vanished: sum((f) => f.vanished),
      unmatchedPatterns: unmatched,
      repaired: this.repaired,
      unrepairable: this.unrepairable,
      durationMs: Date.now() - this.started,
      session: { ...this.session.stats },
    };
  }
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const list = out.get(key(item)) ?? [];
    list.push(item);
    out.set(key(item), list);
  }
  return out;
}

function isoDate(value: Date | string | undefined): string | null {
  if (value === undefined) return null;
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

// ---------------------------------------------------------------------------
// Several mailboxes

export interface ArchiveMailboxesOptions extends Omit<ArchiveMailboxOptions, 'mailbox'> {
  mailboxes: readonly string[];
  /** Mailboxes archived at once. @default 4 */
  concurrency?: number;
}

export interface ArchiveMailboxFailure {
  mailbox: string;
  ok: false;
  interrupted: false;
  error: MailbridgeError;
  /** Archived before the failure: these messages stay archived. */
  messagesNew: number;
  bytesNew: number;
}

export interface ArchiveRunResult {
  ok: boolean;
  mailboxes: (ArchiveMailboxResult | ArchiveMailboxFailure)[];
  durationMs: number;
}

export const DEFAULT_ARCHIVE_CONCURRENCY = 4;

/**
 * Archives several mailboxes, `concurrency` at a time, with one token
 * provider. A mailbox that fails does not stop the others.
 */
export async function archiveMailboxes(
  config: MailbridgeConfig,
  options: ArchiveMailboxesOptions,
): Promise<ArchiveRunResult> {
  const started = Date.now();
  const { mailboxes, concurrency = DEFAULT_ARCHIVE_CONCURRENCY, ...shared } = options;
  const unique = [...new Map(mailboxes.map((m) => [m.trim().toLowerCase(), m.trim()])).values()];
  const tokenProvider =
    shared.tokenProvider ?? createTokenProvider(config, { logger: shared.logger ?? silentLogger });
  const results: (ArchiveMailboxResult | ArchiveMailboxFailure)[] = new Array(unique.length);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= unique.length) return;
      const mailbox = unique[i] as string;
      if (shared.signal?.aborted) {
        results[i] = failure(mailbox, interruptedError(mailbox));
        continue;
      }
      try {
        results[i] = await archiveMailbox(config, { ...shared, mailbox, tokenProvider });
      } catch (error) {
        const done =
          typeof error === 'object' && error ? archivedBeforeFailure.get(error) : undefined;
        results[i] = failure(mailbox, archiveError(error, mailbox), done);
      }
    }
  };
  const workers = Math.max(1, Math.min(concurrency, unique.length));
  await Promise.all(Array.from({ length: workers }, worker));
  return {
    ok: results.every((r) => r.ok),
    mailboxes: results,
    durationMs: Date.now() - started,
  };
}

function failure(
  mailbox: string,
  error: MailbridgeError,
  done?: ArchiveCounts,
): ArchiveMailboxFailure {
  return {
    mailbox,
    ok: false,
    interrupted: false,
    error,
    messagesNew: done?.messages ?? 0,
    bytesNew: done?.bytes ?? 0,
  };
}

function interruptedError(mailbox: string): MailbridgeError {
  return new InterruptedError({
    code: 'ARCHIVE_INTERRUPTED',
    message: `The archive of ${mailbox} was interrupted before it started`,
    remedy: 'Run it again.',
  });
}

/** A mailbox run's failure as a MailbridgeError (`ARCHIVE_ENOSPC` and its kin for the disk's). */
export function archiveError(error: unknown, mailbox: string): MailbridgeError {
  if (error instanceof MailbridgeError) return error;
  const err = error as NodeJS.ErrnoException;
  if (err.code) {
    return diskError(diskErrorCode(error), `Archiving ${mailbox} failed: ${err.message}`, error);
  }
  return new MailbridgeError({
    code: 'ARCHIVE_FAILED',
    message: `Archiving ${mailbox} failed: ${err.message ?? String(error)}`,
    remedy: 'Run again with --debug and report the output if it keeps failing.',
    cause: error,
  });
}

function noFolderMatched(
  mailbox: string,
  filter: { include: readonly string[]; exclude: readonly string[] },
  folders: readonly string[],
): ConfigurationError {
  const shown = (patterns: readonly string[]) => patterns.map((p) => displayText(p)).join(', ');
  const hints = filter.include.flatMap((pattern) => {
    const close = closestName(pattern, folders);
    return close ? [`did you mean '${displayText(close)}' for '${displayText(pattern)}'?`] : [];
  });
  return new ConfigurationError({
    code: 'ARCHIVE_NO_FOLDER_MATCHED',
    message: `No folder of ${mailbox} is selected${filter.include.length ? ` by --folder ${shown(filter.include)}` : ''}${filter.exclude.length ? ` once --exclude ${shown(filter.exclude)} is left out` : ''}, so nothing would be archived`,
    remedy: `${hints.length ? `${hints.join(' ')} ` : ''}Folders are exact IMAP paths with * as wildcard (\`mailbridge imap folders --mailbox ${mailbox}\` lists them); pass --allow-empty if an empty selection is intended.`,
  });
}
