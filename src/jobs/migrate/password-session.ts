/**
 * A session on an IMAP server that takes a user name and a password (the
 * other side of most migrations into Microsoft 365): TLS always verified,
 * AUTHENTICATE PLAIN or LOGIN as the server offers, reconnecting after a
 * dropped connection with the same policy as our XOAUTH2 sessions. With a
 * token command instead of a password, XOAUTH2 with the token it prints,
 * asked anew for every login (token-command.ts).
 */
import {
  type ConnectionSlots,
  connectionKey,
  DEFAULT_MAX_CONNECTIONS_PER_MAILBOX,
} from '../../clients/connection-limit.js';
import { diagnoseImapResponse, diagnosisToError } from '../../clients/diagnostics.js';
import {
  type ImapFlowErrorFields,
  isDroppedConnectionCode,
  openImapConnection,
} from '../../clients/imap-client.js';
import { createLoginSession, type ImapSession } from '../../clients/imap-session.js';
import { isPlainTextAnswerToTls, notTlsPortError } from '../../clients/port-mismatch.js';
import { AuthenticationError, MailbridgeError, NetworkError, ProtocolError } from '../../errors.js';
import { type Logger, silentLogger } from '../../log/logger.js';
import { displayText } from '../../util/display-text.js';
import {
  isTlsVerificationError,
  networkErrorCode,
  tlsUntrustedError,
} from '../../util/network-errors.js';
import type { PasswordImapEndpoint } from './endpoint.js';
import { runTokenCommand, type TokenCommand } from './token-command.js';

/** A password, or the command that prints an OAuth token. */
export type ImapCredential = string | TokenCommand;

/** What imapflow logs in with: the token command runs here, once per login. */
export async function loginOf(
  endpoint: PasswordImapEndpoint,
  credential: ImapCredential,
): Promise<{ user: string; pass: string } | { user: string; accessToken: string }> {
  if (typeof credential === 'string') return { user: endpoint.user, pass: credential };
  return { user: endpoint.user, accessToken: await runTokenCommand(credential) };
}

export function createPasswordSession(
  endpoint: PasswordImapEndpoint,
  credential: ImapCredential,
  options: { logger?: Logger; connectionSlots?: ConnectionSlots; maxConnections?: number } = {},
): ImapSession {
  const logger = options.logger ?? silentLogger;
  // Held like an XOAUTH2 session's: per user on the server, in this process or the queue's leases.
  const slot = {
    key: connectionKey(endpoint.host, endpoint.port, endpoint.user),
    limit: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS_PER_MAILBOX,
    ...(options.connectionSlots ? { slots: options.connectionSlots } : {}),
  };
  return createLoginSession(
    {
      name: endpoint.user,
      logFields: { host: endpoint.host },
      async connect() {
        const client = await openImapConnection({
          host: endpoint.host,
          port: endpoint.port,
          security: endpoint.security,
          auth: await loginOf(endpoint, credential),
          logger,
          logFields: { host: endpoint.host },
          toError: (error) => passwordImapError(error, endpoint, credential),
        });
        return { client };
      },
      toError: (error) => passwordImapError(error, endpoint, credential),
    },
    { logger, slot },
  );
}

/** Our error for what imapflow threw, with the server's words where it gave some. */
export function passwordImapError(
  error: unknown,
  endpoint: PasswordImapEndpoint,
  credential: ImapCredential = '',
): MailbridgeError {
  if (error instanceof MailbridgeError) return error;
  const err = (error instanceof Error ? error : new Error(String(error))) as Error &
    ImapFlowErrorFields;
  const where = `${endpoint.host}:${endpoint.port}`;
  const words = err.responseText ? ` (${displayText(err.responseText)})` : '';
  if (isPlainTextAnswerToTls(err)) return notTlsPortError('imap', where, err);
  // A login refused for the connection limit is not a wrong password: wait, as for Exchange.
  const limit = err.responseStatus
    ? diagnoseImapResponse(`${err.responseStatus} ${err.responseText ?? ''}`)
    : undefined;
  if (limit?.code === 'IMAP_TOO_MANY_CONNECTIONS') {
    return diagnosisToError(limit, { mailbox: endpoint.user, cause: err });
  }
  if (err.authenticationFailed) {
    const byToken = typeof credential !== 'string';
    return new AuthenticationError({
      code: 'MIGRATE_LOGIN_REFUSED',
      message: `The IMAP server ${where} refused the ${byToken ? `XOAUTH2 login (token from ${credential.name})` : 'login'} of ${displayText(endpoint.user)}${words}`,
      remedy: byToken
        ? "Check the user name in the URL, and that the command's token is for this user with the provider's IMAP scope (for Gmail https://mail.google.com/)."
        : 'Check the user name in the URL and the password (file or environment variable), and that this user may log in over IMAP with a password.',
      cause: err,
    });
  }
  if (isTlsVerificationError(err))
    return tlsUntrustedError(`the IMAP server ${where}`, 'the server', err);
  const code = networkErrorCode(err);
  if (isDroppedConnectionCode(code)) {
    return new NetworkError({
      code: 'MIGRATE_UNREACHABLE',
      message: `The IMAP server ${where} could not be reached or closed the connection (${displayText(err.reason ?? code)})`,
      remedy:
        'Check the host and port in the URL (993 for imaps://, 143 for imap://), the network and the firewall.',
      cause: err,
    });
  }
  return new ProtocolError({
    code: 'MIGRATE_COMMAND_FAILED',
    message: `The IMAP server ${where} refused a command for ${displayText(endpoint.user)}${words || ` (${displayText(err.message)})`}`,
    remedy: 'Run again with --debug to see the command; the migration continues where it stopped.',
    cause: err,
  });
}
