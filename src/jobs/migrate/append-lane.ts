/**
 * The pipelined APPEND connection of one connection pair, opened when first
 * needed and again after it failed or its token is about to run out. When it
 * cannot be had (the server lacks LITERAL+ or SASL-IR, a STARTTLS endpoint,
 * three failed opens in a row), the pair appends through its session, one
 * message at a time, as before. While open it holds one of the mailbox's
 * connection slots, as a session does: the budget counts it.
 */

import type { TokenProvider } from '../../auth/token-provider.js';
import type { ConnectionSlots } from '../../clients/connection-limit.js';
import { AppendPipeline, type AppendPipelineOptions } from '../../clients/imap-append-pipeline.js';
import type { MailbridgeConfig } from '../../config/types.js';
import type { Logger } from '../../log/logger.js';
import type { PasswordImapEndpoint } from './endpoint.js';
import { type ImapCredential, loginOf } from './password-session.js';

/** What opening needs, fetched anew each time (a fresh token); undefined when this endpoint has no pipeline. */
export type PipelineSettings = () => Promise<
  { options: AppendPipelineOptions; renewAt?: Date } | undefined
>;

const MAX_FAILED_OPENS = 3;

/** The mailbox's connection slot a lane holds while its connection is open, as a session's. */
export interface LaneSlot {
  key: string;
  limit: number;
  slots: ConnectionSlots;
}

export class AppendLane {
  private current: { pipeline: AppendPipeline; renewAt?: Date } | undefined;
  private release: (() => void) | undefined;
  private failedOpens = 0;
  private disabled = false;

  constructor(
    private readonly settings: PipelineSettings,
    private readonly slot: LaneSlot,
    private readonly logger: Logger,
  ) {}

  /** False once the pipeline cannot be had: the pair appends through its session from then on. */
  get available(): boolean {
    return !this.disabled;
  }

  /** A usable pipeline, or undefined: append through the session. */
  async get(): Promise<AppendPipeline | undefined> {
    const current = this.current;
    if (current?.pipeline.usable && (!current.renewAt || current.renewAt.getTime() > Date.now())) {
      return current.pipeline;
    }
    // Gone before its slot goes to the next connection; what it has in flight is answered first.
    await this.close();
    if (this.disabled) return undefined;
    this.release = await this.slot.slots.acquire(this.slot.key, this.slot.limit);
    try {
      const settings = await this.settings();
      const pipeline = settings ? await AppendPipeline.open(settings.options) : undefined;
      if (!pipeline) {
        this.disabled = true;
        this.giveBackSlot();
        return undefined;
      }
      this.failedOpens = 0;
      this.current = { pipeline, ...(settings?.renewAt ? { renewAt: settings.renewAt } : {}) };
      return pipeline;
    } catch (error) {
      this.giveBackSlot();
      this.failedOpens++;
      if (this.failedOpens >= MAX_FAILED_OPENS) this.disabled = true;
      this.logger.log('debug', 'pipelined APPEND connection failed to open', {
        error: error instanceof Error ? error.message : String(error),
      });
      return undefined;
    }
  }

  /** Logs out once what is in flight is answered, and gives the connection's slot back. */
  async close(): Promise<void> {
    const current = this.current;
    this.current = undefined;
    await current?.pipeline.logout();
    this.giveBackSlot();
  }

  private giveBackSlot(): void {
    this.release?.();
    this.release = undefined;
  }
}

/** A password (or token command) endpoint's pipeline: implicit TLS only (STARTTLS ones append through the session). */
export function passwordPipeline(
  endpoint: PasswordImapEndpoint,
  credential: ImapCredential,
): PipelineSettings {
  return async () =>
    endpoint.security === 'implicit'
      ? {
          options: {
            host: endpoint.host,
            port: endpoint.port,
            login: await loginOf(endpoint, credential),
          },
        }
      : undefined;
}

/** A Microsoft 365 mailbox's pipeline: a token from the shared provider, renewed two minutes before it expires. */
export function tokenPipeline(
  config: MailbridgeConfig,
  mailbox: string,
  provider: TokenProvider,
): PipelineSettings {
  return async () => {
    const token = await provider.getToken();
    return {
      options: {
        host: config.imap.host,
        port: config.imap.port,
        login: { user: mailbox, accessToken: token.accessToken },
        extraCaCertificates: config.extraCaCertificates,
      },
      renewAt: new Date(token.expiresOn.getTime() - 120_000),
    };
  };
}
