/**
 * The individual checks of `mailbridge doctor`, in the order a working setup
 * passes them. Each returns a one-line detail on success and throws our error
 * (with its diagnosis) on failure.
 */
import { connect as tlsConnect } from 'node:tls';
import type { ImapFlow } from 'imapflow';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import { type AccessTokenClaims, decodeAccessTokenClaims } from '../auth/claims.js';
import type { AccessToken } from '../auth/token-provider.js';
import { diagnoseTokenClaims, diagnosisToError } from '../clients/diagnostics.js';
import { imapErrorToMailbridge } from '../clients/imap-client.js';
import { smtpErrorToMailbridge } from '../clients/smtp-transport.js';
import type { Endpoint, MailbridgeConfig } from '../config/types.js';
import { NetworkError, ProtocolError } from '../errors.js';
import { displayText } from '../util/display-text.js';
import {
  isTlsVerificationError,
  networkErrorCode,
  tlsUntrustedError,
} from '../util/network-errors.js';
import { servername, trustOptions } from '../util/tls.js';

const CONNECT_TIMEOUT_MS = 15_000;

/** Roles whose absence scoped SMTP expects: the grant is in Exchange, not in the token. */
const SCOPED_SMTP_ROLE_DIAGNOSES = new Set(['TOKEN_NO_ROLES', 'TOKEN_ROLE_MISSING']);
const SMTP_APP_ROLE = 'SMTP.SendAsApp';

/**
 * aud, tid and the roles the chosen protocols need. With `scopedSmtp`, SMTP
 * needs no role in the token, and the tenant-wide SMTP.SendAsApp there gives a
 * warning: it lets the app send as every mailbox, whatever the scope says.
 */
export function checkClaims(
  token: AccessToken,
  config: MailbridgeConfig,
  protocols: ('imap' | 'smtp')[],
  options: { scopedSmtp?: boolean } = {},
): { detail: string; warning?: string } {
  const claims: AccessTokenClaims | undefined = decodeAccessTokenClaims(token.accessToken);
  if (!claims) {
    throw new ProtocolError({
      code: 'TOKEN_NOT_JWT',
      message: 'The access token is not a JWT, so its claims cannot be checked',
      remedy: 'Check that AZURE_AUTHORITY_HOST points at Microsoft Entra ID.',
    });
  }
  const expectedAudience = config.scope.replace(/\/\.default$/, '');
  for (const protocol of protocols) {
    const diagnosis = diagnoseTokenClaims(claims, {
      protocol,
      expectedAudience,
      tenantId: config.tenantId,
    });
    const expected =
      options.scopedSmtp &&
      protocol === 'smtp' &&
      SCOPED_SMTP_ROLE_DIAGNOSES.has(diagnosis?.code ?? '');
    if (diagnosis && !expected) throw diagnosisToError(diagnosis);
  }
  const roleList = Array.isArray(claims.roles)
    ? claims.roles.filter((role): role is string => typeof role === 'string')
    : [];
  const roles =
    roleList.length > 0 ? roleList.map((r) => displayText(r, 100)).join(', ') : '(none)';
  const detail = `aud ${displayText(String(claims.aud), 200)}, tid ${displayText(String(claims.tid), 100)}, roles ${roles}${
    config.credential.kind === 'managed-identity' ? managedIdentityPrincipal(claims) : ''
  }`;
  const tenantWide =
    options.scopedSmtp &&
    roleList.some((role) => role.toLowerCase() === SMTP_APP_ROLE.toLowerCase());
  return tenantWide
    ? {
        detail,
        warning: `The token carries ${SMTP_APP_ROLE}, the tenant-wide Entra permission: it lets the app send as every mailbox, so the Exchange scope limits nothing. Remove the permission from the app (mailbridge setup entra --scoped-smtp writes a script that does) and revoke its admin consent.`,
      }
    : { detail };
}

/**
 * A managed identity is its own enterprise application: Exchange knows it by
 * the app id and object id its tokens carry, which the portal shows only
 * under Enterprise applications (not App registrations).
 */
function managedIdentityPrincipal(claims: AccessTokenClaims): string {
  const appId = displayText(String(claims.appid ?? claims.azp ?? '?'), 100);
  const objectId = displayText(String(claims.oid ?? '?'), 100);
  return `; managed identity app id ${appId}, object id ${objectId}: register it in Exchange with New-ServicePrincipal -AppId ${appId} -ObjectId ${objectId}`;
}

/** TCP + TLS handshake (certificate verified) and the server's first line. */
export function checkTlsGreeting(
  endpoint: Endpoint,
  protocol: 'imap',
  extraCaCertificates?: readonly string[],
): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({
      host: endpoint.host,
      port: endpoint.port,
      ...servername(endpoint.host),
      ...trustOptions(extraCaCertificates),
    });
    const where = `${endpoint.host}:${endpoint.port}`;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(unreachable(protocol, where, 'ETIMEDOUT'));
    }, CONNECT_TIMEOUT_MS);
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(
        isTlsVerificationError(error)
          ? tlsUntrustedError(where, 'the server', error)
          : unreachable(protocol, where, networkErrorCode(error), error),
      );
    });
    socket.once('data', (chunk: Buffer) => {
      clearTimeout(timer);
      const greeting = chunk.toString('utf8').split('\r\n')[0] ?? '';
      const protocolVersion = socket.getProtocol();
      socket.end();
      if (!greeting.startsWith('* OK')) {
        reject(
          new ProtocolError({
            code: 'IMAP_GREETING_UNEXPECTED',
            message: `${where} did not greet as an IMAP server (${greeting.slice(0, 80)})`,
            remedy: 'Check MAILBRIDGE_IMAP_HOST and MAILBRIDGE_IMAP_PORT (993, implicit TLS).',
          }),
        );
        return;
      }
      resolve(`${protocolVersion ?? 'TLS'}, certificate verified`);
    });
  });
}

export async function checkMailboxAccess(
  client: ImapFlow,
  config: MailbridgeConfig,
  mailbox: string,
): Promise<string> {
  try {
    const folders = await client.list();
    const inbox = await client.mailboxOpen('INBOX', { readOnly: true });
    return `${folders.length} folder${folders.length === 1 ? '' : 's'}; INBOX holds ${inbox.exists} message${inbox.exists === 1 ? '' : 's'}`;
  } catch (error) {
    throw imapErrorToMailbridge(error, { config, mailbox });
  }
}

/** Connect, EHLO and STARTTLS (required, verified), without logging in. */
export async function checkSmtpStartTls(
  config: MailbridgeConfig,
  mailbox: string,
): Promise<string> {
  const connection = new SMTPConnection({
    host: config.smtp.host,
    port: config.smtp.port,
    secure: config.smtp.port === 465,
    requireTLS: true,
    tls: {
      ...servername(config.smtp.host),
      minVersion: 'TLSv1.2',
      ...trustOptions(config.extraCaCertificates),
    },
    connectionTimeout: CONNECT_TIMEOUT_MS,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      connection.once('error', reject);
      connection.connect(() => resolve());
    });
    if (!connection.secure) {
      throw new ProtocolError({
        code: 'SMTP_NO_STARTTLS',
        message: `${config.smtp.host}:${config.smtp.port} did not upgrade the connection with STARTTLS`,
        remedy: 'Use the submission port 587 of smtp.office365.com (or the cloud’s SMTP host).',
      });
    }
    return 'STARTTLS, certificate verified';
  } catch (error) {
    throw smtpErrorToMailbridge(error, `${config.smtp.host}:${config.smtp.port}`, mailbox);
  } finally {
    connection.quit();
    connection.close();
  }
}

function unreachable(protocol: 'imap', where: string, code: string, cause?: unknown): NetworkError {
  return new NetworkError({
    code: 'IMAP_UNREACHABLE',
    message: `The ${protocol.toUpperCase()} server ${where} could not be reached (${code})`,
    remedy: `Check MAILBRIDGE_${protocol.toUpperCase()}_HOST / MAILBRIDGE_${protocol.toUpperCase()}_PORT, the network and the firewall.`,
    ...(cause ? { cause } : {}),
  });
}
