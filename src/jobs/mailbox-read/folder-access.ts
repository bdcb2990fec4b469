/**
 * Operations on one selected folder through the long-session helper, which
 * reconnects, waits out throttling and selects the folder again before running
 * an operation again. Each operation first checks that the folder selected
 * again is still the one it began with (same UIDVALIDITY): UIDs mean nothing
 * across a change.
 */
import type { ImapFlow } from 'imapflow';
import type { ImapSession } from '../../clients/imap-session.js';
import type { FolderStatus } from './folder-plan.js';
import { FolderChangedError, type ReadJobTerms } from './read-errors.js';

/** A folder as selected: the job's name for it and the UIDVALIDITY every operation must still find. */
export interface FolderRef {
  path: string;
  uidValidity: number;
}

export class FolderAccess {
  constructor(
    readonly session: ImapSession,
    readonly terms: ReadJobTerms,
    /** The server's path of a folder the job knows under another name (see folder-listing.ts). */
    private readonly serverPath: (path: string) => string = (path) => path,
  ) {}

  /** Selects the folder read-only, so nothing is marked \Seen, now and after every reconnect. */
  async select(path: string): Promise<{ folder: FolderRef; status: FolderStatus }> {
    const selected = await this.session.open(this.serverPath(path), { readOnly: true });
    const status: FolderStatus = {
      uidValidity: Number(selected.uidValidity),
      uidNext: selected.uidNext,
      messages: selected.exists,
    };
    return { folder: { path, uidValidity: status.uidValidity }, status };
  }

  /**
   * Selects the folder unless this connection has it selected under that
   * UIDVALIDITY already: a connection joining another's work on the folder.
   * Under another UIDVALIDITY, `run` then refuses to go on.
   */
  async join(folder: FolderRef): Promise<void> {
    if (this.isSelected(folder)) return;
    await this.select(folder.path);
  }

  /** Runs an operation with the folder selected, refusing to go on under another UIDVALIDITY. */
  run<T>(folder: FolderRef, operation: (client: ImapFlow) => Promise<T>): Promise<T> {
    return this.session.run(async (client) => {
      if (!this.isSelected(folder)) {
        const selected = this.session.selected;
        throw new FolderChangedError({
          code: this.terms.folderChangedCode,
          message: `The UIDVALIDITY of ${folder.path} changed from ${folder.uidValidity} to ${String(selected?.uidValidity)}`,
          remedy: this.terms.folderChangedRemedy,
        });
      }
      return operation(client);
    });
  }

  private isSelected(folder: FolderRef): boolean {
    const selected = this.session.selected;
    return (
      selected !== undefined &&
      selected.path === this.serverPath(folder.path) &&
      Number(selected.uidValidity) === folder.uidValidity
    );
  }
}
