import type { ImapFlow, MailboxObject } from 'imapflow';
import {
  type AccessToken,
  createTokenProvider,
  type TokenProvider,
} from '../auth/token-provider.js';
import type { MailbridgeConfig } from '../config/types.js';
import {
  AuthenticationError,
  ConfigurationError,
  MailbridgeError,
  NetworkError,
} from '../errors.js';
import { type LogFields, type Logger, silentLogger } from '../log/logger.js';
import {
  type ConnectionSlots,
  connectionKey,
  DEFAULT_MAX_CONNECTIONS_PER_MAILBOX,
  processConnectionSlots,
} from './connection-limit.js';
import { connectImap, type ImapFlowErrorFields, imapErrorToMailbridge } from './imap-client.js';
import { classifySessionFailure, nextSessionDelay, type SessionFailure } from './session-policy.js';

export interface ImapSessionOptions {
  mailbox: string;
  /** Share one provider per app; a new one is made from `config` when absent. */
  tokenProvider?: TokenProvider;
  logger?: Logger;
  /** Connections to one mailbox open at once, across the process. @default 8 */
  maxConnections?: number;
  /**
   * Where the slots of `maxConnections` are held: in this process by default;
   * a job queue shares them between its workers.
   */
  connectionSlots?: ConnectionSlots;
  /** Failed attempts of one operation before it gives up. @default 6 */
  maxAttempts?: number;
  /** First back-off after a dropped connection; doubles per attempt. @default 500 */
  baseDelayMs?: number;
  /** Longest wait for throttling (Exchange suggests up to ~5 minutes). @default 600_000 */
  maxThrottleWaitMs?: number;
  /**
   * Reconnect before the token has less than this left, so Exchange never
   * cuts a command short with `BYE ... AccessTokenExpired`. The effective
   * margin is a quarter of the token's lifetime when that is shorter.
   * @default 120_000
   */
  reconnectMarginMs?: number;
}

export interface ImapSessionStats {
  connects: number;
  /** Connections replaced because the token was about to expire. */
  tokenRenewals: number;
  /** Operations retried after a dropped connection or a throttling reply. */
  retries: number;
  throttledMs: number;
}

export interface ImapSession {
  readonly mailbox: string;
  /**
   * Runs `operation` with a live, authenticated connection, the mailbox opened
   * by `open` selected again. When the connection drops, the token expires or
   * Exchange throttles, it waits as told, reconnects with a fresh token and
   * runs `operation` again: write operations so that running them again
   * continues the work (e.g. fetch from the last UID the job stored).
   */
  run<T>(operation: (client: ImapFlow) => Promise<T>): Promise<T>;
  /** Selects a folder now and after every reconnect. Returns its status (UIDVALIDITY, UIDNEXT…). */
  open(path: string, options?: { readOnly?: boolean }): Promise<MailboxObject>;
  /** The selected folder's status as of the last (re)select. */
  readonly selected: MailboxObject | undefined;
  readonly stats: ImapSessionStats;
  close(): Promise<void>;
}

/**
 * How a session logs in: the one thing that differs between a Microsoft 365
 * mailbox (XOAUTH2 with a token that expires) and a server that takes a
 * password. The reconnect, retry and re-select loop is the same for both.
 */
export interface ImapLogin {
  /** Names the session in errors: the mailbox or the user. */
  readonly name: string;
  /** Identify the session in log lines. */
  readonly logFields: LogFields;
  /**
   * A live, logged-in connection; `renewAt` (epoch ms) when it must be
   * replaced before the server ends it, as a token's expiry does.
   */
  connect(): Promise<{ client: ImapFlow; renewAt?: number }>;
  /** Our error for what imapflow threw; a MailbridgeError is never passed. */
  toError(error: unknown): MailbridgeError;
  /** The error once retries are used up; `toError`'s when absent. */
  giveUp?(mapped: MailbridgeError, failure: SessionFailure, attempts: number): MailbridgeError;
}

export interface LoginSessionOptions
  extends Pick<ImapSessionOptions, 'logger' | 'maxAttempts' | 'baseDelayMs' | 'maxThrottleWaitMs'> {
  /** Holds one of `limit` connection slots under `key` while connected, from `slots`. */
  slot?: { key: string; limit: number; slots?: ConnectionSlots };
}

/**
 * A long-lived IMAP session for jobs. imapflow uses its token once, at
 * connect, and never reconnects; Exchange ends a session whose token expires
 * with `* BYE Session invalidated - AccessTokenExpired`. This keeps a job
 * going across both, within a per-mailbox connection cap.
 */
export function createImapSession(
  config: MailbridgeConfig,
  options: ImapSessionOptions,
): ImapSession {
  const logger = options.logger ?? silentLogger;
  const provider = options.tokenProvider ?? createTokenProvider(config, { logger });
  const marginMs = options.reconnectMarginMs ?? 120_000;
  const mailbox = options.mailbox;
  const key = connectionKey(config.imap.host, config.imap.port, mailbox);
  const shared = options.connectionSlots;
  // Every session on this mailbox, in any worker, waits out a throttling reply with this one.
  const onThrottle = shared?.pause
    ? (ms: number) => void shared.pause?.(key, ms).catch(() => {})
    : undefined;
  let token: AccessToken | undefined;
  return createLoginSession(
    {
      name: mailbox,
      logFields: { mailbox },
      async connect() {
        token = await provider.getToken();
        const client = await connectImap(
          config,
          { mailbox, logger, ...(onThrottle ? { onThrottle } : {}) },
          token,
        );
        const life = token.expiresOn.getTime() - Date.now();
        return {
          client,
          renewAt: token.expiresOn.getTime() - Math.min(marginMs, Math.max(0, life) / 4),
        };
      },
      toError: (error) => imapErrorToMailbridge(error, { config, mailbox, token }),
      giveUp(mapped, failure, attempts) {
        if (mapped instanceof AuthenticationError) return mapped;
        return new NetworkError({
          code: failure.kind === 'throttled' ? 'IMAP_THROTTLED' : 'IMAP_SESSION_LOST',
          message: `The IMAP session for ${mailbox} kept failing (${failure.reason}) after ${attempts} attempts`,
          remedy:
            failure.kind === 'throttled'
              ? 'Exchange is throttling this mailbox: run fewer jobs or connections against it, or try later.'
              : 'Check the network and the server; the job can be run again and continues where it stopped.',
          cause: mapped,
        });
      },
    },
    {
      ...options,
      slot: {
        key,
        limit: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS_PER_MAILBOX,
        ...(options.connectionSlots ? { slots: options.connectionSlots } : {}),
      },
    },
  );
}

/** The session loop for any kind of login; `createImapSession` is the XOAUTH2 one. */
export function createLoginSession(login: ImapLogin, options: LoginSessionOptions): ImapSession {
  const logger = options.logger ?? silentLogger;
  const maxAttempts = options.maxAttempts ?? 6;
  const baseDelayMs = options.baseDelayMs ?? 500;
  const maxThrottleWaitMs = options.maxThrottleWaitMs ?? 600_000;
  const stats: ImapSessionStats = { connects: 0, tokenRenewals: 0, retries: 0, throttledMs: 0 };
  const slot = options.slot;
  const slots = slot?.slots ?? processConnectionSlots;

  let client: ImapFlow | undefined;
  let renewAt = Number.POSITIVE_INFINITY;
  let release: (() => void) | undefined;
  let target: { path: string; readOnly: boolean } | undefined;
  let selected: MailboxObject | undefined;
  let closed = false;

  const toError = (error: unknown) =>
    error instanceof MailbridgeError ? error : login.toError(error);

  const disconnect = async (graceful: boolean) => {
    const current = client;
    client = undefined;
    if (current) {
      if (graceful && current.usable) await current.logout().catch(() => current.close());
      else current.close();
    }
  };

  const connect = async (): Promise<ImapFlow> => {
    if (slot) release ??= await slots.acquire(slot.key, slot.limit);
    const opened = await login.connect();
    const fresh = opened.client;
    stats.connects++;
    renewAt = opened.renewAt ?? Number.POSITIVE_INFINITY;
    if (target) {
      try {
        selected = await fresh.mailboxOpen(target.path, { readOnly: target.readOnly });
      } catch (error) {
        fresh.close();
        throw toError(error);
      }
    }
    client = fresh;
    return fresh;
  };

  const live = async (): Promise<ImapFlow> => {
    if (closed) {
      throw new ConfigurationError({
        code: 'IMAP_SESSION_CLOSED',
        message: `The IMAP session for ${login.name} was closed`,
        remedy: 'Create a new session with createImapSession.',
      });
    }
    if (client?.usable && Date.now() < renewAt) return client;
    if (client?.usable) {
      stats.tokenRenewals++;
      logger.log('debug', 'imap reconnect before token expiry', login.logFields);
    }
    await disconnect(true);
    return connect();
  };

  const run = async <T>(operation: (client: ImapFlow) => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      let failure: SessionFailure;
      try {
        // Another worker may have been throttled on this mailbox: wait with it.
        if (slot) await slots.whenOpen?.(slot.key);
        return await operation(await live());
      } catch (error) {
        failure = classifySessionFailure(
          error as Error & ImapFlowErrorFields,
          client?.usable === true,
        );
        if (failure.kind === 'fatal') throw toError(error);
        const delay = nextSessionDelay(failure, attempt, {
          maxAttempts,
          baseDelayMs,
          maxThrottleWaitMs,
        });
        if (delay === undefined) {
          const mapped = toError(error);
          throw login.giveUp ? login.giveUp(mapped, failure, attempt) : mapped;
        }
        stats.retries++;
        if (failure.kind === 'throttled') stats.throttledMs += delay;
        logger.log('info', 'imap operation interrupted; retrying', {
          ...login.logFields,
          reason: failure.reason,
          attempt,
          waitMs: delay,
        });
        await disconnect(false);
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  };

  return {
    mailbox: login.name,
    run,
    async open(path, openOptions = {}) {
      const readOnly = openOptions.readOnly ?? false;
      const status = await run((c) => c.mailboxOpen(path, { readOnly }));
      // Remembered only once selected: a folder that does not exist is not retried on reconnect.
      target = { path, readOnly };
      selected = status;
      return status;
    },
    get selected() {
      return selected;
    },
    stats,
    async close() {
      closed = true;
      await disconnect(true);
      release?.();
      release = undefined;
    },
  };
}
