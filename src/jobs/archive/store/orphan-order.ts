import type { OrphanFile } from './types.js';

/** Orphans by folder, then UIDVALIDITY and UID: the order they are recorded in. */
export function compareOrphans(a: OrphanFile, b: OrphanFile): number {
  if (a.folder !== b.folder) return a.folder < b.folder ? -1 : 1;
  return a.uidValidity - b.uidValidity || a.uid - b.uid;
}
