/**
 * Which folders of a mailbox a run reads: LIST with STATUS (one round trip
 * says which folders have anything new), the selectable ones, the job's name
 * for each, then the user's `--folder` / `--exclude` patterns.
 */
import type { ListResponse } from 'imapflow';
import type { ImapSession } from '../../clients/imap-session.js';
import type { Logger } from '../../log/logger.js';
import { displayText } from '../../util/display-text.js';
import {
  type FolderFilter,
  folderSelected,
  isSelectable,
  unmatchedPatterns,
} from './folder-filter.js';
import type { FolderStatus } from './folder-plan.js';

export interface FolderListing {
  /** Every selectable folder, under the job's names. */
  selectable: ListResponse[];
  /** Those the filter takes, in the server's order. */
  selected: ListResponse[];
  /** Include patterns that matched no folder (each logged as a warning). */
  unmatched: string[];
  /** The server's path of a folder the job knows under another name. */
  serverPath(path: string): string;
}

export interface ListFoldersOptions {
  filter: Required<FolderFilter>;
  mailbox: string;
  /** First word of the log lines: the job's name. */
  job: string;
  logger: Logger;
  /**
   * The job's name for a folder when its path will not do (the archive's for
   * names with control characters); folders are still selected by server path.
   */
  rename?: (folder: ListResponse) => string;
}

export async function listFolders(
  session: ImapSession,
  options: ListFoldersOptions,
): Promise<FolderListing> {
  const listed = await session.run((c) =>
    c.list({ statusQuery: { messages: true, uidNext: true, uidValidity: true } }),
  );
  const serverPaths = new Map<string, string>();
  const selectable = listed
    .filter((f) => isSelectable(f.flags))
    .map((f) => {
      const name = options.rename?.(f) ?? f.path;
      if (name === f.path) return f;
      serverPaths.set(name, f.path);
      return { ...f, path: name };
    });
  const selected = selectable.filter((f) => folderSelected(f.path, options.filter));
  const unmatched = unmatchedPatterns(
    selectable.map((f) => f.path),
    options.filter.include,
  );
  for (const pattern of unmatched) {
    options.logger.log('warn', `${options.job}: no folder matches`, {
      mailbox: options.mailbox,
      pattern: displayText(pattern),
    });
  }
  return {
    selectable,
    selected,
    unmatched,
    serverPath: (path) => serverPaths.get(path) ?? path,
  };
}

/** The folder's STATUS from the listing, when the server gave one. */
export function listedStatus(folder: ListResponse): FolderStatus | undefined {
  const s = folder.status;
  return s?.uidValidity !== undefined
    ? { uidValidity: Number(s.uidValidity), uidNext: s.uidNext, messages: s.messages }
    : undefined;
}
