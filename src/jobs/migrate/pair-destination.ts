/**
 * A connection pair's way into the destination mailbox: its IMAP session or
 * its pipelined APPEND connection, never both at once, so that each pair
 * counts once against the mailbox's connection budget (Exchange Online takes
 * about 16 per mailbox and answers more with `BAD User is authenticated but
 * not connected`). Using the session closes the APPEND connection; asking for
 * the pipeline logs the session out, and the next use of the session opens a
 * new one. A pair that only helps with a large folder's batches thus never
 * opens a destination session at all.
 */
import type { ImapFlow, MailboxObject } from 'imapflow';
import type { AppendPipeline } from '../../clients/imap-append-pipeline.js';
import type { ImapSession, ImapSessionStats } from '../../clients/imap-session.js';
import type { AppendLane } from './append-lane.js';

export class PairDestination implements ImapSession {
  readonly mailbox: string;
  private session: ImapSession | undefined;
  /** Counts of the sessions logged out so far, so `stats` covers the pair's whole run. */
  private readonly past: ImapSessionStats = {
    connects: 0,
    tokenRenewals: 0,
    retries: 0,
    throttledMs: 0,
  };

  /** `openSession` makes another session like `first`, once the pipeline has taken its place. */
  constructor(
    first: ImapSession,
    private readonly openSession: () => ImapSession,
    private readonly lane: AppendLane | undefined,
  ) {
    this.session = first;
    this.mailbox = first.mailbox;
  }

  async run<T>(operation: (client: ImapFlow) => Promise<T>): Promise<T> {
    return (await this.live()).run(operation);
  }

  async open(path: string, options?: { readOnly?: boolean }): Promise<MailboxObject> {
    return (await this.live()).open(path, options);
  }

  get selected(): MailboxObject | undefined {
    return this.session?.selected;
  }

  get stats(): ImapSessionStats {
    const total = { ...this.past };
    if (this.session) addStats(total, this.session.stats);
    return total;
  }

  /**
   * The pipelined APPEND connection, the session logged out first; undefined
   * when this destination has none (append through the session then).
   */
  async pipeline(): Promise<AppendPipeline | undefined> {
    if (!this.lane?.available) return undefined;
    const session = this.session;
    if (session) {
      this.session = undefined;
      addStats(this.past, session.stats);
      await session.close();
    }
    return this.lane.get();
  }

  async close(): Promise<void> {
    await Promise.all([this.lane?.close(), this.session?.close()]);
  }

  private async live(): Promise<ImapSession> {
    await this.lane?.close();
    this.session ??= this.openSession();
    return this.session;
  }
}

function addStats(total: ImapSessionStats, more: ImapSessionStats): void {
  for (const key of Object.keys(total) as (keyof ImapSessionStats)[]) total[key] += more[key];
}
