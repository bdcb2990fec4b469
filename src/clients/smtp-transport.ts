import nodemailer from 'nodemailer';
import type Mail from 'nodemailer/lib/mailer/index.js';
import type SMTPPool from 'nodemailer/lib/smtp-pool/index.js';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import { createTokenProvider, type TokenProvider } from '../auth/token-provider.js';
import type { MailbridgeConfig } from '../config/types.js';
import { MailbridgeError, NetworkError, ProtocolError } from '../errors.js';
import { type Logger, silentLogger } from '../log/logger.js';
import {
  isTlsVerificationError,
  networkErrorCode,
  tlsUntrustedError,
} from '../util/network-errors.js';
import { servername, trustOptions } from '../util/tls.js';
import { diagnoseSmtpResponse, diagnosisToError } from './diagnostics.js';
import {
  isPlainTextAnswerToTls,
  notTlsPortError,
  SMTP_GREETING_TIMEOUT_MS,
  smtpNoGreetingError,
} from './port-mismatch.js';
import { createSlidingWindowLimiter } from './rate-limit.js';

/** Exchange Online accepts 30 messages per minute per mailbox. */
export const EXCHANGE_MESSAGES_PER_MINUTE = 30;

export interface SmtpTransportOptions {
  /** Mailbox that authenticates (and, usually, the sender). */
  from: string;
  /** Share one provider per app; a new one is made from `config` when absent. */
  tokenProvider?: TokenProvider;
  logger?: Logger;
  /** Keep connections open and reuse them. @default true */
  pool?: boolean;
  /** Pooled connections at once. @default 2 */
  maxConnections?: number;
  /** Messages one pooled connection sends before it is replaced. @default 100 (nodemailer's) */
  maxMessages?: number;
  /** Messages started in any rolling minute, or `false` for no limit. @default 30 (Exchange's limit) */
  rateLimitPerMinute?: number | false;
}

export interface SmtpTransport {
  /** Sends one message; resolves with nodemailer's info (messageId, accepted, rejected, response). */
  sendMail(message: Mail.Options): Promise<SMTPTransport.SentMessageInfo>;
  /** Connects, upgrades with STARTTLS and authenticates, without sending. */
  verify(): Promise<void>;
  close(): void;
}

/** What nodemailer puts on its errors. */
interface NodemailerErrorFields {
  code?: string;
  /** Which of its timers ran out, with code `ETIMEDOUT`. */
  timeoutType?: string;
  command?: string;
  responseCode?: number;
  response?: string;
}

/**
 * A nodemailer transport to Exchange's submission port: STARTTLS required and
 * verified, SASL XOAUTH2 with tokens from our provider, pooled and rate-limited.
 */
export function createSmtpTransport(
  config: MailbridgeConfig,
  options: SmtpTransportOptions,
): SmtpTransport {
  const logger = options.logger ?? silentLogger;
  const provider = options.tokenProvider ?? createTokenProvider(config, { logger });
  const pooled = options.pool ?? true;
  const common = smtpConnectionOptions(config, options.from, provider);
  const transporter = pooled
    ? nodemailer.createTransport({
        ...common,
        pool: true,
        maxConnections: options.maxConnections ?? 2,
        ...(options.maxMessages !== undefined ? { maxMessages: options.maxMessages } : {}),
      } as SMTPPool.Options)
    : nodemailer.createTransport(common as SMTPTransport.Options);
  const submit = submissionRunner(config, { ...options, tokenProvider: provider, logger });
  const mapError = (error: unknown): MailbridgeError =>
    smtpErrorToMailbridge(error, `${config.smtp.host}:${config.smtp.port}`, options.from);

  return {
    sendMail(message) {
      return submit(() => transporter.sendMail(message) as Promise<SMTPTransport.SentMessageInfo>);
    },
    async verify() {
      try {
        await transporter.verify();
      } catch (error) {
        throw mapError(error);
      }
    },
    close() {
      transporter.close();
    },
  };
}

/**
 * What nodemailer needs to reach Exchange's submission port: STARTTLS required
 * and verified, SASL XOAUTH2 with tokens from our provider. Shared by
 * createSmtpTransport and by callers that drive nodemailer's SMTPConnection themselves.
 */
export function smtpConnectionOptions(
  config: MailbridgeConfig,
  from: string,
  provider: TokenProvider,
) {
  return {
    host: config.smtp.host,
    port: config.smtp.port,
    secure: config.smtp.port === 465,
    requireTLS: true,
    tls: {
      minVersion: 'TLSv1.2' as const,
      ...servername(config.smtp.host),
      ...trustOptions(config.extraCaCertificates),
    },
    // A port that takes the connection and stays silent is the wrong kind of port: say so soon.
    greetingTimeout: SMTP_GREETING_TIMEOUT_MS,
    auth: {
      type: 'OAuth2' as const,
      user: from,
      // Our provider is the only token cache: an expiry 1 ms ahead makes nodemailer ask it every time.
      provisionCallback: (
        _user: string,
        _renew: boolean,
        callback: (err: Error | null, accessToken?: string, expires?: number) => void,
      ) => {
        provider.getToken().then(
          (token) => callback(null, token.accessToken, Date.now() + 1),
          (error: unknown) => callback(error as Error),
        );
      },
    },
    logger: false as const,
  };
}

/**
 * Runs submissions under the rate limit (`rateLimitPerMinute`, Exchange's 30
 * by default), with our errors, and once more on a fresh token when the
 * server refused the login with 535.
 */
export function submissionRunner(
  config: MailbridgeConfig,
  options: SmtpTransportOptions & { tokenProvider: TokenProvider; logger: Logger },
): <T>(send: () => Promise<T>) => Promise<T> {
  const { tokenProvider: provider, logger } = options;
  const rate = options.rateLimitPerMinute ?? EXCHANGE_MESSAGES_PER_MINUTE;
  const limiter = rate === false ? undefined : createSlidingWindowLimiter(rate, 60_000);
  const where = `${config.smtp.host}:${config.smtp.port}`;
  const mapError = (error: unknown): MailbridgeError =>
    smtpErrorToMailbridge(error, where, options.from);
  return async (send) => {
    const limited = () => (limiter ? limiter.run(send) : send());
    try {
      return await limited();
    } catch (error) {
      if (!isAuthRefusal(error)) throw mapError(error);
      // Exchange answers a stale token with 535, not the 334 challenge after which
      // nodemailer renews by itself: get a new token and try once more. Nothing was
      // accepted before AUTH, so this cannot send the message twice.
      logger.log('info', 'smtp auth refused; retrying with a fresh token', {
        from: options.from,
      });
      await provider.getToken({ forceRefresh: true });
      try {
        return await limited();
      } catch (second) {
        throw mapError(second);
      }
    }
  };
}

function isAuthRefusal(error: unknown): boolean {
  const err = error as NodemailerErrorFields;
  return err?.code === 'EAUTH' && err.responseCode === 535;
}

export function smtpErrorToMailbridge(
  error: unknown,
  where: string,
  from: string,
): MailbridgeError {
  if (error instanceof MailbridgeError) return error;
  const err = (error instanceof Error ? error : new Error(String(error))) as Error &
    NodemailerErrorFields;
  if (err.responseCode !== undefined || err.response) {
    const diagnosis = diagnoseSmtpResponse({
      ...(err.responseCode !== undefined ? { responseCode: err.responseCode } : {}),
      ...(err.response ? { response: err.response } : {}),
    });
    if (diagnosis) return diagnosisToError(diagnosis, { mailbox: from, cause: err });
  }
  if (isTlsVerificationError(err)) {
    return tlsUntrustedError(`the SMTP server ${where}`, 'the server', err);
  }
  if (err.code === 'ETIMEDOUT' && err.timeoutType === 'GREETING_TIMEOUT') {
    return smtpNoGreetingError(where, err);
  }
  if (isPlainTextAnswerToTls(err)) return notTlsPortError('smtp', where, err);
  if (err.code && ['ECONNECTION', 'ETIMEDOUT', 'ESOCKET', 'EDNS'].includes(err.code)) {
    return new NetworkError({
      code: 'SMTP_UNREACHABLE',
      message: `The SMTP server ${where} could not be reached (${networkErrorCode(err)})`,
      remedy:
        'Check MAILBRIDGE_SMTP_HOST / MAILBRIDGE_SMTP_PORT (587, STARTTLS), the network and the firewall.',
      cause: err,
    });
  }
  return new ProtocolError({
    code: 'SMTP_FAILED',
    message: `The SMTP server refused the message from ${from}: ${err.response ?? err.message}`,
    remedy:
      'Run `mailbridge doctor --mailbox ADDRESS --smtp` to find the setup step that is missing.',
    cause: err,
  });
}
