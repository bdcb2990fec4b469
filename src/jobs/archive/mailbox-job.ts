/**
 * One mailbox's archive run, from start to summary: list and select the
 * folders, record what an interrupted run left, repair on request, confirm
 * the checkpoints, estimate, then each folder (folder-archiver.ts), and the
 * result. With the modules it calls, the only part of the archive that
 * talks to the server and the disk: decisions come from the pure modules of
 * ../mailbox-read/ and plan.ts, files from store.ts, the record of what is
 * done from manifest.ts.
 */

import type { ListResponse } from 'imapflow';
import { createTokenProvider, type TokenProvider } from '../../auth/token-provider.js';
import { DEFAULT_MAX_CONNECTIONS_PER_MAILBOX } from '../../clients/connection-limit.js';
import { createImapSession, type ImapSessionStats } from '../../clients/imap-session.js';
import type { MailbridgeConfig } from '../../config/types.js';
import { ConfigurationError } from '../../errors.js';
import { type Logger, silentLogger } from '../../log/logger.js';
import { displayText } from '../../util/display-text.js';
import { DEFAULT_FETCH_LIMITS, type FetchLimits } from '../mailbox-read/fetch-groups.js';
import { FolderAccess } from '../mailbox-read/folder-access.js';
import { folderSuggestions } from '../mailbox-read/folder-filter.js';
import { type FolderListing, listedStatus, listFolders } from '../mailbox-read/folder-listing.js';
import { type FolderStatus, planFolder } from '../mailbox-read/folder-plan.js';
import { runFolderWorkers } from '../mailbox-read/folder-workers.js';
import { LeasePool } from '../mailbox-read/lease-pool.js';
import { notifyProgress, ProgressCounts } from '../mailbox-read/progress-counts.js';
import { InterruptedError, type ReadJobTerms } from '../mailbox-read/read-errors.js';
import { byFolder } from './by-folder.js';
import { confirmCheckpoints } from './checkpoints.js';
import { archiveFolder } from './folder-archiver.js';
import { ManifestIndex } from './manifest.js';
import { ManifestBatch } from './manifest-batch.js';
import { recordOrphans } from './orphan-recovery.js';
import { DEFAULT_MANIFEST_SYNC } from './plan.js';
import { type RepairResult, repairArchive } from './repair.js';
import type { ArchiveRunContext } from './run-context.js';
import type {
  ArchiveCounts,
  ArchiveFolderResult,
  ArchiveMailboxOptions,
  ArchiveMailboxResult,
  ArchiveProgressEvent,
} from './run-types.js';
import { openArchiveStore } from './store/open.js';
import type { ArchiveStore, ManifestAppender } from './store/types.js';

/**
 * Measured with the 52 MiB message of test/jobs/archive/crash.test.ts: peak
 * RSS 125-134 MiB with 256 KiB pieces, 131-143 MiB with 512 KiB (200 round
 * trips for 50 MB instead of 100).
 */
const DEFAULT_CHUNK_BYTES = 256 * 1024;
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Connections per mailbox by default (`options.connections`). */
export const DEFAULT_ARCHIVE_CONNECTIONS = 1;

const ARCHIVE_TERMS: ReadJobTerms = {
  name: 'archive',
  folderChangedCode: 'ARCHIVE_UIDVALIDITY_CHANGED',
  folderChangedRemedy: 'The folder is archived again under its new UIDVALIDITY.',
};

/**
 * Archives one mailbox into `outDir`, continuing from what an earlier run
 * archived. Safe to stop at any moment (a crash, `kill -9`, `signal`): the
 * next run completes the archive without gaps, duplicates or partial files.
 */
export async function archiveMailbox(
  config: MailbridgeConfig,
  options: ArchiveMailboxOptions,
): Promise<ArchiveMailboxResult> {
  checkConnections(options.connections, options.maxConnections);
  const store = await openArchiveStore(options.outDir, options.mailbox);
  const index = new ManifestIndex();
  let writer: ManifestAppender | undefined;
  let job: MailboxJob | undefined;
  try {
    const opened = await store.openManifest(index);
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
      archivedBeforeFailure.set(error, job.progress.snapshot());
    }
    throw error;
  } finally {
    await writer?.close();
    await store.close();
  }
}

/** What a failed mailbox run had archived, by the error it failed with, for its summary. */
const archivedBeforeFailure = new WeakMap<object, ArchiveCounts>();

/** What the run that failed with `error` had archived, when it was a mailbox run. */
export function archivedBefore(error: unknown): ArchiveCounts | undefined {
  return typeof error === 'object' && error ? archivedBeforeFailure.get(error) : undefined;
}

class MailboxJob implements ArchiveRunContext {
  readonly logger: Logger;
  readonly mailbox: string;
  readonly batch: ManifestBatch;
  /** The first connection: it lists, repairs, and is the first of `connections`. */
  readonly access: FolderAccess;
  readonly connections: LeasePool<FolderAccess>;
  readonly progress = new ProgressCounts();
  readonly limits: FetchLimits;
  readonly chunkBytes: number;
  private readonly started = Date.now();
  private folderResults: () => ArchiveFolderResult[] = () => [];
  private readonly repairs: RepairResult = { repaired: 0, unrepairable: [] };
  private listing: FolderListing | undefined;

  constructor(
    config: MailbridgeConfig,
    readonly options: ArchiveMailboxOptions,
    readonly store: ArchiveStore,
    readonly index: ManifestIndex,
    writer: ManifestAppender,
  ) {
    this.mailbox = options.mailbox;
    this.logger = options.logger ?? silentLogger;
    const tokenProvider: TokenProvider =
      options.tokenProvider ?? createTokenProvider(config, { logger: this.logger });
    // Each connects when first used: a helper only when a folder has parts to spare.
    const connection = () =>
      new FolderAccess(
        createImapSession(config, {
          mailbox: options.mailbox,
          tokenProvider,
          logger: this.logger,
          ...(options.maxConnections !== undefined
            ? { maxConnections: options.maxConnections }
            : {}),
          ...options.session,
        }),
        ARCHIVE_TERMS,
        (path) => this.listing?.serverPath(path) ?? path,
      );
    this.access = connection();
    this.connections = new LeasePool(options.connections ?? DEFAULT_ARCHIVE_CONNECTIONS, (index) =>
      index === 0 ? this.access : connection(),
    );
    this.limits = { ...DEFAULT_FETCH_LIMITS, ...options.fetch };
    this.chunkBytes = options.fetch?.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.batch = new ManifestBatch(store, index, writer, {
      ...DEFAULT_MANIFEST_SYNC,
      ...options.manifestSync,
    });
  }

  async run(): Promise<ArchiveMailboxResult> {
    const mailbox = this.mailbox;
    let interrupted = false;
    let unmatched: string[] = [];
    try {
      const filter = { include: this.options.folders ?? [], exclude: this.options.exclude ?? [] };
      const listing = await listFolders(this.access.session, {
        filter,
        mailbox,
        job: 'archive',
        logger: this.logger,
        rename: (folder) => this.archiveName(folder),
      });
      this.listing = listing;
      const folders = listing.selected;
      unmatched = listing.unmatched;
      const selectable = listing.selectable.map((f) => f.path);
      if (folders.length === 0 && !this.options.allowEmpty) {
        throw noFolderMatched(mailbox, filter, selectable);
      }

      const orphans = byFolder(await this.store.findOrphans(this.index));
      // Orphans of folders this run does not visit are recorded now, without server data.
      const visiting = new Set(folders.map((f) => f.path));
      for (const [folder, files] of orphans) {
        if (!visiting.has(folder)) await recordOrphans(files, undefined, undefined, this);
      }
      await this.batch.flush();
      if (this.options.repair) {
        await repairArchive(
          this.store,
          this.access,
          {
            onServer: new Set(selectable),
            chunkBytes: this.chunkBytes,
            checkAborted: () => this.checkAborted(),
          },
          this.repairs,
        );
      }

      for (const f of folders) {
        await confirmCheckpoints(this.index, this.store, f.path, this);
      }
      const statuses = new Map<string, FolderStatus | undefined>();
      for (const f of folders) {
        const status = listedStatus(f);
        statuses.set(f.path, status);
        if (status) {
          const plan = planFolder(this.index.ranges(f.path), status);
          this.progress.planned(f.path, plan.action === 'fetch' ? plan.estimate : 0);
        }
      }
      this.emit({
        type: 'mailbox-start',
        mailbox,
        directory: this.store.dir,
        folders: folders.length,
        counts: this.progress.snapshot(),
      });

      // Listed in the listing's order, each once it starts: an interrupted folder's counts are in
      // the result too, those never started are not.
      const started: (ArchiveFolderResult | undefined)[] = new Array(folders.length);
      this.folderResults = () => started.filter((r): r is ArchiveFolderResult => r !== undefined);
      const work = folders.map((folder, index) => ({ folder, index, destination: folder.path }));
      await runFolderWorkers(work, this.connections, async (access, { folder, index }) => {
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
        started[index] = result;
        await archiveFolder(
          this,
          access,
          folder.path,
          statuses.get(folder.path),
          orphans.get(folder.path) ?? [],
          result,
        );
        this.emit({
          type: 'folder-done',
          mailbox,
          folder: result,
          counts: this.progress.snapshot(),
        });
      });
      await this.batch.flush();
    } catch (error) {
      // Whatever happened, what is on disk gets its manifest lines now if it can.
      await this.batch.flush().catch((flushError: unknown) => {
        this.logger.log('warn', 'archive: could not write the last manifest lines', {
          mailbox,
          error: (flushError as Error).message,
        });
      });
      if (!(error instanceof InterruptedError)) throw error;
      interrupted = true;
    } finally {
      await Promise.all([this.access, ...this.connections.items].map((c) => c.session.close()));
    }
    const result = this.result(interrupted, unmatched);
    this.emit({ type: 'mailbox-done', mailbox, result, counts: this.progress.snapshot() });
    return result;
  }

  checkAborted(): void {
    if (this.options.signal?.aborted) {
      throw new InterruptedError({
        code: 'ARCHIVE_INTERRUPTED',
        message: `The archive of ${this.mailbox} was interrupted`,
        remedy: 'Run it again: it continues where it stopped.',
      });
    }
  }

  emit(event: ArchiveProgressEvent): void {
    notifyProgress(this.options.onProgress, event, 'archive', this.logger);
  }

  /**
   * A folder whose decoded name holds control characters (Dovecot lists
   * `del&AH8-x`, modified UTF-7 for `del`, DEL, `x`) is archived under its
   * name as the server lists it: such characters do not belong in file
   * names, manifests or terminals. Folders are selected by their server path.
   */
  private archiveName(folder: ListResponse): string {
    const listedAs = folder.pathAsListed;
    if (!CONTROL.test(folder.path) || !listedAs || listedAs === folder.path) return folder.path;
    this.logger.log(
      'warn',
      'archive: folder name holds control characters; archived under its listed name',
      {
        mailbox: this.mailbox,
        folder: displayText(folder.path),
        archivedAs: displayText(listedAs),
      },
    );
    return listedAs;
  }

  private result(interrupted: boolean, unmatched: string[]): ArchiveMailboxResult {
    const folders = this.folderResults();
    const sum = (pick: (f: ArchiveFolderResult) => number) =>
      folders.reduce((total, f) => total + pick(f), 0);
    return {
      mailbox: this.mailbox,
      directory: this.store.dir,
      ok:
        !interrupted &&
        folders.every((f) => f.status !== 'failed') &&
        this.repairs.unrepairable.length === 0,
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
      repaired: this.repairs.repaired,
      unrepairable: this.repairs.unrepairable,
      durationMs: Date.now() - this.started,
      session: sessionStats([this.access, ...this.connections.items]),
    };
  }
}

function noFolderMatched(
  mailbox: string,
  filter: { include: readonly string[]; exclude: readonly string[] },
  folders: readonly string[],
): ConfigurationError {
  const shown = (patterns: readonly string[]) => patterns.map((p) => displayText(p)).join(', ');
  return new ConfigurationError({
    code: 'ARCHIVE_NO_FOLDER_MATCHED',
    message: `No folder of ${mailbox} is selected${filter.include.length ? ` by --folder ${shown(filter.include)}` : ''}${filter.exclude.length ? ` once --exclude ${shown(filter.exclude)} is left out` : ''}, so nothing would be archived`,
    remedy: `${folderSuggestions(filter.include, folders)}Folders are exact IMAP paths with * as wildcard (\`mailbridge imap folders --mailbox ${mailbox}\` lists them); pass --allow-empty if an empty selection is intended.`,
  });
}

/** Every connection's counts, added up (the listing one may not be in the pool). */
function sessionStats(connections: readonly FolderAccess[]): ImapSessionStats {
  const total: ImapSessionStats = { connects: 0, tokenRenewals: 0, retries: 0, throttledMs: 0 };
  for (const { session } of new Set(connections)) {
    total.connects += session.stats.connects;
    total.tokenRenewals += session.stats.tokenRenewals;
    total.retries += session.stats.retries;
    total.throttledMs += session.stats.throttledMs;
  }
  return total;
}

/**
 * `connections`: a whole number, at most the sessions one mailbox may have
 * at once (`maxConnections`): a connection beyond them would wait for a slot
 * the others hold until the end of the run. `name` is what the user gave it as.
 * @throws ConfigurationError ARCHIVE_OPTION_INVALID
 */
export function checkConnections(
  connections: number | undefined,
  maxConnections?: number,
  name = '--connections',
): void {
  if (connections === undefined) return;
  const cap = maxConnections ?? DEFAULT_MAX_CONNECTIONS_PER_MAILBOX;
  if (Number.isInteger(connections) && connections >= 1 && connections <= cap) return;
  throw new ConfigurationError({
    code: 'ARCHIVE_OPTION_INVALID',
    message: `${name} must be a whole number from 1 to ${cap}, not ${displayText(String(connections), 20)}`,
    remedy: `Each is one IMAP connection to the mailbox, at most ${cap} at once${maxConnections === undefined ? '' : ' (maxConnections)'}; Exchange Online allows about 16 per mailbox. The default is ${DEFAULT_ARCHIVE_CONNECTIONS}.`,
  });
}
