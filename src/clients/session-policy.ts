/**
 * Pure decisions of the long-session helper: what an interrupted IMAP
 * operation means and how long to wait. The session owns sockets and timers.
 */
import { MailbridgeError, NetworkError } from '../errors.js';
import { backoffDelay } from '../util/backoff.js';
import type { ImapFlowErrorFields } from './imap-client.js';

export type SessionFailure =
  | { kind: 'throttled'; waitMs: number; reason: string }
  | { kind: 'dropped'; reason: string }
  | { kind: 'fatal'; reason: string };

const DROPPED_CODES = new Set([
  'NoConnection',
  'EConnectionClosed',
  'StateLogout',
  'ETIMEOUT',
  'CONNECT_TIMEOUT',
  'GREETING_TIMEOUT',
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

/**
 * `connectionUsable` tells a command the server refused (the connection is
 * fine: the refusal is the answer) from one cut short by a lost connection.
 */
export function classifySessionFailure(
  error: Error & ImapFlowErrorFields,
  connectionUsable: boolean,
): SessionFailure {
  if (error.code === 'ETHROTTLE') {
    // imapflow has already waited part of the suggested time before rejecting.
    const waitMs = Math.max(0, (error.throttleReset ?? 0) - (error.throttleWaited ?? 0));
    return {
      kind: 'throttled',
      waitMs,
      reason: `throttled (${error.throttleReset ?? 0} ms suggested)`,
    };
  }
  if (error instanceof MailbridgeError) {
    // Raised while (re)connecting: only unreachable servers and dropped sessions are worth retrying.
    return error instanceof NetworkError
      ? { kind: 'dropped', reason: error.code }
      : { kind: 'fatal', reason: error.code };
  }
  if (error.code && DROPPED_CODES.has(error.code)) {
    return { kind: 'dropped', reason: error.reason ?? error.code };
  }
  if (!connectionUsable && (error.responseStatus === undefined || error.responseStatus === 'BYE')) {
    return { kind: 'dropped', reason: error.reason ?? error.message };
  }
  return { kind: 'fatal', reason: error.responseText ?? error.message };
}

export interface SessionRetryOptions {
  maxAttempts: number;
  baseDelayMs: number;
  maxThrottleWaitMs: number;
}

/** Milliseconds before the next attempt, or undefined to give up. */
export function nextSessionDelay(
  failure: SessionFailure,
  attempt: number,
  options: SessionRetryOptions,
  random: () => number = Math.random,
): number | undefined {
  if (failure.kind === 'fatal' || attempt >= options.maxAttempts) return undefined;
  if (failure.kind === 'throttled') {
    return failure.waitMs <= options.maxThrottleWaitMs ? failure.waitMs : undefined;
  }
  // The first reconnect is immediate: a token expiry or an idle drop needs no pause.
  if (attempt === 1) return 0;
  // No cap: maxAttempts bounds it (by default 500 ms base and 6 attempts: at most 4 s).
  return backoffDelay(attempt - 2, { baseMs: options.baseDelayMs, jitter: 'equal' }, random);
}
