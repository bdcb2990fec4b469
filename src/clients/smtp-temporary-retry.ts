/**
 * A one-shot send's answer to a passing refusal. Exchange's 4yz replies
 * (`451 4.7.500 Server busy`, `421 4.3.2 Service not available`, `432 4.3.2
 * … concurrency`) mean "try again later", and a command run by hand or by a
 * script can wait a few seconds for that instead of failing at once. A 4yz
 * that nodemailer raises means the server took nothing (MAIL FROM, every
 * RCPT, or DATA was refused), so sending again cannot deliver twice. A relay
 * keeps such messages in its spool instead (src/jobs/relay/backoff.ts).
 */
import { MailbridgeError, NetworkError } from '../errors.js';
import { type Logger, silentLogger } from '../log/logger.js';
import { backoffDelay } from '../util/backoff.js';
import { displayText } from '../util/display-text.js';

export interface TemporaryRetryOptions {
  /** Attempts in all, the first included. @default 3 */
  attempts?: number;
  /** First wait; doubles each attempt (equal jitter). @default 1000 */
  baseDelayMs?: number;
  logger?: Logger;
  /** For the log and the error: the sending mailbox. */
  from: string;
}

/** Runs `send` until it succeeds, fails otherwise than with a 4yz, or the attempts run out. */
export async function sendWithTemporaryRetry<T>(
  send: () => Promise<T>,
  options: TemporaryRetryOptions,
): Promise<T> {
  const attempts = options.attempts ?? 3;
  const logger = options.logger ?? silentLogger;
  const startedAt = Date.now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (error) {
      const reply = temporaryReply(error);
      if (reply === undefined) throw error;
      if (attempt >= attempts)
        throw givenUp(error, reply, attempt, Date.now() - startedAt, options);
      const waitMs = backoffDelay(attempt - 1, {
        baseMs: options.baseDelayMs ?? 1000,
        jitter: 'equal',
      });
      logger.log('info', 'smtp temporary refusal; sending again', {
        from: options.from,
        reply: displayText(reply, 200),
        attempt,
        waitMs,
      });
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
  }
}

/** The server's 4yz reply behind a send failure, if that is what it was. */
function temporaryReply(error: unknown): string | undefined {
  const smtp = (error instanceof MailbridgeError ? error.cause : error) as
    | { responseCode?: unknown; response?: unknown }
    | undefined;
  const code = smtp?.responseCode;
  if (typeof code !== 'number' || code < 400 || code >= 500) return undefined;
  return typeof smtp?.response === 'string' ? smtp.response : String(code);
}

/** A diagnosed refusal keeps its own code; a bare 4yz becomes SMTP_TEMPORARY_FAILURE (exit 4). */
function givenUp(
  error: unknown,
  reply: string,
  attempts: number,
  elapsedMs: number,
  options: TemporaryRetryOptions,
): unknown {
  if (error instanceof MailbridgeError && error.code !== 'SMTP_FAILED') return error;
  return new NetworkError({
    code: 'SMTP_TEMPORARY_FAILURE',
    message: `The SMTP server kept refusing the message from ${options.from} for now: ${displayText(reply, 200)} (${attempts} attempts in ${(elapsedMs / 1000).toFixed(1)} s)`,
    remedy:
      'Nothing was sent. Send it again later; if it keeps happening, run `mailbridge doctor --mailbox ADDRESS --smtp`, or let `mailbridge relay` keep and retry such messages.',
    cause: error instanceof MailbridgeError ? error.cause : error,
  });
}
