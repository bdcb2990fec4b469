/**
 * The two ways a port of the wrong kind shows itself, said as what they
 * almost always mean instead of "could not be reached": a server that accepts
 * the connection and then stays silent is waiting for a TLS handshake (or is
 * not speaking SMTP at all), and a TLS handshake answered with text reached a
 * server that speaks plain text first (a STARTTLS or plain port).
 */
import { NetworkError } from '../errors.js';

/**
 * How long an SMTP server may take to greet: Exchange Online greets well within
 * a second. Whoever opens an SMTP connection should use it (the transport does).
 */
export const SMTP_GREETING_TIMEOUT_MS = 5_000;

/**
 * Whether a TLS handshake failed because the server sent something that is not
 * TLS: OpenSSL reads a greeting such as `220 …` or `* OK …` as a record with a
 * wrong version or an impossible length. nodemailer replaces the error's code
 * with its own, so the reason and message are checked as well.
 */
export function isPlainTextAnswerToTls(error: Error): boolean {
  const fields = error as Error & { code?: unknown; reason?: unknown };
  const text = `${String(fields.code ?? '')} ${String(fields.reason ?? '')} ${error.message}`;
  return /WRONG_VERSION_NUMBER|wrong version number|PACKET_LENGTH_TOO_LONG|packet length too long/.test(
    text,
  );
}

/** A port that took the connection but sent no SMTP greeting in time. */
export function smtpNoGreetingError(where: string, cause: Error): NetworkError {
  return new NetworkError({
    code: 'SMTP_NO_GREETING',
    message: `The SMTP server ${where} accepted the connection but sent no SMTP greeting: the port probably expects implicit TLS (as 465 and IMAP's 993 do) or is not an SMTP port`,
    remedy:
      'Set MAILBRIDGE_SMTP_PORT (or --smtp-port) to 587, where Exchange Online takes submissions with STARTTLS; mailbridge uses implicit TLS only on port 465.',
    cause,
  });
}

/** A TLS handshake answered in plain text: the port is a STARTTLS or plain one. */
export function notTlsPortError(
  protocol: 'imap' | 'smtp',
  where: string,
  cause: Error,
): NetworkError {
  const imap = protocol === 'imap';
  return new NetworkError({
    code: imap ? 'IMAP_PORT_NOT_TLS' : 'SMTP_PORT_NOT_TLS',
    message: `The ${imap ? 'IMAP' : 'SMTP'} server ${where} answered a TLS handshake in plain text: the port expects ${imap ? 'plain IMAP or STARTTLS (as 143 does), or is not an IMAP port' : 'STARTTLS (as 587 and 25 do), not implicit TLS'}`,
    remedy: imap
      ? 'mailbridge speaks IMAP over implicit TLS: set MAILBRIDGE_IMAP_PORT (or --imap-port) to 993.'
      : 'Set MAILBRIDGE_SMTP_PORT (or --smtp-port) to 587: mailbridge uses implicit TLS on port 465 and STARTTLS on every other port.',
    cause,
  });
}
