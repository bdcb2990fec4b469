/**
 * The initial client responses of the two OAuth 2.0 SASL mechanisms, as sent
 * base64-encoded after `AUTHENTICATE <mech>` (IMAP, with SASL-IR) or
 * `AUTH <mech>` (SMTP). Exchange Online offers only XOAUTH2 (its IMAP
 * capabilities list `AUTH=XOAUTH2` and no `AUTH=OAUTHBEARER`); OAUTHBEARER is
 * here for servers that follow RFC 7628.
 *
 * Both formats separate their fields with ^A (0x01) and carry the user
 * unquoted, so a user containing 0x01 could append fields of its own choosing
 * (a second `auth=`): every input is checked before anything is built. The
 * returned string holds the access token: callers log a placeholder instead.
 */
import { ConfigurationError } from '../errors.js';

const SEPARATOR = '\x01';

/**
 * `user=<user>^Aauth=Bearer <token>^A^A`, base64 (Google's XOAUTH2, which
 * Microsoft adopted). The format has no escaping: the user goes in as is.
 */
export function buildXOAuth2(user: string, accessToken: string): string {
  checkUser(user);
  checkToken(accessToken);
  const message = `user=${user}${SEPARATOR}auth=Bearer ${accessToken}${SEPARATOR}${SEPARATOR}`;
  return Buffer.from(message, 'utf8').toString('base64');
}

/**
 * RFC 7628 §3.1: a GS2 header without channel binding (`n`) naming the user as
 * authzid, then `host`, `port` and `auth` key/value pairs, each ended by ^A,
 * and a final ^A. Base64 of the UTF-8 bytes.
 */
export function buildOAuthBearer(
  user: string,
  accessToken: string,
  host: string,
  port: number,
): string {
  checkUser(user);
  checkToken(accessToken);
  checkHost(host);
  checkPort(port);
  const gs2Header = `n,a=${escapeSaslName(user)},`;
  const message =
    `${gs2Header}${SEPARATOR}host=${host}${SEPARATOR}port=${port}` +
    `${SEPARATOR}auth=Bearer ${accessToken}${SEPARATOR}${SEPARATOR}`;
  return Buffer.from(message, 'utf8').toString('base64');
}

/**
 * RFC 5801 §4 `saslname`: `=` becomes `=3D` and `,` becomes `=2C`. `=` goes
 * first, or the `=` of `=2C` would be escaped again.
 */
function escapeSaslName(name: string): string {
  return name.replaceAll('=', '=3D').replaceAll(',', '=2C');
}

/** General category Cc: C0 controls, DEL and C1 controls. None belongs in an address or a host name. */
const CONTROL = /\p{Cc}/u;

/** Throws the error `buildXOAuth2` would for this user, before any token is fetched. */
export function checkSaslUser(user: string): void {
  checkUser(user);
}

function checkUser(user: string): void {
  if (typeof user !== 'string' || user.length === 0) {
    throw invalid(
      'user',
      'is empty',
      'Set the mailbox address to sign in as, e.g. user@contoso.com.',
    );
  }
  const match = CONTROL.exec(user);
  if (match) {
    throw invalid(
      'user',
      `contains the control character ${codePoint(match[0])} at position ${match.index}`,
      'Set the mailbox address without control characters or line breaks, e.g. user@contoso.com.',
    );
  }
}

/**
 * RFC 6750's b64token is a subset of printable ASCII; Entra's access tokens
 * are JWTs. The message never quotes the token, not even the offending part.
 */
function checkToken(accessToken: string): void {
  if (typeof accessToken !== 'string' || accessToken.length === 0) {
    throw invalid(
      'accessToken',
      'is empty',
      'Pass the access token the token provider returned; an empty token is a bug in the caller.',
    );
  }
  if (!/^[\x21-\x7e]+$/.test(accessToken)) {
    throw invalid(
      'accessToken',
      'contains whitespace, a control character or a non-ASCII character',
      'Pass the access token exactly as the token endpoint returned it, without a trailing newline.',
    );
  }
}

function checkHost(host: string): void {
  if (typeof host !== 'string' || host.length === 0) {
    throw invalid('host', 'is empty', 'Set the server host name, e.g. outlook.office365.com.');
  }
  const match = CONTROL.exec(host);
  if (match) {
    throw invalid(
      'host',
      `contains the control character ${codePoint(match[0])} at position ${match.index}`,
      'Set the server host name without control characters or line breaks.',
    );
  }
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    throw invalid(
      'port',
      `is ${String(port)}, not a whole number from 1 to 65535`,
      'Set the port the server listens on, e.g. 993 for IMAP or 587 for SMTP.',
    );
  }
}

function codePoint(char: string): string {
  return `U+${(char.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

function invalid(field: string, problem: string, remedy: string): ConfigurationError {
  const message = `SASL ${field} ${problem}`;
  return new ConfigurationError({
    code: 'SASL_INVALID_INPUT',
    message,
    remedy,
    problems: [{ field, message }],
  });
}
