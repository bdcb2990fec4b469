/**
 * One mailbox's archive directory: the lock, message files and crash
 * recovery. Every message file is written so that it is either complete or
 * absent under its final name:
 *
 *   1. streamed into `.tmp/` (same filesystem, so the rename is atomic),
 *   2. flushed (fdatasync) and closed,
 *   3. renamed to `{folder}/{uidValidity}/{uid}.eml`,
 *   4. its directory flushed (`sync()`), before the manifest line is written.
 *
 * A crash leaves at most temp files, which the next run deletes, and files in
 * place whose manifest lines were not written yet ("orphans": complete files,
 * as they were flushed before the rename). Orphans are recorded, not fetched
 * again: the file holds exactly the bytes the server returned, and the folder
 * may have changed UIDVALIDITY or lost the message since. The runner hashes
 * and parses the file and asks the server for its flags and INTERNALDATE when
 * it still can.
 *
 * The scan for orphans reads every folder directory once per run. It could be
 * limited to runs after an unclean end, but a user deleting a lock file or
 * copying an archive would then silently lose the guarantee.
 */

import { createHash } from 'node:crypto';
import { closeSync, fdatasync, open as openCallback, renameSync, rmSync, writeSync } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { MailbridgeError } from '../../errors.js';
import { fsyncDirectory, writeFileAtomic } from '../../util/durable.js';
import { processAlive } from '../../util/process.js';
import { type ManifestIndex, type ManifestReadResult, ManifestWriter } from './manifest.js';
import {
  decodeName,
  FOLDER_INFO_FILE,
  folderDirName,
  LOCK_FILE,
  MANIFEST_FILE,
  messagePath,
  TEMP_DIR,
} from './paths.js';
import { hashFile, type WrittenFile } from './store/file-hash.js';
import { compareOrphans } from './store/orphan-order.js';
import { writeWhole } from './store/prepare-whole.js';
import type { ArchiveStore, OrphanFile, PartialMessage } from './store/types.js';
import { type VerifyOptions, type VerifyReport, verifyArchive } from './verify.js';

const datasync = promisify(fdatasync);
const openFile = promisify(openCallback);

interface LockInfo {
  pid: number;
  hostname: string;
  startedAt: string;
}

/** The local directory behind the store interface (store/types.ts). */
export class LocalArchiveStore implements ArchiveStore {
  /** Directories made (or being made) by this run; several messages may ask for one at once. */
  private readonly knownDirs = new Map<string, Promise<void>>();
  private readonly dirtyDirs = new Set<string>();
  /** The `sync()` running: a second call waits for it, so it never returns before those flushes. */
  private syncing: Promise<void> = Promise.resolve();
  private readonly folderDirs = new Map<string, string>();
  private closed = false;
  private tempFiles = 0;

  private constructor(
    readonly dir: string,
    /** A previous run ended without releasing the lock (it crashed or was killed). */
    readonly previousRunInterrupted: boolean,
  ) {}

  get tempDir(): string {
    return join(this.dir, TEMP_DIR);
  }

  get manifestFile(): string {
    return join(this.dir, MANIFEST_FILE);
  }

  /** Creates the directory if needed, takes the lock and deletes leftover temp files. */
  static async open(dir: string): Promise<LocalArchiveStore> {
    const created = await mkdir(dir, { recursive: true, mode: 0o700 });
    if (created !== undefined) await syncCreatedParents(created, dir);
    const stale = await acquireLock(dir);
    const store = new LocalArchiveStore(dir, stale);
    // Only a run holding the lock writes here, so whatever is in .tmp is a leftover.
    await rm(store.tempDir, { recursive: true, force: true });
    await mkdir(store.tempDir, { mode: 0o700 });
    store.knownDirs.set(dir, Promise.resolve());
    return store;
  }

  /**
   * The directory name of `folder`, created with its `folder.json` the first
   * time. The file names the folder for recovery and people, and catches two
   * folders landing in one directory (folders that differ only in case, on a
   * case-insensitive filesystem).
   */
  async folderDir(folder: string): Promise<string> {
    const cached = this.folderDirs.get(folder);
    if (cached) return cached;
    const name = folderDirName(folder);
    const path = join(this.dir, name);
    await this.ensureDir(path);
    const info = join(path, FOLDER_INFO_FILE);
    const existing = await readFolderInfo(info);
    if (existing === undefined) {
      await writeFileAtomic(info, `${JSON.stringify({ folder })}\n`, this.tempDir);
      await this.sync();
    } else if (existing !== folder) {
      throw new MailbridgeError({
        code: 'ARCHIVE_FOLDER_CLASH',
        message: `The folders '${existing}' and '${folder}' map to the same directory ${path}`,
        remedy:
          'The filesystem treats the two names as one (case-insensitive?). Archive to a case-sensitive filesystem, or leave one folder out with --exclude.',
      });
    }
    this.folderDirs.set(folder, name);
    return name;
  }

  /**
   * A temp file opened and flushed through libuv's threadpool, but written,
   * closed and renamed with synchronous calls. Those only touch the page
   * cache and the directory (µs each), while every trip through the
   * threadpool costs two thread wake-ups: on a 2-vCPU VM, storing 10,000
   * bench messages took 510-590 µs of CPU per file all asynchronous and
   * 340-390 this way (bench/README.md). The open stays asynchronous: ext4's
   * inode allocation can take hundreds of µs under load, and a synchronous
   * open measured slower, as it holds up the event loop meanwhile.
   */
  async createPartial(_relativePath?: string): Promise<PartialMessage> {
    // Unique without randomness: only this run writes in .tmp, emptied when it took the lock.
    const temp = join(this.tempDir, `${++this.tempFiles}.part`);
    const fd = await openFile(temp, 'wx', 0o600);
    const hash = createHash('sha256');
    let size = 0;
    let open = true;
    let flushed: WrittenFile | undefined;
    let finished = false;
    const close = (keep: boolean) => {
      if (open) {
        open = false;
        try {
          closeSync(fd);
        } catch {
          // Nothing to keep in a file whose flush or write failed; a close error on a flushed file
          // cannot lose data.
        }
      }
      if (!keep) rmSync(temp, { force: true });
    };
    const flush = async (): Promise<WrittenFile> => {
      if (flushed) return flushed;
      if (!open) throw new Error('partial message already finished');
      try {
        await datasync(fd);
      } catch (error) {
        finished = true;
        close(false);
        throw error;
      }
      flushed = { sha256: hash.digest('hex'), size };
      close(true);
      return flushed;
    };
    return {
      get size() {
        return size;
      },
      write: async (chunk: Buffer) => {
        if (!open) throw new Error('partial message already flushed or discarded');
        try {
          let written = 0;
          while (written < chunk.length) {
            written += writeSync(fd, chunk, written, chunk.length - written);
          }
        } catch (error) {
          finished = true;
          close(false);
          throw error;
        }
        hash.update(chunk);
        size += chunk.length;
      },
      flush,
      commit: async (relativePath: string) => {
        if (finished) throw new Error('partial message already finished');
        const written = await flush();
        finished = true;
        const final = join(this.dir, ...relativePath.split('/'));
        try {
          await this.ensureDir(dirname(final));
          renameSync(temp, final);
        } catch (error) {
          rmSync(temp, { force: true });
          throw error;
        }
        this.dirtyDirs.add(dirname(final));
        return written;
      },
      discard: async () => {
        if (finished) return;
        finished = true;
        close(false);
      },
    };
  }

  /** Writes a message given whole into `.tmp/` and flushes it; `commit` then renames it. */
  async prepareMessage(data: Buffer, relativePath?: string): Promise<PartialMessage> {
    return writeWhole(await this.createPartial(relativePath), data);
  }

  async writeMessage(relativePath: string, data: Buffer): Promise<WrittenFile> {
    return (await this.prepareMessage(data)).commit(relativePath);
  }

  /**
   * Flushes every directory changed since the last call: renames become
   * durable. Messages are stored several at once, so a rename can land while
   * another call flushes; calls run one after another, and a call returns
   * only once every rename finished before it started is flushed.
   */
  sync(): Promise<void> {
    const run = this.syncing.then(async () => {
      const dirs = [...this.dirtyDirs];
      this.dirtyDirs.clear();
      try {
        await Promise.all(dirs.map((dir) => fsyncDirectory(dir)));
      } catch (error) {
        // Not flushed: flushed again by the next call, which must not skip them.
        for (const dir of dirs) this.dirtyDirs.add(dir);
        throw error;
      }
    });
    this.syncing = run.catch(() => {});
    return run;
  }

  /** Files in place that the manifest does not list. */
  async findOrphans(index: ManifestIndex): Promise<OrphanFile[]> {
    const orphans: OrphanFile[] = [];
    for (const entry of await readdir(this.dir, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
      const folderDir = entry.name;
      const folder =
        (await readFolderInfo(join(this.dir, folderDir, FOLDER_INFO_FILE))) ??
        decodeName(folderDir);
      const uvDirs = await readdir(join(this.dir, folderDir), { withFileTypes: true });
      for (const uvDir of uvDirs) {
        if (!uvDir.isDirectory() || !/^[1-9][0-9]{0,9}$/.test(uvDir.name)) continue;
        const uidValidity = Number(uvDir.name);
        for (const file of await readdir(join(this.dir, folderDir, uvDir.name))) {
          const match = /^([1-9][0-9]{0,9})\.eml$/.exec(file);
          if (!match) continue;
          const uid = Number(match[1]);
          if (folder !== undefined && index.has(folder, uidValidity, uid)) continue;
          if (folder === undefined) {
            // Without folder.json nothing says which folder this is; leave it for `verify` to report.
            continue;
          }
          orphans.push({
            folder,
            folderDir,
            uidValidity,
            uid,
            path: messagePath(folderDir, uidValidity, uid),
          });
        }
      }
    }
    return orphans.sort(compareOrphans);
  }

  absolute(relativePath: string): string {
    return join(this.dir, ...relativePath.split('/'));
  }

  openManifest(
    index: ManifestIndex,
  ): Promise<{ writer: ManifestWriter; read: ManifestReadResult }> {
    return ManifestWriter.open(this.manifestFile, index);
  }

  hasMessage(relativePath: string): Promise<boolean> {
    return stat(this.absolute(relativePath)).then(
      (s) => s.isFile(),
      (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return false;
        throw error;
      },
    );
  }

  hashMessage(relativePath: string): Promise<WrittenFile> {
    return hashFile(this.absolute(relativePath));
  }

  async messageSource(relativePath: string): Promise<string> {
    return this.absolute(relativePath);
  }

  verify(options?: VerifyOptions): Promise<VerifyReport> {
    return verifyArchive(this.dir, options);
  }

  /** Releases the lock. Call only after the last manifest write. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await rm(this.tempDir, { recursive: true, force: true });
    await rm(join(this.dir, LOCK_FILE), { force: true });
  }

  private ensureDir(path: string): Promise<void> {
    const known = this.knownDirs.get(path);
    if (known) return known;
    // One promise per directory: a message stored meanwhile into the same new directory waits
    // for it, so its parents are marked for the next sync() before that message's rename.
    const making = mkdir(path, { recursive: true, mode: 0o700 }).then((created) => {
      if (created !== undefined) {
        // Each new directory's entry lives in its parent: flush those with the next sync().
        for (let dir = path; dir.length >= created.length; dir = dirname(dir)) {
          this.dirtyDirs.add(dirname(dir));
        }
      }
    });
    this.knownDirs.set(path, making);
    making.catch(() => this.knownDirs.delete(path));
    return making;
  }
}

async function readFolderInfo(path: string): Promise<string | undefined> {
  try {
    const info = JSON.parse(await readFile(path, 'utf8')) as { folder?: unknown };
    return typeof info.folder === 'string' ? info.folder : undefined;
  } catch {
    return undefined;
  }
}

async function syncCreatedParents(firstCreated: string, leaf: string): Promise<void> {
  for (let dir = leaf; dir.length >= firstCreated.length; dir = dirname(dir)) {
    await fsyncDirectory(dirname(dir));
  }
}

/**
 * Takes `.lock` (O_EXCL). A lock left by a process that is gone (same host,
 * no such pid) is taken over and reported as stale. Returns whether it was.
 */
async function acquireLock(dir: string): Promise<boolean> {
  const path = join(dir, LOCK_FILE);
  let stale = false;
  for (let attempt = 0; attempt < 3; attempt++) {
    let handle: FileHandle;
    try {
      handle = await open(path, 'wx', 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = await readLock(path);
      if (holder && isAlive(holder)) {
        throw new MailbridgeError({
          code: 'ARCHIVE_LOCKED',
          message: `Another archive run (pid ${holder.pid} on ${holder.hostname}, since ${holder.startedAt}) is writing to ${dir}`,
          remedy:
            'Wait for it to finish. If no such run exists (e.g. it ran on another machine that is gone), delete the .lock file.',
        });
      }
      stale = true;
      await rm(path, { force: true });
      continue;
    }
    try {
      const info: LockInfo = {
        pid: process.pid,
        hostname: hostname(),
        startedAt: new Date().toISOString(),
      };
      await handle.writeFile(`${JSON.stringify(info)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsyncDirectory(dir);
    return stale;
  }
  throw new MailbridgeError({
    code: 'ARCHIVE_LOCKED',
    message: `Could not take the lock ${path}: other runs keep taking it`,
    remedy: 'Run one archive per output directory at a time.',
  });
}

async function readLock(path: string): Promise<LockInfo | undefined> {
  try {
    const info = JSON.parse(await readFile(path, 'utf8')) as Partial<LockInfo>;
    if (typeof info.pid !== 'number' || typeof info.hostname !== 'string') return undefined;
    return { pid: info.pid, hostname: info.hostname, startedAt: String(info.startedAt ?? '?') };
  } catch {
    // Empty or cut short: its writer died while taking it.
    return undefined;
  }
}

function isAlive(holder: LockInfo): boolean {
  // A pid on another machine cannot be checked: assume it runs.
  if (holder.hostname !== hostname()) return true;
  return processAlive(holder.pid);
}
