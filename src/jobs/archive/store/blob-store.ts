/**
 * One mailbox's archive in a blob container, under `PREFIX/<mailbox>/` with
 * the names a directory would have (paths.ts). The rules of the local store
 * hold, in the service's terms:
 *
 * - A message blob is a block blob committed once. Its bytes go up as
 *   uncommitted blocks (4 MiB at most, each with a Content-MD5 the service
 *   checks), then one Put Block List makes the whole blob appear at once,
 *   with its MD5 and its SHA-256 (metadata `sha256`). A process killed
 *   before that leaves only uncommitted blocks: never listed, never read,
 *   dropped by the service after a week. Blocks go up while other messages
 *   download. The commits are started in UID order, up to
 *   COMMITS_IN_FLIGHT at once (a round trip each: one after another they set
 *   the pace), and `sync()` waits for all of them before any manifest line
 *   names them. A crash can then leave a later message committed without an
 *   earlier one; each blob names the one committed before it (metadata
 *   `afteruid`), and only blobs with an unbroken chain back to the manifest
 *   are recorded as orphans (orphan-chain.ts): the others are deleted and
 *   fetched again, so the checkpoint never passes a message not stored.
 * - The manifest is an append blob. An Append Block is atomic and durable
 *   once answered, so a line is never torn; each names the append position
 *   it expects, so a retried append cannot add lines twice. Lines are
 *   appended only after their blobs are committed. (A block list would
 *   need the whole list sent again on every commit.) An append blob takes
 *   50,000 appends: one per manifest batch, ample for years of nightly runs.
 * - The lock is a lease on the manifest blob, 15 s and renewed while the run
 *   lasts: a run that dies frees it within 15 s, and a second run waits that
 *   long before it gives up with ARCHIVE_LOCKED. Appends name the lease, so
 *   a run that lost it cannot write to the manifest.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { AppendBlobClient, BlobLeaseClient, ContainerClient } from '@azure/storage-blob';
import { MailbridgeError } from '../../../errors.js';
import {
  formatManifestLine,
  type ManifestIndex,
  type ManifestReadResult,
  type ManifestRecord,
  readManifestChunks,
} from '../manifest.js';
import {
  decodeName,
  FOLDER_INFO_FILE,
  folderDirName,
  MANIFEST_FILE,
  mailboxDirName,
  parseMessagePath,
} from '../paths.js';
import { type VerifyOptions, type VerifyReport, verifyArchive } from '../verify.js';
import { blobStoreError, containerClient } from './blob-client.js';
import type { BlobLocation } from './blob-location.js';
import { blobArchiveTree } from './blob-tree.js';
import { CommitWindow } from './commit-window.js';
import { hashChunks } from './file-hash.js';
import { splitByChain } from './orphan-chain.js';
import { compareOrphans } from './orphan-order.js';
import { writeWhole } from './prepare-whole.js';
import type {
  ArchiveStore,
  ManifestAppender,
  OrphanFile,
  PartialMessage,
  WrittenFile,
} from './types.js';

/** Bytes per staged block: the memory a message being uploaded holds at most. */
const BLOCK_BYTES = 4 * 1024 * 1024;
/**
 * Put Block List requests at once. Each carries only block ids and
 * properties, so this bounds requests, not memory (the blocks are up
 * already); half the messages the archiver prepares at once
 * (message-archiver.ts), so uploads and commits both keep going.
 */
const COMMITS_IN_FLIGHT = 16;
/** Blob metadata: the UID committed just before this one in its folder (orphan-chain.ts). */
const AFTER_UID = 'afteruid';
const LEASE_SECONDS = 15;
const RENEW_EVERY_MS = 5_000;
/** How long a run waits for a lease a dead run left to expire. */
const LOCK_WAIT_MS = (LEASE_SECONDS + 5) * 1000;

export class BlobArchiveStore implements ArchiveStore {
  private readonly folderDirs = new Map<string, Promise<string>>();
  private readonly commits = new CommitWindow(COMMITS_IN_FLIGHT);
  /** `folderDir/uidValidity` → the UID of the last commit started there by this run. */
  private readonly lastCommitted = new Map<string, number>();
  private leaseId = '';
  private renewTimer: NodeJS.Timeout | undefined;
  private leaseLost: unknown;
  private closed = false;

  private constructor(
    readonly dir: string,
    private readonly container: ContainerClient,
    /** The mailbox's blob name prefix, ending in `/`. */
    private readonly root: string,
    private readonly lease: BlobLeaseClient,
  ) {}

  /** Connects, creates the manifest blob if needed and takes its lease (the lock). */
  static async open(location: BlobLocation, mailbox: string): Promise<BlobArchiveStore> {
    const name = mailboxDirName(mailbox);
    const dir = `${location.display}/${name}`;
    const container = await containerClient(location).catch((error: unknown) => {
      throw blobStoreError(error, 'connect to', dir);
    });
    const root = `${location.prefix}${name}/`;
    const manifest = container.getAppendBlobClient(`${root}${MANIFEST_FILE}`);
    const store = new BlobArchiveStore(dir, container, root, manifest.getBlobLeaseClient());
    await store.call('create the manifest of', () => manifest.createIfNotExists());
    await store.takeLease();
    return store;
  }

  async folderDir(folder: string): Promise<string> {
    let known = this.folderDirs.get(folder);
    if (!known) {
      const name = folderDirName(folder);
      const body = `${JSON.stringify({ folder })}\n`;
      known = this.call('record a folder in', async () => {
        try {
          await this.container
            .getBlockBlobClient(`${this.root}${name}/${FOLDER_INFO_FILE}`)
            .upload(body, Buffer.byteLength(body), { conditions: { ifNoneMatch: '*' } });
        } catch (error) {
          // Recorded by an earlier run: blob names are case-sensitive, so it names this folder.
          if (!isStatus(error, 409, 412)) throw error;
        }
        return name;
      });
      known.catch(() => this.folderDirs.delete(folder));
      this.folderDirs.set(folder, known);
    }
    return known;
  }

  async createPartial(relativePath?: string): Promise<PartialMessage> {
    if (!relativePath) throw new Error('a blob message needs its name before its first byte');
    const blob = this.container.getBlockBlobClient(`${this.root}${relativePath}`);
    // Block ids of one blob must have one length; random, so a killed run's blocks never mix in.
    const upload = randomBytes(12).toString('hex');
    const blockIds: string[] = [];
    const sha256 = createHash('sha256');
    const md5 = createHash('md5');
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let size = 0;
    let flushed: WrittenFile | undefined;
    let finished = false;
    const stage = async () => {
      const block = Buffer.concat(pending);
      pending = [];
      pendingBytes = 0;
      const id = Buffer.from(`${upload}-${String(blockIds.length).padStart(6, '0')}`).toString(
        'base64',
      );
      await this.call('upload a message to', () =>
        blob.stageBlock(id, block, block.length, {
          transactionalContentMD5: createHash('md5').update(block).digest(),
        }),
      );
      blockIds.push(id);
    };
    const flush = async (): Promise<WrittenFile> => {
      if (flushed) return flushed;
      if (finished) throw new Error('partial message already finished');
      if (pendingBytes > 0) await stage();
      flushed = { sha256: sha256.digest('hex'), size };
      return flushed;
    };
    return {
      get size() {
        return size;
      },
      write: async (chunk: Buffer) => {
        if (flushed || finished) throw new Error('partial message already flushed or discarded');
        sha256.update(chunk);
        md5.update(chunk);
        size += chunk.length;
        pending.push(chunk);
        pendingBytes += chunk.length;
        if (pendingBytes >= BLOCK_BYTES) await stage();
      },
      flush,
      commit: async (path: string) => {
        if (path !== relativePath)
          throw new Error(`partial message for ${relativePath}, not ${path}`);
        const written = await flush();
        if (finished) throw new Error('partial message already finished');
        finished = true;
        const metadata: Record<string, string> = { sha256: written.sha256 };
        const after = this.chainCommit(relativePath);
        if (after !== undefined) metadata[AFTER_UID] = String(after);
        const contentMd5 = md5.digest();
        // Durable once sync() has returned: the manifest line waits for that.
        await this.commits.start(() =>
          this.call('store a message in', () =>
            blob.commitBlockList(blockIds, {
              blobHTTPHeaders: { blobContentMD5: contentMd5, blobContentType: 'message/rfc822' },
              metadata,
            }),
          ),
        );
        return written;
      },
      discard: async () => {
        // Uncommitted blocks are invisible and expire on their own.
        finished = true;
        pending = [];
      },
    };
  }

  async prepareMessage(data: Buffer, relativePath?: string): Promise<PartialMessage> {
    return writeWhole(await this.createPartial(relativePath), data);
  }

  /** A committed block list is durable once the service answers: waits for every answer. */
  sync(): Promise<void> {
    return this.commits.drain();
  }

  /** The UID committed before `relativePath` in its folder by this run (commits come in UID order). */
  private chainCommit(relativePath: string): number | undefined {
    const location = parseMessagePath(relativePath);
    if (!location) return undefined;
    const key = `${location.folderDir}/${location.uidValidity}`;
    const after = this.lastCommitted.get(key);
    this.lastCommitted.set(key, location.uid);
    return after;
  }

  async openManifest(
    index: ManifestIndex,
  ): Promise<{ writer: ManifestAppender; read: ManifestReadResult }> {
    const blob = this.container.getAppendBlobClient(`${this.root}${MANIFEST_FILE}`);
    const { read, length } = await this.call('read the manifest of', async () => {
      const download = await blob.download();
      const read = await readManifestChunks(
        download.readableStreamBody as AsyncIterable<Buffer>,
        (record) => index.add(record),
      );
      return { read, length: download.contentLength ?? 0 };
    });
    return { writer: new BlobManifestAppender(this, blob, length, read.tornBytes > 0), read };
  }

  async findOrphans(index: ManifestIndex): Promise<OrphanFile[]> {
    const found: {
      name: string;
      folderDir: string;
      uidValidity: number;
      uid: number;
      after: number | undefined;
    }[] = [];
    const recorded = new Set<string>();
    await this.call('list', async () => {
      const listing = this.container.listBlobsFlat({ prefix: this.root, includeMetadata: true });
      for await (const item of listing) {
        const name = item.name.slice(this.root.length);
        if (name.endsWith(`/${FOLDER_INFO_FILE}`)) recorded.add(name.split('/')[0] as string);
        const location = parseMessagePath(name);
        const after = Number(item.metadata?.[AFTER_UID]);
        if (location) {
          found.push({ name, ...location, after: Number.isInteger(after) ? after : undefined });
        }
      }
    });
    const folders = new Map<string, string | undefined>();
    const candidates: (OrphanFile & { after: number | undefined })[] = [];
    for (const { name, folderDir, uidValidity, uid, after } of found) {
      if (!folders.has(folderDir)) {
        folders.set(
          folderDir,
          recorded.has(folderDir) ? await this.readFolderInfo(folderDir) : decodeName(folderDir),
        );
      }
      const folder = folders.get(folderDir);
      // Without a folder name nothing says which folder this is; `verify` reports it.
      if (folder === undefined || index.has(folder, uidValidity, uid)) continue;
      candidates.push({ folder, folderDir, uidValidity, uid, path: name, after });
    }
    const { whole, broken } = splitByChain(candidates, (folder, uidValidity, uid) =>
      index.has(folder, uidValidity, uid),
    );
    // Behind a gap: fetched again by this run, or gone from the server (then never listed).
    for (const blob of broken) {
      await this.call('remove an unconfirmed message from', () =>
        this.container.getBlobClient(`${this.root}${blob.path}`).deleteIfExists(),
      );
    }
    return whole.map(({ after: _, ...orphan }) => orphan).sort(compareOrphans);
  }

  hasMessage(relativePath: string): Promise<boolean> {
    return this.call('look for a message in', () =>
      this.container.getBlobClient(`${this.root}${relativePath}`).exists(),
    );
  }

  hashMessage(relativePath: string): Promise<WrittenFile> {
    return this.call('read a message of', async () => {
      const download = await this.container.getBlobClient(`${this.root}${relativePath}`).download();
      return hashChunks(download.readableStreamBody as AsyncIterable<Buffer>);
    });
  }

  messageSource(relativePath: string): Promise<Buffer> {
    return this.call('read a message of', () =>
      this.container.getBlobClient(`${this.root}${relativePath}`).downloadToBuffer(),
    );
  }

  verify(options?: VerifyOptions): Promise<VerifyReport> {
    return verifyArchive(blobArchiveTree(this.container, this.root, this.dir), options);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // A run that failed may still have commits under way; they need no lease, but let them end.
    await this.commits.drain().catch(() => {});
    clearInterval(this.renewTimer);
    await this.lease.releaseLease().catch(() => {
      // Expires on its own within LEASE_SECONDS.
    });
  }

  /** The lease id every manifest append names; throws once the lease was lost. */
  currentLease(): string {
    if (this.leaseLost) {
      throw new MailbridgeError({
        code: 'ARCHIVE_LOCKED',
        message: `The run lost its lease on the manifest of ${this.dir}`,
        remedy:
          'Another run may have taken the archive over. Run again once no other run writes to it.',
        cause: this.leaseLost,
      });
    }
    return this.leaseId;
  }

  /** Runs a blob operation, its failure as one of ours. */
  async call<T>(doing: string, operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      throw blobStoreError(error, doing, this.dir);
    }
  }

  private async takeLease(): Promise<void> {
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        const lease = await this.lease.acquireLease(LEASE_SECONDS);
        this.leaseId = lease.leaseId ?? this.lease.leaseId;
        break;
      } catch (error) {
        if (!isStatus(error, 409) || Date.now() > deadline) {
          if (isStatus(error, 409)) {
            throw new MailbridgeError({
              code: 'ARCHIVE_LOCKED',
              message: `Another archive run holds the lease on the manifest of ${this.dir}`,
              remedy: `Wait for it to finish. A run that died frees it within ${LEASE_SECONDS} seconds.`,
            });
          }
          throw blobStoreError(error, 'lock', this.dir);
        }
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
    this.renewTimer = setInterval(() => {
      this.lease.renewLease().catch((error: unknown) => {
        this.leaseLost ??= error;
      });
    }, RENEW_EVERY_MS);
    this.renewTimer.unref();
  }

  private async readFolderInfo(folderDir: string): Promise<string | undefined> {
    try {
      const blob = this.container.getBlobClient(`${this.root}${folderDir}/${FOLDER_INFO_FILE}`);
      const info = JSON.parse((await blob.downloadToBuffer()).toString('utf8')) as {
        folder?: unknown;
      };
      return typeof info.folder === 'string' ? info.folder : undefined;
    } catch {
      return decodeName(folderDir);
    }
  }
}

/** Appends to the manifest append blob, at the position it expects, under the run's lease. */
class BlobManifestAppender implements ManifestAppender {
  private broken = false;

  constructor(
    private readonly store: BlobArchiveStore,
    private readonly blob: AppendBlobClient,
    private length: number,
    /** The blob ends without a newline (not written by us): the first append starts a line. */
    private needsNewline: boolean,
  ) {}

  async append(records: readonly ManifestRecord[]): Promise<void> {
    if (records.length === 0) return;
    if (this.broken) {
      throw new MailbridgeError({
        code: 'ARCHIVE_MANIFEST_WRITE_FAILED',
        message: `An earlier append to the manifest of ${this.store.dir} failed`,
        remedy: 'Run the archive again: the lines not written are recorded from the stored blobs.',
      });
    }
    try {
      for (const piece of pieces(records, this.needsNewline)) {
        const position = this.length;
        await this.store.call('append to the manifest of', () =>
          this.blob.appendBlock(piece, piece.length, {
            conditions: { leaseId: this.store.currentLease(), appendPosition: position },
            transactionalContentMD5: createHash('md5').update(piece).digest(),
          }),
        );
        this.length += piece.length;
        this.needsNewline = false;
      }
    } catch (error) {
      // Whether the last append landed is unknown (a retry after a timeout): the next run reads
      // the manifest as it is and records the rest from the blobs.
      this.broken = true;
      throw error;
    }
  }

  async close(): Promise<void> {}
}

/** The lines as appends of at most one block each, split between lines. */
function* pieces(records: readonly ManifestRecord[], newlineFirst: boolean): Generator<Buffer> {
  let lines: Buffer[] = newlineFirst ? [Buffer.from('\n')] : [];
  let bytes = lines.length;
  for (const record of records) {
    const line = Buffer.from(formatManifestLine(record), 'utf8');
    if (bytes + line.length > BLOCK_BYTES && lines.length > 0) {
      yield Buffer.concat(lines);
      lines = [];
      bytes = 0;
    }
    lines.push(line);
    bytes += line.length;
  }
  if (lines.length > 0) yield Buffer.concat(lines);
}

function isStatus(error: unknown, ...statuses: number[]): boolean {
  const status = (error as { statusCode?: number })?.statusCode;
  return status !== undefined && statuses.includes(status);
}
