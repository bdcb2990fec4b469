import { join } from 'node:path';
import { mailboxDirName } from '../paths.js';
import { LocalArchiveStore } from '../store.js';
import type { ArchiveStore } from './types.js';

/** Opens (and locks) one mailbox's archive under the directory `out`. */
export async function openArchiveStore(out: string, mailbox: string): Promise<ArchiveStore> {
  return LocalArchiveStore.open(join(out, mailboxDirName(mailbox)));
}
