/**
 * Pure delay math and failure classification for deliveries; the delivery
 * worker owns the timers.
 *
 * What is temporary follows SMTP (RFC 5321 §4.2.1: 4yz replies are
 * transient, 5yz permanent) with three exceptions a relay needs:
 * - a refused login (535 and every other AUTH failure) is retried, as
 *   Postfix does by default (`smtp_sasl_auth_soft_bounce`): it is about the
 *   app's setup, not the message, and turning every queued message into a
 *   dead letter because a permission was missing would lose mail;
 * - Exchange's daily quota (`SubmissionQuotaExceededException`, a 5xx)
 *   clears as the 24-hour window moves, so it waits an hour and tries again;
 * - failures before any reply (network, TLS, the token endpoint) are
 *   temporary: the relay keeps the message until `retryFor` runs out.
 */
import { diagnoseSmtpResponse, replyLine } from '../../clients/diagnostics.js';
import { MailbridgeError, NetworkError } from '../../errors.js';
import { backoffDelay } from '../../util/backoff.js';
import { asciiText } from '../../util/display-text.js';
import { formatDuration } from '../../util/format.js';

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Random spread, as a fraction of the delay. @default 0.2 */
  jitter?: number;
}

/**
 * Delay before attempt `failures + 1`: initial × 2^(failures − 1), capped at
 * `maxMs`, spread by ±jitter so that messages deferred together do not all
 * come back at once. `random` returns [0, 1).
 */
export function retryDelay(
  failures: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  return backoffDelay(
    failures - 1,
    { baseMs: options.initialMs, maxMs: options.maxMs, jitter: { spread: options.jitter ?? 0.2 } },
    random,
  );
}

/**
 * How long a message waits after a spool write failed, by the failures in a
 * row: 1 s, doubling, at most 30 s. Short at first, as a passing error
 * (one file the disk refused) costs one retry a second later; growing, so a
 * full disk does not become a busy loop.
 */
export function spoolErrorDelay(failures: number, random: () => number = Math.random): number {
  return backoffDelay(
    failures - 1,
    { baseMs: SPOOL_ERROR_FIRST_WAIT_MS, maxMs: SPOOL_ERROR_MAX_WAIT_MS, jitter: { spread: 0.2 } },
    random,
  );
}

const SPOOL_ERROR_FIRST_WAIT_MS = 1000;
const SPOOL_ERROR_MAX_WAIT_MS = 30_000;

export interface DeliveryFailure {
  kind: 'temporary' | 'permanent';
  /**
   * `mailbox`: the failure is about the connection or the login, so every
   * message of that mailbox waits; `message`: only this one.
   */
  scope: 'message' | 'mailbox';
  /** Diagnosis code from the diagnostics table, or our error code. */
  code: string;
  /** SMTP reply code, when the server gave one. */
  responseCode?: number;
  /** The server's reply (log-safe, one line), or our error's message. */
  reply: string;
  /** Least wait before the next attempt (the server's suggestion, or the quota window). */
  minDelayMs?: number;
  /** The server refused the login (AUTH), not the message. */
  login?: boolean;
}

/** What nodemailer puts on its errors (and on each entry of `rejectedErrors`). */
interface SmtpErrorFields {
  code?: unknown;
  responseCode?: unknown;
  response?: unknown;
  command?: unknown;
}

const QUOTA_WAIT_MS = 60 * 60 * 1000;
/** Replies about the connection or the session rather than the message. */
const SESSION_REPLY_CODES = new Set([421, 430, 432, 454]);

/** Classifies what `transport.sendMail` threw. */
export function classifyDeliveryError(error: unknown): DeliveryFailure {
  const smtp = findSmtpFields(error);
  const responseCode = typeof smtp?.responseCode === 'number' ? smtp.responseCode : undefined;
  const response = typeof smtp?.response === 'string' ? smtp.response : undefined;
  const nodemailerCode = typeof smtp?.code === 'string' ? smtp.code : undefined;
  const diagnosis =
    responseCode !== undefined || response
      ? diagnoseSmtpResponse({
          ...(responseCode !== undefined ? { responseCode } : {}),
          ...(response ? { response } : {}),
        })
      : undefined;
  const ours = error instanceof MailbridgeError ? error : undefined;
  const ourCode = ours ? originalCode(ours) : undefined;
  const reply = logSafe(response ?? ours?.message ?? (error as Error)?.message ?? String(error));
  const code =
    diagnosis?.code ??
    (ourCode && ourCode !== 'SMTP_FAILED' ? ourCode : undefined) ??
    (responseCode !== undefined
      ? responseCode >= 500
        ? 'SMTP_PERMANENT_FAILURE'
        : 'SMTP_TEMPORARY_FAILURE'
      : (nodemailerCode ?? ourCode ?? 'DELIVERY_FAILED'));
  const base = { code, reply, ...(responseCode !== undefined ? { responseCode } : {}) };

  if (nodemailerCode === 'EAUTH' || smtp?.command === 'AUTH' || smtp?.command === 'AUTH XOAUTH2') {
    // A token that could not be had never reached the server: not a refused login.
    const login = responseCode !== undefined;
    return { ...base, kind: 'temporary', scope: 'mailbox', ...(login ? { login } : {}) };
  }
  if (diagnosis?.code === 'SMTP_DAILY_QUOTA_EXCEEDED') {
    return { ...base, kind: 'temporary', scope: 'mailbox', minDelayMs: QUOTA_WAIT_MS };
  }
  if (responseCode !== undefined && responseCode >= 400) {
    const temporary = responseCode < 500 || diagnosis?.retryable === true;
    return {
      ...base,
      kind: temporary ? 'temporary' : 'permanent',
      scope: SESSION_REPLY_CODES.has(responseCode) ? 'mailbox' : 'message',
      ...(diagnosis?.retryAfterMs !== undefined ? { minDelayMs: diagnosis.retryAfterMs } : {}),
    };
  }
  if (nodemailerCode === 'ENOENT' || nodemailerCode === 'EISDIR') {
    // The spooled file itself is gone: no later attempt can read it either.
    return { ...base, code: 'SPOOL_FILE_MISSING', kind: 'permanent', scope: 'message' };
  }
  // No reply at all: network, TLS, token endpoint, or a dropped connection.
  const connection =
    error instanceof NetworkError ||
    (ours !== undefined && ours.name === 'AuthenticationError') ||
    ['ECONNECTION', 'ETIMEDOUT', 'ESOCKET', 'EDNS', 'ETLS', 'ECONNREFUSED'].includes(
      nodemailerCode ?? '',
    );
  return { ...base, kind: 'temporary', scope: connection ? 'mailbox' : 'message' };
}

export type NextStep =
  | { action: 'retry'; at: number; delayMs: number }
  | { action: 'dead'; reason: string };

/**
 * After a failed attempt: when to try again, or that the message goes to
 * `dead/`. `failures` counts this one; `since` is when the message was
 * accepted (or last released by `relay retry`).
 */
export function nextStep(
  failure: DeliveryFailure,
  state: { failures: number; since: number },
  now: number,
  options: BackoffOptions & { retryForMs: number },
  random: () => number = Math.random,
): NextStep {
  if (failure.kind === 'permanent') {
    return { action: 'dead', reason: `permanent failure ${failure.code}: ${failure.reply}` };
  }
  const delayMs = Math.max(retryDelay(state.failures, options, random), failure.minDelayMs ?? 0);
  if (now + delayMs - state.since > options.retryForMs) {
    return {
      action: 'dead',
      reason: `gave up after ${formatDuration(now - state.since)} and ${state.failures} attempt(s); last failure ${failure.code}: ${failure.reply}`,
    };
  }
  return { action: 'retry', at: now + delayMs, delayMs };
}

/**
 * nodemailer writes its own `code` (EAUTH) over that of an error passing
 * through it, such as a token request Entra refused, and keeps the previous
 * one in `originalCode`: ours (`SECRET_INVALID`) is the diagnosis.
 */
function originalCode(error: MailbridgeError): string {
  const previous = (error as { originalCode?: unknown }).originalCode;
  return /^E[A-Z]+$/.test(error.code) && typeof previous === 'string' ? previous : error.code;
}

/**
 * A login refused (535) after the transport already retried it with a fresh
 * token, for a route whose mailbox is the envelope sender: no later attempt
 * logs in as that sender either (it is no mailbox, or the app may not use
 * it), so the message fails now with the diagnosis instead of being retried
 * for `retryFor`.
 */
export function senderLoginRefused(failure: DeliveryFailure, sender: string): DeliveryFailure {
  return {
    ...failure,
    kind: 'permanent',
    scope: 'message',
    reply: `${failure.reply} (the sender <${asciiText(sender, 254)}> is the mailbox; its login was refused with a fresh token: no such mailbox, or the app has no permission for it)`,
  };
}

/** The first object in the `cause` chain that carries nodemailer's SMTP fields. */
function findSmtpFields(error: unknown): SmtpErrorFields | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current && typeof current === 'object'; depth++) {
    const fields = current as SmtpErrorFields & { cause?: unknown };
    // nodemailer's codes are E + capitals (EAUTH, EENVELOPE, ECONNECTION); ours have underscores.
    if (
      fields.responseCode !== undefined ||
      (typeof fields.code === 'string' && /^E[A-Z]+$/.test(fields.code))
    ) {
      return fields;
    }
    current = fields.cause;
  }
  return undefined;
}

/** A server's reply as one 7-bit line; the relay keeps up to 300 characters of it for the bounce and `relay status`. */
export function logSafe(text: string): string {
  return replyLine(text, 300);
}
