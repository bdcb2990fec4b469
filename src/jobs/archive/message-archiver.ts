/**
 * Stores messages of a folder selected on one connection: each into a temp
 * file, flushed, renamed into place in UID order, then its manifest line
 * queued in its turn (part-lines.ts).
 */
import type { MessageInfo } from '../mailbox-read/message-info.js';
import { downloadInPieces } from '../mailbox-read/partial-download.js';
import { fetchWholeInOrder } from '../mailbox-read/whole-fetch.js';
import type { ManifestRecord } from './manifest.js';
import { createMetadataParser, type MessageMetadata, parseMessageMetadata } from './metadata.js';
import { messagePath } from './paths.js';
import type { ArchiveRunContext, ArchivingFolder } from './run-context.js';
import type { PartialMessage, WrittenFile } from './store/types.js';

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
/** Each of several connections takes its share of those, at least this many files. */
const STORE_MIN_CONCURRENCY = 4;

interface Prepared {
  partial: PartialMessage;
  metadata: MessageMetadata;
}

interface Placed {
  path: string;
  written: WrittenFile;
  metadata: MessageMetadata;
}

/**
 * Small messages, several per FETCH (see fetchWholeInOrder). Each is written
 * to a temp file and flushed (fdatasync) while the answer streams in, and
 * parsed meanwhile; the renames into place stay in UID order, each followed
 * by its record, so with one connection the files in place are always every
 * message up to some UID. (With several, another part's may be missing below
 * them: orphans never move the checkpoint, so the next run fetches those.)
 * The files flushed at once are shared between the connections.
 */
export function archiveWholeMessages(
  run: ArchiveRunContext,
  folder: ArchivingFolder,
  uids: number[],
  infos: Map<number, MessageInfo>,
): Promise<void> {
  const share = run.connections.size;
  return fetchWholeInOrder<Prepared, Placed>(
    folder.access,
    folder,
    uids,
    {
      prepare: (uid, source) => prepareWhole(run, source, pathOf(folder, uid)),
      place: async (uid, prepared) => {
        const path = pathOf(folder, uid);
        const written = await prepared.partial.commit(path);
        return { path, written, metadata: prepared.metadata };
      },
      record: (uid, placed) =>
        record(run, folder, uid, placed.path, placed.written, placed.metadata, infos.get(uid)),
      discard: (prepared) => prepared.partial.discard(),
      fetchSkipped: (uid) => archiveStreamedMessage(run, folder, uid, infos.get(uid)),
      checkAborted: () => run.checkAborted(),
    },
    {
      concurrency: Math.max(STORE_MIN_CONCURRENCY, Math.ceil(STORE_CONCURRENCY / share)),
      maxBytes: Math.ceil(STORE_MAX_BYTES / share),
    },
  );
}

/** Writes and flushes one message given whole into a temp file, and parses it meanwhile. */
async function prepareWhole(
  run: ArchiveRunContext,
  source: Buffer,
  path: string,
): Promise<Prepared> {
  const [partial, metadata] = await Promise.allSettled([
    run.store.prepareMessage(source, path),
    parseMessageMetadata(source),
  ]);
  if (partial.status === 'rejected') throw partial.reason;
  if (metadata.status === 'rejected') {
    await partial.value.discard();
    throw metadata.reason;
  }
  return { partial: partial.value, metadata: metadata.value };
}

/** One message in partial pieces, streamed into a temp file and parsed as it arrives. */
export async function archiveStreamedMessage(
  run: ArchiveRunContext,
  folder: ArchivingFolder,
  uid: number,
  info: MessageInfo | undefined,
): Promise<void> {
  // Lines waiting for the manifest should not wait for a long download.
  await run.batch.flush();
  const rel = pathOf(folder, uid);
  const partial = await run.store.createPartial(rel);
  // Parsed as it arrives: the file is never read back, and nothing holds the message whole.
  const parser = createMetadataParser();
  let committed = false;
  try {
    const downloaded = await downloadInPieces(folder.access, folder, uid, partial, {
      chunkBytes: run.chunkBytes,
      checkAborted: () => run.checkAborted(),
      onPiece: (piece) => parser.write(piece),
    });
    if (!downloaded) {
      folder.result.vanished++;
      return;
    }
    const written = await partial.commit(rel);
    committed = true;
    const metadata = await parser.end();
    await record(run, folder, uid, rel, written, metadata, info);
  } finally {
    if (!committed) {
      parser.abort();
      await partial.discard();
    }
  }
}

function pathOf(folder: ArchivingFolder, uid: number): string {
  return messagePath(folder.result.directory as string, folder.uidValidity, uid);
}

async function record(
  run: ArchiveRunContext,
  folder: ArchivingFolder,
  uid: number,
  path: string,
  written: WrittenFile,
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
  run.progress.done(written.size);
  await folder.queue(record);
  run.emit({
    type: 'message',
    mailbox: run.mailbox,
    folder: folder.path,
    uid,
    size: written.size,
    counts: run.progress.snapshot(),
  });
}
