import { ImapFlow, type MailboxObject } from 'imapflow';
import { decodeAccessTokenClaims } from '../auth/claims.js';
import {
  type AccessToken,
  createTokenProvider,
  type TokenProvider,
} from '../auth/token-provider.js';
import type { MailbridgeConfig } from '../config/types.js';
import { MailbridgeError, NetworkError, ProtocolError } from '../errors.js';
import { type Logger, silentLogger } from '../log/logger.js';
import { closestName } from '../util/did-you-mean.js';
import { displayText } from '../util/display-text.js';
import {
  isTlsVerificationError,
  networkErrorCode,
  tlsUntrustedError,
} from '../util/network-errors.js';
import { servername, trustOptions } from '../util/tls.js';
import { diagnoseImapResponse, diagnoseTokenClaims, diagnosisToError } from './diagnostics.js';
import { encodeMailboxNamesFully } from './mailbox-name-encoding.js';
import { isPlainTextAnswerToTls, notTlsPortError } from './port-mismatch.js';

export interface ImapClientOptions {
  /** Mailbox to log in as: a user or shared mailbox address. */
  mailbox: string;
  /** Share one provider per app; a new one is made from `config` when absent. */
  tokenProvider?: TokenProvider;
  logger?: Logger;
  /** @default 30_000 */
  connectTimeoutMs?: number;
  /**
   * Told at once when the server throttles a command (imapflow then waits
   * before it gives the command back), with the wait the server suggests.
   */
  onThrottle?: (suggestedMs: number) => void;
}

/** What imapflow puts on the errors it throws. */
export interface ImapFlowErrorFields {
  code?: string;
  authenticationFailed?: boolean;
  responseStatus?: string;
  responseText?: string;
  serverResponseCode?: string;
  reason?: string;
  throttleReset?: number;
  throttleWaited?: number;
}

/**
 * Opens an imapflow connection (implicit TLS, verified) authenticated with
 * XOAUTH2 as `mailbox`. imapflow prefers OAUTHBEARER where a server offers it;
 * Exchange Online offers only XOAUTH2.
 */
export async function createImapClient(
  config: MailbridgeConfig,
  options: ImapClientOptions,
): Promise<ImapFlow> {
  const provider =
    options.tokenProvider ??
    createTokenProvider(config, options.logger ? { logger: options.logger } : {});
  const token = await provider.getToken();
  return connectImap(config, options, token);
}

export interface ImapConnectionOptions {
  host: string;
  port: number;
  /**
   * TLS from the first byte; STARTTLS required; or STARTTLS when offered
   * (imapflow's default, which callers allow on loopback only).
   */
  security: 'implicit' | 'starttls' | 'starttls-if-offered';
  auth: { user: string; accessToken: string } | { user: string; pass: string };
  extraCaCertificates?: MailbridgeConfig['extraCaCertificates'];
  connectTimeoutMs?: number | undefined;
  logger: Logger;
  /** Names the connection in debug lines (never a secret). */
  logFields: Record<string, string>;
  /** Our error for what imapflow threw while connecting and logging in. */
  toError: (error: unknown) => MailbridgeError;
  onThrottle?: ((suggestedMs: number) => void) | undefined;
}

/**
 * imapflow says it met a throttling reply only in its log, before it waits:
 * a logger that hears that line and nothing else.
 */
function throttleListener(onThrottle: (suggestedMs: number) => void) {
  const ignore = () => {};
  return {
    debug: ignore,
    info: ignore,
    error: ignore,
    fatal: ignore,
    warn(entry: { msg?: string; throttleDelay?: number }) {
      if (entry?.msg === 'Throttling detected' && typeof entry.throttleDelay === 'number') {
        onThrottle(entry.throttleDelay);
      }
    },
  };
}

/**
 * Opens and logs in one imapflow connection the way every login of ours
 * needs it (TLS 1.2+ verified, full mailbox-name encoding, socket errors
 * caught), whatever the credential.
 */
export async function openImapConnection(options: ImapConnectionOptions): Promise<ImapFlow> {
  const client = new ImapFlow({
    host: options.host,
    port: options.port,
    secure: options.security === 'implicit',
    ...(options.security === 'starttls' ? { doSTARTTLS: true } : {}),
    ...servername(options.host),
    auth: options.auth,
    tls: { minVersion: 'TLSv1.2', ...trustOptions(options.extraCaCertificates) },
    logger: options.onThrottle ? throttleListener(options.onThrottle) : false,
    disableAutoIdle: true,
    connectionTimeout: options.connectTimeoutMs ?? 30_000,
  });
  encodeMailboxNamesFully(client);
  // imapflow emits 'error' for socket failures; without a listener Node would crash the process.
  client.on('error', (error: Error) => {
    options.logger.log('debug', 'imap connection error', {
      ...options.logFields,
      error: error.message,
    });
  });
  try {
    await client.connect();
  } catch (error) {
    client.close();
    throw options.toError(error);
  }
  return client;
}

/** Connects with a token already in hand; the session helper needs the token's expiry. */
export async function connectImap(
  config: MailbridgeConfig,
  options: ImapClientOptions,
  token: AccessToken,
): Promise<ImapFlow> {
  const logger = options.logger ?? silentLogger;
  const client = await openImapConnection({
    host: config.imap.host,
    port: config.imap.port,
    security: 'implicit',
    auth: { user: options.mailbox, accessToken: token.accessToken },
    extraCaCertificates: config.extraCaCertificates,
    connectTimeoutMs: options.connectTimeoutMs,
    onThrottle: options.onThrottle,
    logger,
    logFields: { mailbox: options.mailbox },
    toError: (error) => imapErrorToMailbridge(error, { config, mailbox: options.mailbox, token }),
  });
  logger.log('debug', 'imap connected', { mailbox: options.mailbox, host: config.imap.host });
  return client;
}

/**
 * Opens a folder read-only. When the server refuses and the folder is not in
 * the mailbox's folder list, says that it does not exist (and which name is
 * closest) instead of pointing at the setup: servers word "no such folder"
 * differently (Dovecot `NO [NONEXISTENT] Mailbox doesn't exist`), but LIST
 * answers the same everywhere.
 */
export async function openFolder(
  client: ImapFlow,
  folder: string,
  context: { config: MailbridgeConfig; mailbox: string },
): Promise<MailboxObject> {
  try {
    return await client.mailboxOpen(folder, { readOnly: true });
  } catch (error) {
    const status = (error as ImapFlowErrorFields).responseStatus;
    if (status === 'NO' || status === 'BAD') {
      const paths = await client.list().then(
        (folders) => folders.map((f) => f.path),
        () => undefined,
      );
      if (paths && !paths.includes(folder)) {
        throw folderNotFoundError(folder, context.mailbox, paths, error);
      }
    }
    throw imapErrorToMailbridge(error, context);
  }
}

function folderNotFoundError(
  folder: string,
  mailbox: string,
  paths: readonly string[],
  cause: unknown,
): ProtocolError {
  const near = closestName(folder, paths);
  return new ProtocolError({
    code: 'IMAP_FOLDER_NOT_FOUND',
    message: `The folder '${displayText(folder)}' does not exist in ${displayText(mailbox)}${near ? ` (did you mean '${displayText(near)}'?)` : ''}`,
    remedy: `Run \`mailbridge imap folders --mailbox ${displayText(mailbox)}\` to list its folders, and give --folder a path as listed there.`,
    cause,
  });
}

/** Turns what imapflow threw into our error, with the diagnosis an admin can act on. */
export function imapErrorToMailbridge(
  error: unknown,
  context: { config: MailbridgeConfig; mailbox: string; token?: AccessToken },
): MailbridgeError {
  if (error instanceof MailbridgeError) return error;
  const err = (error instanceof Error ? error : new Error(String(error))) as Error &
    ImapFlowErrorFields;
  const { config, mailbox } = context;
  const where = `${config.imap.host}:${config.imap.port}`;
  // Checked first: Node puts OpenSSL's reason on the error as `reason`, which imapflow uses for a BYE.
  if (isPlainTextAnswerToTls(err)) return notTlsPortError('imap', where, err);

  if (err.authenticationFailed) {
    // The token is the likeliest culprit and the cheapest to check: say exactly what is missing.
    const claims = context.token ? decodeAccessTokenClaims(context.token.accessToken) : undefined;
    const fromClaims = claims
      ? diagnoseTokenClaims(claims, { protocol: 'imap', tenantId: config.tenantId })
      : undefined;
    // Servers word the refusal differently; whatever the words, AUTHENTICATE was refused.
    const diagnosis =
      fromClaims ??
      diagnoseImapResponse(responseLine(err)) ??
      diagnoseImapResponse('NO AUTHENTICATE failed.');
    if (diagnosis) return diagnosisToError(diagnosis, { mailbox, cause: err });
  }
  const line = responseLine(err);
  if (line) {
    const diagnosis = diagnoseImapResponse(line);
    if (diagnosis) return diagnosisToError(diagnosis, { mailbox, cause: err });
  }
  const code = networkErrorCode(err);
  if (isTlsVerificationError(err)) {
    return tlsUntrustedError(`the IMAP server ${where}`, 'the server', err);
  }
  if (isDroppedConnectionCode(code)) {
    return new NetworkError({
      code: 'IMAP_UNREACHABLE',
      message: `The IMAP server ${where} could not be reached or closed the connection (${err.reason ?? code})`,
      remedy:
        'Check MAILBRIDGE_IMAP_HOST / MAILBRIDGE_IMAP_PORT (993, implicit TLS), the network and the firewall.',
      cause: err,
    });
  }
  return new ProtocolError({
    code: 'IMAP_COMMAND_FAILED',
    message: `The IMAP server refused a command for ${mailbox}: ${line ?? err.message}`,
    remedy:
      'Run `mailbridge doctor --mailbox ADDRESS --imap` to find the setup step that is missing.',
    cause: err,
  });
}

/**
 * Whether imapflow's or Node's error code means the connection failed or was
 * cut (`ClosedAfterConnect*`: before the greeting or during the login), as
 * opposed to a refusal by the server.
 */
export function isDroppedConnectionCode(code: string): boolean {
  return (
    /^E[A-Z]+$/.test(code) ||
    /TIMEOUT/.test(code) ||
    code === 'NoConnection' ||
    code.startsWith('ClosedAfterConnect')
  );
}

/** The server's reply as one line (status + text), as the diagnostics table expects it. */
function responseLine(err: ImapFlowErrorFields, fallback?: string): string | undefined {
  if (err.reason && err.reason !== 'Server closed connection')
    return `* BYE ${err.reason.replace(/^BYE\s+/i, '')}`;
  if (err.responseStatus && err.responseText) return `${err.responseStatus} ${err.responseText}`;
  return fallback;
}
