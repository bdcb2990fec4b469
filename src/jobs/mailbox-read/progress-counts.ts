/**
 * A run's counts for progress: messages and bytes done, and the messages it
 * expects, first estimated from each folder's STATUS, then replaced by each
 * folder's search result as the run gets there.
 */
import type { Logger } from '../../log/logger.js';

export interface MessageCounts {
  /** Messages done in this run so far. */
  messages: number;
  bytes: number;
  /** Messages this run expects to do (an estimate until every folder is searched). */
  estimatedMessages: number;
}

export class ProgressCounts {
  readonly counts: MessageCounts = { messages: 0, bytes: 0, estimatedMessages: 0 };
  private readonly folderEstimates = new Map<string, number>();

  /** The plan's estimate for a folder, before its search. */
  planned(folder: string, estimate: number): void {
    this.folderEstimates.set(folder, estimate);
    this.counts.estimatedMessages += estimate;
  }

  /** The search found `found` messages to do in a folder: the real count in place of the estimate. */
  searched(folder: string, found: number): void {
    const estimated = this.folderEstimates.get(folder) ?? 0;
    this.folderEstimates.set(folder, found);
    this.counts.estimatedMessages = Math.max(
      this.counts.messages + found,
      this.counts.estimatedMessages - estimated + found,
    );
  }

  done(bytes: number): void {
    this.counts.messages++;
    this.counts.bytes += bytes;
  }

  /** A copy for an event: callers may keep it. */
  snapshot(): MessageCounts {
    return { ...this.counts };
  }
}

/**
 * Calls the caller's progress callback; one that throws costs a warning, not
 * the run.
 */
export function notifyProgress<E>(
  onProgress: ((event: E) => void) | undefined,
  event: E,
  job: string,
  logger: Logger,
): void {
  try {
    onProgress?.(event);
  } catch (error) {
    logger.log('warn', `${job}: progress callback failed`, { error: (error as Error).message });
  }
}
