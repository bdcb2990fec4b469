/**
 * `archive verify`: re-hashes every file the manifests list and walks the
 * directories for files they do not list. Run it when no archive run is
 * writing to the directory (a run in progress has files not yet recorded).
 *
 * DIR is an archive root (one directory per mailbox) or one mailbox's
 * directory (it holds `manifest.jsonl`). Paths in the report are relative to
 * DIR, `/`-separated.
 */
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type ManifestLineProblem,
  type ManifestReadResult,
  type ManifestRecord,
  readManifest,
} from './manifest.js';
import { FOLDER_INFO_FILE, LOCK_FILE, MANIFEST_FILE } from './paths.js';
import { hashFile, type WrittenFile } from './store/file-hash.js';

export interface AlteredFile {
  path: string;
  expectedSha256: string;
  actualSha256?: string;
  expectedSize: number;
  actualSize?: number;
  /** Why, when not a content change: e.g. `not a regular file`. */
  detail?: string;
}

export interface ManifestProblem {
  manifest: string;
  line: number;
  /** The line is not sound (manifest.ts's `lineProblem`: the rule the archive run uses), or it repeats a path. */
  problem: ManifestLineProblem['problem'] | 'duplicate';
  path?: string;
}

export interface VerifyReport {
  /** Nothing missing, altered, extra or wrong in a manifest. */
  ok: boolean;
  directory: string;
  /** Mailbox directories found (relative to `directory`; `.` for a mailbox directory itself). */
  mailboxes: string[];
  /** Files checked against their manifest line. */
  checked: number;
  bytes: number;
  missing: string[];
  altered: AlteredFile[];
  extra: string[];
  manifestProblems: ManifestProblem[];
  /** Manifests ending in a line cut short by a crash; the next archive run removes it. */
  tornManifests: string[];
  /** Mailbox directories with a lock file: a run is writing, or one crashed. */
  locked: string[];
}

/** What `archive --repair` needs of a missing or altered file's line. */
export type DamagedRecord = Pick<
  ManifestRecord,
  'path' | 'sha256' | 'size' | 'folder' | 'uidValidity' | 'uid'
>;

export interface VerifyOptions {
  /** Files hashed at once. @default 4 */
  concurrency?: number;
  onProgress?: (checked: number, bytes: number) => void;
  /** Called with the line of each missing or altered file. */
  onDamaged?: (record: DamagedRecord) => void;
}

type Expected = DamagedRecord;

/**
 * What `verify` reads of an archive: a directory tree (below) or a blob
 * container (store/blob-tree.ts). Mailboxes are named by their prefix:
 * `''` when the root is itself a mailbox, else `NAME/`.
 */
export interface ArchiveTree {
  /** The report's `directory`. */
  readonly location: string;
  /** The mailboxes, and everything outside any mailbox (relative paths). */
  mailboxes(): Promise<{ mailboxes: string[]; strays: string[] }>;
  readManifest(
    mailbox: string,
    onRecord: (record: ManifestRecord, line: number) => void,
  ): Promise<ManifestReadResult>;
  isLocked(mailbox: string): Promise<boolean>;
  /** The stored item's hash, or why there is none to compare. */
  hash(mailbox: string, path: string): Promise<WrittenFile | 'missing' | 'not a regular file'>;
  /** Every stored path of the mailbox (relative to it) but its manifest and lock. */
  files(mailbox: string): Promise<string[]>;
}

export async function verifyArchive(
  where: string | ArchiveTree,
  options: VerifyOptions = {},
): Promise<VerifyReport> {
  const tree = typeof where === 'string' ? directoryTree(where) : where;
  const report: VerifyReport = {
    ok: false,
    directory: tree.location,
    mailboxes: [],
    checked: 0,
    bytes: 0,
    missing: [],
    altered: [],
    extra: [],
    manifestProblems: [],
    tornManifests: [],
    locked: [],
  };
  const { mailboxes, strays } = await tree.mailboxes();
  for (const mailbox of mailboxes) await verifyMailbox(tree, mailbox, report, options);
  // Not in a mailbox: unaccounted for.
  report.extra.push(...strays);
  report.missing.sort();
  report.extra.sort();
  report.altered.sort((a, b) => (a.path < b.path ? -1 : 1));
  report.ok =
    report.missing.length === 0 &&
    report.altered.length === 0 &&
    report.extra.length === 0 &&
    report.manifestProblems.length === 0;
  return report;
}

async function verifyMailbox(
  tree: ArchiveTree,
  prefix: string,
  report: VerifyReport,
  options: VerifyOptions,
): Promise<void> {
  const name = prefix === '' ? '.' : prefix.slice(0, -1);
  report.mailboxes.push(name);
  const manifestName = `${prefix}${MANIFEST_FILE}`;
  const expected = new Map<string, Expected>();
  const duplicates: ManifestProblem[] = [];
  const read = await tree.readManifest(prefix, (record, line) => {
    if (expected.has(record.path)) {
      duplicates.push({
        manifest: manifestName,
        line,
        problem: 'duplicate',
        path: `${prefix}${record.path}`,
      });
      return;
    }
    const { path, sha256, size, folder, uidValidity, uid } = record;
    expected.set(path, { path, sha256, size, folder, uidValidity, uid });
  });
  const problems: ManifestProblem[] = [
    ...duplicates,
    ...read.problems.map((problem) => ({ manifest: manifestName, ...problem })),
  ];
  report.manifestProblems.push(...problems.sort((a, b) => a.line - b.line));
  if (read.tornBytes > 0) report.tornManifests.push(manifestName);
  if (await tree.isLocked(prefix)) report.locked.push(name);

  const queue = [...expected.values()];
  const worker = async () => {
    for (;;) {
      const item = queue.shift();
      if (!item) return;
      if (!(await checkFile(tree, prefix, item, report))) options.onDamaged?.(item);
      options.onProgress?.(report.checked, report.bytes);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 4) }, worker));

  // Everything stored that no line accounts for; each folder's folder.json is the archive's own.
  for (const path of await tree.files(prefix)) {
    if (expected.has(path)) continue;
    const [top, second, ...more] = path.split('/');
    if (second === FOLDER_INFO_FILE && more.length === 0 && !top?.startsWith('.')) continue;
    report.extra.push(`${prefix}${path}`);
  }
}

/** Whether the stored item is there and as its line says. */
async function checkFile(
  tree: ArchiveTree,
  prefix: string,
  item: Expected,
  report: VerifyReport,
): Promise<boolean> {
  const shown = `${prefix}${item.path}`;
  const found = await tree.hash(prefix, item.path);
  if (found === 'missing') {
    report.missing.push(shown);
    return false;
  }
  if (found === 'not a regular file') {
    report.altered.push({
      path: shown,
      expectedSha256: item.sha256,
      expectedSize: item.size,
      detail: found,
    });
    return false;
  }
  const { sha256, size } = found;
  report.checked++;
  report.bytes += size;
  if (sha256 !== item.sha256 || size !== item.size) {
    report.altered.push({
      path: shown,
      expectedSha256: item.sha256,
      actualSha256: sha256,
      expectedSize: item.size,
      actualSize: size,
    });
    return false;
  }
  return true;
}

/** An archive directory, or one mailbox's directory (it holds `manifest.jsonl`). */
function directoryTree(directory: string): ArchiveTree {
  const dirOf = (mailbox: string) => join(directory, ...mailbox.split('/').filter(Boolean));
  return {
    location: directory,
    async mailboxes() {
      if (await isFile(join(directory, MANIFEST_FILE))) return { mailboxes: [''], strays: [] };
      const mailboxes: string[] = [];
      const strays: string[] = [];
      for (const entry of await readdir(directory, { withFileTypes: true })) {
        if (entry.isDirectory() && (await isFile(join(directory, entry.name, MANIFEST_FILE)))) {
          mailboxes.push(`${entry.name}/`);
        } else {
          await walkFiles(join(directory, entry.name), entry.name, entry.isDirectory(), (p) =>
            strays.push(p),
          );
        }
      }
      return { mailboxes, strays };
    },
    readManifest: (mailbox, onRecord) =>
      readManifest(join(dirOf(mailbox), MANIFEST_FILE), onRecord),
    isLocked: (mailbox) => isFile(join(dirOf(mailbox), LOCK_FILE)),
    async hash(mailbox, path) {
      const file = join(dirOf(mailbox), ...path.split('/'));
      let info: Awaited<ReturnType<typeof lstat>>;
      try {
        info = await lstat(file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
        throw error;
      }
      return info.isFile() ? hashFile(file) : 'not a regular file';
    },
    async files(mailbox) {
      const dir = dirOf(mailbox);
      const files: string[] = [];
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        if (entry.isFile() && (entry.name === MANIFEST_FILE || entry.name === LOCK_FILE)) continue;
        await walkFiles(join(dir, entry.name), entry.name, entry.isDirectory(), (p) =>
          files.push(p),
        );
      }
      return files;
    },
  };
}

/** Calls `onFile` with every non-directory below `path` (symbolic links included, not followed). */
async function walkFiles(
  path: string,
  rel: string,
  isDirectory: boolean,
  onFile: (rel: string) => void,
): Promise<void> {
  if (!isDirectory) {
    onFile(rel);
    return;
  }
  for (const entry of await readdir(path, { withFileTypes: true })) {
    await walkFiles(join(path, entry.name), `${rel}/${entry.name}`, entry.isDirectory(), onFile);
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isFile();
  } catch {
    return false;
  }
}
