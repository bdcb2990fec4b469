import { join } from 'node:path';
import { mailboxDirName } from '../paths.js';
import { LocalArchiveStore } from '../store.js';
import { isBlobTarget, parseBlobLocation } from './blob-location.js';
import type { ArchiveStore } from './types.js';

/**
 * Opens (and locks) one mailbox's archive under `out`: a directory, or a
 * blob container URL (blob-location.ts). The blob store and its SDK load
 * only when a URL asks for them: they take most of a second to import.
 */
export async function openArchiveStore(out: string, mailbox: string): Promise<ArchiveStore> {
  if (!isBlobTarget(out)) return LocalArchiveStore.open(join(out, mailboxDirName(mailbox)));
  const location = parseBlobLocation(out);
  const { BlobArchiveStore } = await import('./blob-store.js');
  return BlobArchiveStore.open(location, mailbox);
}
