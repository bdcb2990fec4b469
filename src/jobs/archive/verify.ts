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
import { type ManifestLineProblem, type ManifestRecord, readManifest } from './manifest.js';
import { FOLDER_INFO_FILE, LOCK_FILE, MANIFEST_FILE } from './paths.js';
import { hashFile } from './store.js';

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

export async function verifyArchive(
  directory: string,
  options: VerifyOptions = {},
): Promise<VerifyReport> {
  const report: VerifyReport = {
    ok: false,
    directory,
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
  const rootIsMailbox = await isFile(join(directory, MANIFEST_FILE));
  if (rootIsMailbox) {
    await verifyMailbox(directory, '', report, options);
  } else {
    for (const entry of await readdir(directory, { withFileTypes: true })) {
      if (entry.isDirectory() && (await isFile(join(directory, entry.name, MANIFEST_FILE)))) {
        await verifyMailbox(join(directory, entry.name), `${entry.name}/`, report, options);
      } else {
        // Not a mailbox directory: everything in it is unaccounted for.
        await walkFiles(join(directory, entry.name), `${entry.name}`, entry.isDirectory(), (p) =>
          report.extra.push(p),
        );
      }
    }
  }
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
  dir: string,
  prefix: string,
  report: VerifyReport,
  options: VerifyOptions,
): Promise<void> {
  report.mailboxes.push(prefix === '' ? '.' : prefix.slice(0, -1));
  const manifestName = `${prefix}${MANIFEST_FILE}`;
  const expected = new Map<string, Expected>();
  const duplicates: ManifestProblem[] = [];
  const read = await readManifest(join(dir, MANIFEST_FILE), (record, line) => {
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
  if (await isFile(join(dir, LOCK_FILE)))
    report.locked.push(prefix === '' ? '.' : prefix.slice(0, -1));

  const queue = [...expected.values()];
  const worker = async () => {
    for (;;) {
      const item = queue.shift();
      if (!item) return;
      if (!(await checkFile(dir, prefix, item, report))) options.onDamaged?.(item);
      options.onProgress?.(report.checked, report.bytes);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 4) }, worker));

  // Everything on disk that no line accounts for.
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const rel = entry.name;
    if (entry.isFile() && (rel === MANIFEST_FILE || rel === LOCK_FILE)) continue;
    if (!entry.isDirectory()) {
      report.extra.push(`${prefix}${rel}`);
      continue;
    }
    await walkFiles(join(dir, rel), rel, true, (path) => {
      if (expected.has(path)) return;
      if (path === `${rel}/${FOLDER_INFO_FILE}` && !rel.startsWith('.')) return;
      report.extra.push(`${prefix}${path}`);
    });
  }
}

/** Whether the file is there and as its line says. */
async function checkFile(
  dir: string,
  prefix: string,
  item: Expected,
  report: VerifyReport,
): Promise<boolean> {
  const file = join(dir, ...item.path.split('/'));
  const shown = `${prefix}${item.path}`;
  let info: Awaited<ReturnType<typeof lstat>>;
  try {
    info = await lstat(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      report.missing.push(shown);
      return false;
    }
    throw error;
  }
  if (!info.isFile()) {
    report.altered.push({
      path: shown,
      expectedSha256: item.sha256,
      expectedSize: item.size,
      detail: 'not a regular file',
    });
    return false;
  }
  const { sha256, size } = await hashFile(file);
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
