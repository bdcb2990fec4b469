/**
 * `migrate --from archive:DIR`: a folder written by `mailbridge archive`
 * read as a source mailbox. Each archived folder is listed as a folder of
 * the source, each manifest line as a message with its UIDVALIDITY, UID,
 * flags and INTERNALDATE, so the state journal, the identity check and the
 * folder plan work exactly as they do between two IMAP servers.
 *
 * The copy engine asks a source for a handful of IMAP operations (LIST,
 * SELECT, UID SEARCH, UID FETCH of FLAGS/INTERNALDATE/RFC822.SIZE, BODY[] and
 * header fields, partial BODY[]); this module answers those from the
 * manifest and the .eml files, through the same session interface, so the
 * engine has one code path for both kinds of source.
 *
 * Every file is checked against its manifest line (SHA-256 and size) as it is
 * read: a missing or altered file is not sent and is reported per message
 * (`takeDamaged`), the rest of the folder goes on.
 */
import { createHash } from 'node:crypto';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type {
  FetchMessageObject,
  FetchQueryObject,
  ImapFlow,
  ListResponse,
  MailboxObject,
  SearchObject,
} from 'imapflow';
import { specialUse } from 'imapflow/lib/special-use.js';
import type { ImapSession, ImapSessionStats } from '../../clients/imap-session.js';
import { ConfigurationError } from '../../errors.js';
import { type Logger, silentLogger } from '../../log/logger.js';
import { displayText } from '../../util/display-text.js';
import { type ArchivedMessage, readManifest } from '../mailbox-read/archive-manifest.js';
import { MANIFEST_FILE } from '../mailbox-read/archive-paths.js';
import { hashFile } from '../mailbox-read/file-hash.js';
import type { SkippedMessage } from './copy-folder.js';

/** Exchange Online's hierarchy delimiter: the archive keeps folder paths as the server listed them. */
const ARCHIVE_DELIMITER = '/';

/** One archived folder as restore sees it: its newest UIDVALIDITY and that generation's messages. */
interface ArchivedFolder {
  path: string;
  uidValidity: number;
  messages: Map<number, ArchivedMessage>;
  /** Ascending. */
  uids: number[];
  specialUse?: string;
}

/** The manifest of one mailbox's archive folder, read once for every connection of the run. */
export class ArchiveSource {
  private loaded: Promise<Map<string, ArchivedFolder>> | undefined;
  private readonly damaged = new Map<string, SkippedMessage[]>();

  constructor(
    /** The mailbox's archive folder (it holds manifest.jsonl). */
    readonly dir: string,
    private readonly logger: Logger = silentLogger,
  ) {}

  /** The folders, read on first use; ConfigurationError when DIR is not one mailbox's archive. */
  folders(): Promise<Map<string, ArchivedFolder>> {
    this.loaded ??= loadArchive(this.dir, this.logger);
    return this.loaded;
  }

  /** Messages of `folder` whose file was missing or altered, each once; they were not sent. */
  takeDamaged(folder: string): SkippedMessage[] {
    const found = this.damaged.get(folder) ?? [];
    this.damaged.delete(folder);
    return found.sort((a, b) => a.uid - b.uid);
  }

  /** A session over the archive: what the copy engine asks of a source mailbox. */
  session(): ImapSession {
    let selected: MailboxObject | undefined;
    let folder: ArchivedFolder | undefined;
    const current = (): ArchivedFolder => {
      if (!folder) throw new Error('archive source: no folder selected');
      return folder;
    };
    const reader: Pick<ImapFlow, 'list' | 'search' | 'fetchAll' | 'fetchOne'> = {
      list: async () => [...(await this.folders()).values()].map(listEntry),
      search: async (query: SearchObject) => {
        const since = query.since ? new Date(query.since).getTime() : undefined;
        return [...current().messages.values()]
          .filter(
            (m) =>
              since === undefined ||
              receivedAt(m) === undefined ||
              (receivedAt(m) as number) >= since,
          )
          .map((m) => m.uid);
      },
      fetchAll: async (range: string, query: FetchQueryObject) => {
        const out: FetchMessageObject[] = [];
        const from = current();
        for (const [seq, m] of uidsIn(from, range)) {
          const found = await this.fetched(from, m, seq, query);
          if (found) out.push(found);
        }
        return out;
      },
      fetchOne: async (uid: string, query: FetchQueryObject) => {
        const from = current();
        const [hit] = uidsIn(from, uid);
        if (!hit) return false;
        const [seq, m] = hit;
        const range = typeof query.source === 'object' ? query.source : undefined;
        if (!range) return (await this.fetched(from, m, seq, query)) ?? false;
        const start = range.start ?? 0;
        // A large message is checked as a whole once, before its first piece is handed out.
        if (start === 0 && !(await this.intact(from, m, () => hashFile(this.file(m))))) {
          return false;
        }
        const piece = await readRange(this.file(m), start, range.maxLength ?? m.size);
        return piece === undefined ? false : { seq, uid: m.uid, source: piece };
      },
    };
    const stats: ImapSessionStats = { connects: 0, tokenRenewals: 0, retries: 0, throttledMs: 0 };
    return {
      mailbox: `archive:${this.dir}`,
      run: (operation) => operation(reader as ImapFlow),
      open: async (path) => {
        const found = (await this.folders()).get(path);
        if (!found) throw new Error(`archive source: no folder ${path}`);
        folder = found;
        selected = mailboxObject(found);
        return selected;
      },
      get selected() {
        return selected;
      },
      stats,
      close: async () => {},
    };
  }

  private file(m: ArchivedMessage): string {
    return join(this.dir, ...m.path.split('/'));
  }

  /** The FETCH answer for one message; undefined when its file is missing or altered. */
  private async fetched(
    folder: ArchivedFolder,
    m: ArchivedMessage,
    seq: number,
    query: FetchQueryObject,
  ): Promise<FetchMessageObject | undefined> {
    const out: FetchMessageObject = { seq, uid: m.uid };
    if (query.flags) out.flags = new Set(m.flags ?? []);
    if (query.internalDate && m.internalDate) out.internalDate = new Date(m.internalDate);
    if (query.size) out.size = m.size;
    if (query.source || query.headers) {
      let raw: Buffer | undefined;
      const ok = await this.intact(folder, m, async () => {
        raw = await readFile(this.file(m));
        return { sha256: createHash('sha256').update(raw).digest('hex'), size: raw.length };
      });
      if (!ok || !raw) return undefined;
      if (query.source) out.source = raw;
      // The whole header block: the identity reads only its own fields from it.
      else out.headers = raw.subarray(0, headerEnd(raw));
    }
    return out;
  }

  /** Whether the file is as its manifest line says; records it as damaged when it is not. */
  private async intact(
    folder: ArchivedFolder,
    m: ArchivedMessage,
    hash: () => Promise<{ sha256: string; size: number }>,
  ): Promise<boolean> {
    let reason: string;
    try {
      const found = await hash();
      if (found.sha256 === m.sha256 && found.size === m.size) return true;
      reason = `the archive's file ${m.path} does not match its manifest line (SHA-256 or size differ): it was altered or damaged`;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === undefined) throw error;
      reason =
        code === 'ENOENT'
          ? `the archive's file ${m.path} is missing`
          : `the archive's file ${m.path} cannot be read (${code})`;
    }
    this.logger.log('warn', 'an archived message cannot be restored', {
      folder: folder.path,
      uid: m.uid,
      file: m.path,
    });
    const list = this.damaged.get(folder.path) ?? [];
    if (!list.some((d) => d.uid === m.uid))
      list.push({ uid: m.uid, size: m.size, reason: displayText(reason) });
    this.damaged.set(folder.path, list);
    return false;
  }
}

async function loadArchive(dir: string, logger: Logger): Promise<Map<string, ArchivedFolder>> {
  await checkArchiveDir(dir);
  const byFolder = new Map<string, Map<number, { messages: ArchivedMessage[]; newest: string }>>();
  const read = await readManifest(join(dir, MANIFEST_FILE), (record) => {
    let generations = byFolder.get(record.folder);
    if (!generations) {
      generations = new Map();
      byFolder.set(record.folder, generations);
    }
    let generation = generations.get(record.uidValidity);
    if (!generation) {
      generation = { messages: [], newest: '' };
      generations.set(record.uidValidity, generation);
    }
    generation.messages.push(record);
    if (record.archivedAt > generation.newest) generation.newest = record.archivedAt;
  });
  if (read.problems.length > 0) {
    logger.log('warn', 'archive manifest lines that are not sound records are left out', {
      manifest: join(dir, MANIFEST_FILE),
      lines: read.problems.length,
    });
  }
  const folders = new Map<string, ArchivedFolder>();
  const usesTaken = new Set<string>();
  for (const [path, generations] of [...byFolder].sort(([a], [b]) => (a < b ? -1 : 1))) {
    // A folder archived under several UIDVALIDITYs (recreated on the server): its newest
    // generation is the folder as it is now; the older ones mostly hold the same messages.
    const [uidValidity, chosen] = [...generations].sort(([, a], [, b]) =>
      a.newest < b.newest ? 1 : -1,
    )[0] as [number, { messages: ArchivedMessage[] }];
    if (generations.size > 1) {
      logger.log('warn', 'folder archived under several UIDVALIDITYs: restoring the newest', {
        folder: path,
        uidValidity,
        left: [...generations].reduce(
          (n, [uv, g]) => (uv === uidValidity ? n : n + g.messages.length),
          0,
        ),
      });
    }
    const messages = new Map(
      chosen.messages.sort((a, b) => a.uid - b.uid).map((m) => [m.uid, m] as const),
    );
    const use = specialUseOf(path);
    const folder: ArchivedFolder = { path, uidValidity, messages, uids: [...messages.keys()] };
    // As imapflow names them on a server without SPECIAL-USE: the first folder of each use.
    if (use && !usesTaken.has(use)) {
      usesTaken.add(use);
      folder.specialUse = use;
    }
    folders.set(path, folder);
  }
  return folders;
}

/** A folder written by `mailbridge archive` for one mailbox, or a ConfigurationError saying what DIR is. */
async function checkArchiveDir(dir: string): Promise<void> {
  const shown = displayText(dir);
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw notAnArchive(
      `archive:${shown} is not a folder`,
      'Give the folder `mailbridge archive --out DIR` wrote for the mailbox: archive:DIR/ADDRESS.',
    );
  }
  if ((await stat(join(dir, MANIFEST_FILE)).catch(() => undefined))?.isFile()) return;
  const mailboxes: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    if ((await stat(join(dir, entry.name, MANIFEST_FILE)).catch(() => undefined))?.isFile()) {
      mailboxes.push(entry.name);
    }
  }
  if (mailboxes.length > 0) {
    const named = mailboxes.slice(0, 5).map((m) => displayText(join(dir, m)));
    throw notAnArchive(
      `archive:${shown} holds the archives of ${mailboxes.length} mailbox(es), and migrate restores one mailbox at a time`,
      `Give one mailbox's folder: ${named.map((m) => `archive:${m}`).join(', ')}${mailboxes.length > 5 ? ', …' : ''}.`,
    );
  }
  throw notAnArchive(
    `archive:${shown} has no ${MANIFEST_FILE}: it is not a folder written by mailbridge archive`,
    `Give the mailbox's folder that \`mailbridge archive --out DIR\` wrote (it holds ${MANIFEST_FILE}): archive:DIR/ADDRESS.`,
  );
}

function notAnArchive(message: string, remedy: string): ConfigurationError {
  return new ConfigurationError({ code: 'MIGRATE_ARCHIVE_INVALID', message, remedy });
}

/** The use imapflow gives a top-level folder of this exact name (Sent Items, Gesendet…), if any. */
function specialUseOf(path: string): string | undefined {
  if (path.includes(ARCHIVE_DELIMITER) || path.toUpperCase() === 'INBOX') return undefined;
  const found = specialUse(false, { name: path, flags: new Set() });
  return found.flag && found.source === 'name' ? found.flag : undefined;
}

function listEntry(folder: ArchivedFolder): ListResponse {
  const parts = folder.path.split(ARCHIVE_DELIMITER);
  return {
    path: folder.path,
    pathAsListed: folder.path,
    name: parts[parts.length - 1] ?? folder.path,
    delimiter: ARCHIVE_DELIMITER,
    parent: parts.slice(0, -1),
    parentPath: parts.slice(0, -1).join(ARCHIVE_DELIMITER),
    flags: new Set(),
    ...(folder.specialUse ? { specialUse: folder.specialUse } : {}),
    listed: true,
    subscribed: true,
  };
}

function mailboxObject(folder: ArchivedFolder): MailboxObject {
  const last = folder.uids[folder.uids.length - 1] ?? 0;
  return {
    path: folder.path,
    delimiter: ARCHIVE_DELIMITER,
    flags: new Set(),
    uidValidity: BigInt(folder.uidValidity),
    uidNext: last + 1,
    exists: folder.messages.size,
    readOnly: true,
  };
}

/** When the message was received, for `--since`: INTERNALDATE, unknown for lines recovered without it. */
function receivedAt(m: ArchivedMessage): number | undefined {
  return m.internalDate ? new Date(m.internalDate).getTime() : undefined;
}

/** The folder's messages a UID set names (`1:3,7`, `5:*`), with their sequence numbers. */
function uidsIn(folder: ArchivedFolder, range: string): [number, ArchivedMessage][] {
  const uids = folder.uids;
  const last = uids[uids.length - 1] ?? 0;
  const out: [number, ArchivedMessage][] = [];
  for (const part of range.split(',')) {
    const [a, b = a] = part.split(':').map((n) => (n === '*' ? last : Number(n)));
    const lo = Math.min(a as number, b as number);
    const hi = Math.max(a as number, b as number);
    for (let i = firstAtLeast(uids, lo); i < uids.length && (uids[i] as number) <= hi; i++) {
      out.push([i + 1, folder.messages.get(uids[i] as number) as ArchivedMessage]);
    }
  }
  return out;
}

/** Index of the first UID not below `uid` (binary search: folders can be large). */
function firstAtLeast(uids: readonly number[], uid: number): number {
  let lo = 0;
  let hi = uids.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((uids[mid] as number) < uid) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function headerEnd(raw: Buffer): number {
  const crlf = raw.indexOf('\r\n\r\n');
  return crlf >= 0 ? crlf + 4 : raw.length;
}

async function readRange(file: string, start: number, length: number): Promise<Buffer | undefined> {
  const handle = await open(file, 'r').catch(() => undefined);
  if (!handle) return undefined;
  try {
    const buffer = Buffer.allocUnsafe(length);
    const { bytesRead } = await handle.read(buffer, 0, length, start);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
