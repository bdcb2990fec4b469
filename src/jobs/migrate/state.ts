/**
 * The durable state of one mailbox pair: which source message (folder,
 * UIDVALIDITY, UID) became which destination message (folder, UIDVALIDITY,
 * UID from APPENDUID). An append-only journal, each line written before
 * the next message is copied and flushed to disk within a second: a killed
 * process can only cut the last line short (dropped on the next open), a
 * power cut the last second's lines. What the journal does not know (a crash between APPEND and its line, a lost state folder)
 * the identity check before APPEND finds at the destination.
 */
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { mkdir, open, readFile, truncate } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ConfigurationError, MailbridgeError } from '../../errors.js';
import { displayText } from '../../util/display-text.js';
import { fsyncDirectory, writeFileAtomic } from '../../util/durable.js';
import { type HeldFileLock, lockHolderPid, tryExclusiveFileLock } from '../../util/file-lock.js';

export interface JournalRecord {
  /** Source folder, UIDVALIDITY (decimal), UID. */
  f: string;
  v: string;
  u: number;
  /** Destination folder, its UIDVALIDITY and the message's UID there, when the server said (UIDPLUS). */
  df: string;
  dv?: string;
  du?: number;
  /** `copied` by this tool, or found `present` at the destination by identity. */
  s: 'copied' | 'present';
}

const PAIR_FILE = 'pair.json';
const JOURNAL_FILE = 'journal.jsonl';
/** Locked by the run writing this state: two runs appending to one journal would copy messages twice. */
const LOCK_FILE = 'lock';
/** Longest time a written journal line waits for its flush to disk. */
const SYNC_INTERVAL_MS = 1000;

/** `$XDG_STATE_HOME/mailbridge/migrate/<pair>` (else `~/.local/state/…`), one folder per pair. */
export function defaultStateDir(
  from: string,
  to: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): string {
  const base = env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  return join(base, 'mailbridge', 'migrate', pairFolderName(from, to));
}

/** The pair's folder name: readable, and unique through a hash of both endpoints. */
export function pairFolderName(from: string, to: string): string {
  const readable = `${from}--${to}`.replace(/[^A-Za-z0-9@._-]+/g, '_').slice(0, 120);
  const hash = createHash('sha256').update(`${from}\n${to}`).digest('hex').slice(0, 10);
  return `${readable}-${hash}`;
}

export class MigrationState {
  private readonly done = new Map<string, Set<number>>();
  private readonly destNext = new Map<string, number>();
  /** Per destination folder: each destination UID and the source message key it stands for. */
  private readonly destUids = new Map<string, Map<number, { f: string; v: string }>>();
  private readonly folders = new Set<string>();
  /** Per source folder and UIDVALIDITY: source UID → where the message is at the destination. */
  private readonly placed = new Map<string, Map<number, { df: string; dv: string; du: number }>>();

  private constructor(
    readonly dir: string,
    private readonly journal: FileHandle | undefined,
    private readonly lock?: HeldFileLock,
  ) {}

  /**
   * Opens (creating it unless `readOnly`) the state folder of `from` → `to`,
   * locked for this process until `close()` unless `readOnly` (a dry run
   * reads whole journal lines only, so a run writing meanwhile does not harm it).
   * @throws ConfigurationError MIGRATE_STATE_MISMATCH when it belongs to another pair
   * @throws MailbridgeError MIGRATE_STATE_LOCKED when another run holds it
   */
  static async open(
    dir: string,
    pair: { from: string; to: string },
    options: { readOnly?: boolean } = {},
  ): Promise<MigrationState> {
    let lock: HeldFileLock | undefined;
    try {
      const known = await readFile(join(dir, PAIR_FILE), 'utf8').then(
        (text) => JSON.parse(text) as { from?: string; to?: string },
        (error: NodeJS.ErrnoException) => {
          if (error.code === 'ENOENT') return undefined;
          throw error;
        },
      );
      if (known && (known.from !== pair.from || known.to !== pair.to)) {
        throw new ConfigurationError({
          code: 'MIGRATE_STATE_MISMATCH',
          message: `The state folder ${displayText(dir)} belongs to ${displayText(String(known.from))} → ${displayText(String(known.to))}, not to this migration`,
          remedy: 'Give each pair of mailboxes its own --state folder (or leave --state out).',
        });
      }
      if (!options.readOnly) {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        lock = await lockState(dir);
      }
      const text = await readFile(join(dir, JOURNAL_FILE), 'utf8').catch(
        (error: NodeJS.ErrnoException) => {
          if (error.code === 'ENOENT') return '';
          throw error;
        },
      );
      const end = text.lastIndexOf('\n') + 1;
      if (options.readOnly) {
        const state = new MigrationState(dir, undefined);
        state.load(text.slice(0, end));
        return state;
      }
      if (!known) {
        await writeFileAtomic(join(dir, PAIR_FILE), `${JSON.stringify(pair)}\n`, dir);
      }
      // A crash can leave a last line without its newline: drop it before appending after it.
      if (end < Buffer.byteLength(text))
        await truncate(join(dir, JOURNAL_FILE), Buffer.byteLength(text.slice(0, end)));
      const journal = await open(join(dir, JOURNAL_FILE), 'a', 0o600);
      if (text === '') await fsyncDirectory(dir);
      const state = new MigrationState(dir, journal, lock);
      state.load(text.slice(0, end));
      return state;
    } catch (error) {
      await lock?.release();
      throw stateError(dir, error);
    }
  }

  private load(text: string): void {
    for (const line of text.split('\n')) {
      if (line === '') continue;
      let record: JournalRecord;
      try {
        record = JSON.parse(line) as JournalRecord;
      } catch {
        // Only a damaged disk makes a whole line unreadable; the identity check covers what it held.
        continue;
      }
      this.remember(record);
    }
  }

  private remember(record: JournalRecord): void {
    const key = folderKey(record.f, record.v);
    let uids = this.done.get(key);
    if (!uids) {
      uids = new Set();
      this.done.set(key, uids);
    }
    uids.add(record.u);
    this.folders.add(record.f);
    if (record.dv !== undefined && record.du !== undefined) {
      const dest = folderKey(record.df, record.dv);
      this.destNext.set(dest, Math.max(this.destNext.get(dest) ?? 0, record.du + 1));
      let taken = this.destUids.get(dest);
      if (!taken) {
        taken = new Map();
        this.destUids.set(dest, taken);
      }
      taken.set(record.du, { f: record.f, v: record.v });
      let placed = this.placed.get(key);
      if (!placed) {
        placed = new Map();
        this.placed.set(key, placed);
      }
      placed.set(record.u, { df: record.df, dv: record.dv, du: record.du });
    }
  }

  /** Source UIDs already at the destination, for this folder and UIDVALIDITY. */
  copied(folder: string, uidValidity: string): ReadonlySet<number> {
    return this.done.get(folderKey(folder, uidValidity)) ?? new Set();
  }

  /**
   * Source UIDs already in destination folder `destination`: those `copied`
   * less the ones placed in another folder, which a changed `--map` now sends
   * here. A message copied without a known place counts as here.
   */
  copiedInto(folder: string, uidValidity: string, destination: string): ReadonlySet<number> {
    const done = this.copied(folder, uidValidity);
    const placed = this.placements(folder, uidValidity);
    const elsewhere = [...placed].filter(([, p]) => p.df !== destination);
    if (elsewhere.length === 0) return done;
    const here = new Set(done);
    for (const [uid] of elsewhere) here.delete(uid);
    return here;
  }

  /**
   * Where each message of this source folder went (destination folder,
   * UIDVALIDITY, UID), for those whose destination UID the server told
   * (APPENDUID) or the identity check found.
   */
  placements(
    folder: string,
    uidValidity: string,
  ): ReadonlyMap<number, { df: string; dv: string; du: number }> {
    return this.placed.get(folderKey(folder, uidValidity)) ?? new Map();
  }

  /**
   * Forgets, for this run, the source messages placed in destination folder
   * `folder` under another UIDVALIDITY than `uidValidity` (any, when
   * undefined: the folder is gone): the folder was deleted, or deleted and
   * made again, and they are no longer there. They are planned again, and
   * the identity check keeps what is back in the folder from being doubled.
   * @returns how many were forgotten
   */
  forgetDestination(folder: string, uidValidity: string | undefined): number {
    let forgotten = 0;
    for (const [key, placed] of this.placed) {
      for (const [uid, p] of placed) {
        if (p.df !== folder || p.dv === uidValidity) continue;
        placed.delete(uid);
        if (this.done.get(key)?.delete(uid)) forgotten++;
      }
    }
    return forgotten;
  }

  /** Whether the journal knows the folder at all (under any UIDVALIDITY). */
  knowsFolder(folder: string): boolean {
    return this.folders.has(folder);
  }

  /** The destination folder's UIDNEXT as of the last message this state put there. */
  destinationUidNext(folder: string, uidValidity: string): number | undefined {
    return this.destNext.get(folderKey(folder, uidValidity));
  }

  /**
   * Destination UIDs this state accounts for: they stand for no other source
   * message. Those of `replanned` under an older UIDVALIDITY are left out:
   * that folder was recreated, and its messages are matched afresh.
   */
  destinationUids(
    folder: string,
    uidValidity: string,
    replanned?: { source: string; uidValidity: string },
  ): ReadonlySet<number> {
    const uids = new Set<number>();
    for (const [uid, from] of this.destUids.get(folderKey(folder, uidValidity)) ?? []) {
      if (replanned && from.f === replanned.source && from.v !== replanned.uidValidity) continue;
      uids.add(uid);
    }
    return uids;
  }

  /**
   * Appends a line; written (a killed process keeps it) before returning.
   * Lines recorded while a write runs go out together in the next one (a
   * group commit). The disk flush that makes them survive a power cut comes
   * at most once a second and at close, not per write: a flush per group
   * cost the client more CPU than anything but parsing the FETCHes, and a
   * journal that lost its last lines is safe, since the destination's UIDNEXT
   * then runs ahead of it and the identity check finds those messages.
   */
  async record(record: JournalRecord): Promise<void> {
    const journal = this.journal;
    if (!journal) throw new Error('state opened read-only');
    await new Promise<void>((resolve, reject) => {
      this.unflushed.push({ line: `${JSON.stringify(record)}\n`, resolve, reject });
      if (!this.flushing) this.flushing = this.flush(journal);
    });
    this.remember(record);
  }

  private readonly unflushed: {
    line: string;
    resolve: () => void;
    reject: (e: unknown) => void;
  }[] = [];
  private flushing: Promise<void> | undefined;
  /** The next datasync, once lines were written since the last. */
  private syncTimer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> = Promise.resolve();

  private async flush(journal: FileHandle): Promise<void> {
    // Lines recorded in the same tick join the first group.
    await Promise.resolve();
    while (this.unflushed.length > 0) {
      const group = this.unflushed.splice(0);
      try {
        await journal.write(group.map((g) => g.line).join(''));
        for (const g of group) g.resolve();
        if (!this.syncTimer) {
          this.syncTimer = setTimeout(() => this.sync(journal), SYNC_INTERVAL_MS);
          this.syncTimer.unref();
        }
      } catch (error) {
        const failure = stateError(this.dir, error);
        for (const g of group) g.reject(failure);
      }
    }
    this.flushing = undefined;
  }

  private sync(journal: FileHandle): void {
    this.syncTimer = undefined;
    // A failed flush loses nothing a rerun cannot find again by identity; close() reports it.
    this.syncing = this.syncing.then(() => journal.datasync()).catch(() => {});
  }

  async close(): Promise<void> {
    const journal = this.journal;
    try {
      if (journal) {
        clearTimeout(this.syncTimer);
        this.syncTimer = undefined;
        await this.flushing;
        await this.syncing;
        await journal.datasync().catch((error: unknown) => {
          throw stateError(this.dir, error);
        });
      }
    } finally {
      await journal?.close();
      await this.lock?.release();
    }
  }
}

async function lockState(dir: string): Promise<HeldFileLock> {
  const path = join(dir, LOCK_FILE);
  const lock = await tryExclusiveFileLock(path);
  if (lock) return lock;
  const pid = await lockHolderPid(path);
  throw new MailbridgeError({
    code: 'MIGRATE_STATE_LOCKED',
    message: `The state folder ${displayText(dir)} is in use by ${pid ? `process ${pid}` : 'another process'}, a migration of this pair running now`,
    remedy: `Run one migration per pair at a time: wait for the other to finish${pid ? ` or stop it (kill -TERM ${pid})` : ''}, then run again; it continues where that one stopped.`,
  });
}

function folderKey(folder: string, uidValidity: string): string {
  return `${uidValidity}\0${folder}`;
}

function stateError(dir: string, error: unknown): MailbridgeError {
  if (error instanceof MailbridgeError) return error;
  const err = error as NodeJS.ErrnoException;
  return new MailbridgeError({
    code: 'MIGRATE_STATE_FAILED',
    message: `The migration state in ${displayText(dir)} cannot be read or written (${err.code ?? err.message})`,
    remedy:
      'Fix the cause (disk full, permissions, --state pointing at a file), then run again: it continues where it stopped.',
    cause: error,
  });
}
