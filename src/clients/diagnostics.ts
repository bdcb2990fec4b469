/**
 * The diagnostics table: what Exchange Online's IMAP and SMTP servers answer,
 * and what an access token's claims say, mapped to a stable `code`, the likely
 * causes and the step that fixes it. Every command turns server replies into
 * errors through this one table, so the same refusal reads the same everywhere.
 *
 * Exchange's replies are terse and several setup mistakes share one reply
 * (`NO AUTHENTICATE failed.` covers a Graph token, a missing application
 * permission and a wrongly registered service principal alike), so an entry
 * lists every likely cause, most common first, and one fix that names the
 * concrete PowerShell or portal step.
 *
 * `retryable` says whether the same request can succeed later without anyone
 * changing the setup (an expired token, throttling, a 4xx that Exchange marks
 * temporary); `class` says which of our errors to raise when it does not. The
 * two are independent: `430 4.2.0 mailbox logon failure` is retryable (the
 * permission may still be propagating) but ends as an authentication error.
 *
 * Sources for the replies: Microsoft Learn ("Authenticate an IMAP, POP or SMTP
 * connection using OAuth", "Message storage and concurrent connection
 * throttling for SMTP Authenticated Submission"), Exchange's own SmtpResponse
 * constants (`430 4.2.0 STOREDRV; mailbox logon failure`) and IMAP proxy
 * (`BAD Command Error. 10` is its reply to an over-long command line), and
 * server transcripts in client issue trackers (imapflow, MailKit, nodemailer,
 * imapsync, imap_tools).
 */
import type { AccessTokenClaims } from '../auth/claims.js';
import { CLOUDS, GRAPH_RESOURCES } from '../config/clouds.js';
import {
  AuthenticationError,
  ConfigurationError,
  type MailbridgeError,
  type MailbridgeErrorOptions,
  NetworkError,
  ProtocolError,
} from '../errors.js';
import { asciiText } from '../util/display-text.js';
import { formatDuration } from '../util/format.js';

export type DiagnosisClass = 'authentication' | 'configuration' | 'protocol' | 'network';

/** Every `code` this module produces. Stable: scripts match on them. */
export type DiagnosisCode =
  | 'IMAP_AUTH_FAILED'
  | 'IMAP_NOT_CONNECTED'
  | 'IMAP_TOKEN_EXPIRED'
  | 'IMAP_THROTTLED'
  | 'IMAP_TOO_MANY_CONNECTIONS'
  | 'IMAP_COMMAND_TOO_LONG'
  | 'SMTP_AUTH_FAILED'
  | 'SMTP_AUTH_DISABLED_TENANT'
  | 'SMTP_AUTH_DISABLED_MAILBOX'
  | 'SMTP_AUTH_BLOCKED_SECURITY_DEFAULTS'
  | 'SMTP_AUTH_BLOCKED_POLICY'
  | 'SMTP_BASIC_AUTH_DISABLED'
  | 'SMTP_NOT_AUTHENTICATED'
  | 'SMTP_SEND_AS_DENIED'
  | 'SMTP_SEND_AS_NOT_PERMITTED'
  | 'SMTP_MAILBOX_LOGON_FAILURE'
  | 'SMTP_CONCURRENCY_LIMIT'
  | 'SMTP_DAILY_QUOTA_EXCEEDED'
  | 'SMTP_MAILBOX_FULL'
  | 'SMTP_TLS_VERSION_UNSUPPORTED'
  | 'SMTP_TENANT_EXTERNAL_LIMIT'
  | 'SMTP_DIRECT_SEND_REJECTED'
  | 'SMTP_TOKEN_EXPIRING'
  | 'SMTP_TOKEN_EXPIRED'
  | 'SMTP_HVE_SENDER_MISMATCH'
  | 'SMTP_HVE_FROM_MISMATCH'
  | 'SMTP_HVE_NOT_HVE_ACCOUNT'
  | 'SMTP_HVE_EXTERNAL_RECIPIENT'
  | 'TOKEN_WRONG_TENANT'
  | 'TOKEN_WRONG_AUDIENCE'
  | 'TOKEN_DELEGATED'
  | 'TOKEN_NO_ROLES'
  | 'TOKEN_ROLE_MISSING';

export interface Diagnosis {
  code: DiagnosisCode;
  protocol: 'imap' | 'smtp' | 'token';
  /** What happened, in one sentence without a final full stop. */
  summary: string;
  /** Likely causes, most common first. */
  causes: string[];
  /** The step that fixes it. */
  fix: string;
  /** Whether the same request can succeed later without a change to the setup. */
  retryable: boolean;
  /**
   * The least wait before the same request can succeed: what the server asked
   * for, when it said so, or what the limit's window needs (a tenant limit
   * over 24 hours is not worth trying again within the hour).
   */
  retryAfterMs?: number;
  /** Which of our errors to raise: see `diagnosisToError`. */
  class: DiagnosisClass;
  /** The server's reply, made log-safe and short; absent for token diagnoses. */
  reply?: string;
}

/** An IMAP reply: status (`NO`, `BAD`, `BYE`) and the human-readable text after it. */
export interface ImapMatcher {
  status: readonly ('NO' | 'BAD' | 'BYE')[];
  text: RegExp;
}

/** An SMTP reply: every field given must match. */
export interface SmtpMatcher {
  codes?: readonly number[];
  /** RFC 3463 enhanced status code, exactly (`5.7.139`). */
  enhanced?: string;
  text?: RegExp;
}

export interface DiagnosisEntry {
  code: DiagnosisCode;
  protocol: Diagnosis['protocol'];
  class: DiagnosisClass;
  retryable: boolean;
  /** Absent for the token entries, which `diagnoseTokenClaims` selects. */
  imap?: ImapMatcher;
  smtp?: SmtpMatcher;
  /** The general sentence; some diagnoses replace it with a more specific one. */
  summary: string;
  causes: readonly string[];
  fix: string;
  /** The least wait before trying again when the server names none (`Diagnosis.retryAfterMs`). */
  waitMs?: number;
}

const FULL_ACCESS =
  'Add-MailboxPermission -Identity <mailbox> -User <service principal> -AccessRights FullAccess';
const NEW_SERVICE_PRINCIPAL =
  'New-ServicePrincipal -AppId <app id> -ObjectId <Enterprise Application object id>';
const SEND_AS =
  'Add-RecipientPermission -Identity <address to send as> -Trustee <service principal> -AccessRights SendAs';
const PROPAGATION = 'Exchange takes up to about 30 minutes to apply a new or changed permission';
const HVE_APP_ACCESS = 'Add-HVEAppAccess -Identity <HVE account> -AppId <app id>';
/** TERRL counts over a sliding 24 hours: an hour is the least that can make a difference. */
const TENANT_LIMIT_WAIT_MS = 60 * 60 * 1000;

/**
 * The table, in match order: the first entry whose matcher fits wins, so
 * specific replies come before the general one with the same status code.
 */
export const DIAGNOSES: readonly DiagnosisEntry[] = [
  // ---- IMAP -------------------------------------------------------------
  {
    code: 'IMAP_TOKEN_EXPIRED',
    protocol: 'imap',
    class: 'network',
    retryable: true,
    imap: { status: ['BYE', 'NO', 'BAD'], text: /^Session invalidated - AccessTokenExpired\b/i },
    summary: 'Exchange Online ended the IMAP session because its access token expired',
    causes: [
      'the session outlived the access token it logged in with (app-only tokens live about an hour); Exchange checks the expiry during the session, not only at login',
    ],
    fix: 'Reconnect with a new token (the token provider fetches one); long sessions should reconnect before the token expires.',
  },
  {
    code: 'IMAP_THROTTLED',
    protocol: 'imap',
    class: 'network',
    retryable: true,
    imap: { status: ['NO', 'BAD'], text: /^Request is throttled\b/i },
    summary: "Exchange Online is throttling this mailbox's IMAP requests",
    causes: [
      'too many commands, or too heavy ones (whole message bodies of many messages at once), in a short time',
      'too many connections to the same mailbox at once, from this program or others using the same mailbox',
    ],
    fix: 'Wait for the backoff time the server suggested before the next command, then continue with fewer connections per mailbox and smaller fetch batches.',
  },
  {
    // Dovecot refuses the login itself (`NO [LIMIT] Maximum number of connections
    // from user+IP exceeded (mail_max_userip_connections=10)`) and imapflow marks
    // it `authenticationFailed`: without this entry it read as a token problem.
    // Exchange's own answer (`BAD User is authenticated but not connected`) more
    // often means missing FullAccess, so it stays IMAP_NOT_CONNECTED.
    code: 'IMAP_TOO_MANY_CONNECTIONS',
    protocol: 'imap',
    class: 'network',
    retryable: true,
    imap: {
      status: ['NO', 'BAD', 'BYE'],
      text: /^Maximum number of connections\b|^Too many simultaneous connections\b/i,
    },
    summary: 'The IMAP server refused the login: too many connections to the mailbox',
    causes: [
      'another run or client holds them: the server caps the connections one mailbox may have open at once (Exchange Online about 16 to 20, counting every program that uses it)',
    ],
    fix: "Another run or client holds them: wait for it to finish, or lower --connections (or the other programs' connection counts), then try again; the credentials and permissions are fine.",
  },
  {
    code: 'IMAP_AUTH_FAILED',
    protocol: 'imap',
    class: 'authentication',
    retryable: false,
    imap: { status: ['NO'], text: /^AUTHENTICATE failed\.?$/i },
    summary: 'Exchange Online refused the IMAP XOAUTH2 login',
    causes: [
      'the token is for another resource, e.g. Microsoft Graph (https://graph.microsoft.com/.default), instead of Exchange Online (https://outlook.office365.com/.default in the global cloud)',
      "the app has no APPLICATION permission IMAP.AccessAsApp of 'Office 365 Exchange Online', or admin consent was not granted",
      "the Exchange service principal was registered with New-ServicePrincipal using the App Registration's object id instead of the Enterprise Application's",
      'the mailbox address is not a mailbox of this tenant',
    ],
    fix:
      'Check the token with `mailbridge token` (roles must list IMAP.AccessAsApp). ' +
      `Then register the service principal with the Enterprise Application's object id (Enterprise applications > the app > Overview): ${NEW_SERVICE_PRINCIPAL}; ` +
      'Get-ServicePrincipal lists what is registered now.',
  },
  {
    code: 'IMAP_NOT_CONNECTED',
    protocol: 'imap',
    class: 'authentication',
    retryable: false,
    imap: { status: ['BAD', 'NO'], text: /^User is authenticated but not connected\.?$/i },
    summary: 'Exchange Online accepted the token but did not open the mailbox for the app',
    causes: [
      'the service principal has no FullAccess permission on this mailbox',
      `the mailbox is not yet provisioned for the service principal: the FullAccess grant, the service principal or the mailbox itself is younger than about 30 minutes (${PROPAGATION})`,
      'too many IMAP connections to this mailbox are open at once (Exchange allows about 16 to 20 per mailbox, counting every program that uses it)',
      'IMAP is disabled for this mailbox',
    ],
    fix:
      `Give the service principal FullAccess: ${FULL_ACCESS}; ` +
      "then wait up to 30 minutes before trying again; close other programs' connections to the mailbox; " +
      'turn IMAP on for the mailbox if it is off: Set-CASMailbox -Identity <mailbox> -ImapEnabled $true.',
  },
  {
    code: 'IMAP_COMMAND_TOO_LONG',
    protocol: 'imap',
    class: 'protocol',
    retryable: false,
    imap: { status: ['BAD'], text: /^Command Error\. 10\b/i },
    summary: 'Exchange Online refused an IMAP command line as too long and closes the connection',
    causes: [
      'one command named too many messages (a long list of UIDs); Exchange limits the length of a command line',
    ],
    fix: 'Send message sets in smaller batches, as ranges (1:500) rather than long lists of single UIDs.',
  },

  // ---- SMTP -------------------------------------------------------------
  // Enhanced codes that name one refusal, whatever the reply code: before the
  // general 535 entry, which would otherwise take 535 5.7.142 and 5.7.143.
  {
    code: 'SMTP_TENANT_EXTERNAL_LIMIT',
    protocol: 'smtp',
    class: 'network',
    retryable: true,
    smtp: { enhanced: '5.7.233' },
    waitMs: TENANT_LIMIT_WAIT_MS,
    summary:
      'Exchange Online refused the message: the organisation reached its daily limit of external recipients (the tenant external recipient rate limit, TERRL)',
    causes: [
      'the whole tenant, counting every mailbox, app and device, sent to more external recipients within 24 hours than its licences allow (about 500 x licences^0.7 + 9,500; 5,000 for a trial tenant)',
    ],
    fix:
      'Stop and wait: do not send again at once. The limit clears as the 24-hour window moves on (wait at least an hour). ' +
      'Find the senders in the Exchange admin center (Reports > Mail flow > Tenant outbound external recipients); the limit cannot be raised: send bulk mail to external recipients with Azure Communication Services Email.',
  },
  {
    code: 'SMTP_DIRECT_SEND_REJECTED',
    protocol: 'smtp',
    class: 'authentication',
    retryable: false,
    smtp: { enhanced: '5.7.68' },
    summary:
      'Exchange Online refused an unauthenticated message from your own domain: Direct Send is blocked for this organisation',
    causes: [
      'a device or application sends to the MX endpoint without signing in (Direct Send), and the organisation blocks that (Set-OrganizationConfig -RejectDirectSend $true)',
      'no inbound connector matches the sender (by certificate or IP address)',
    ],
    fix:
      'Make the device authenticate: point it at `mailbridge relay` (it accepts the device on your network and signs in to Exchange with XOAUTH2 for it), ' +
      'or at smtp.office365.com:587 with OAuth; or create an inbound connector for its certificate or public IP address.',
  },
  {
    code: 'SMTP_TOKEN_EXPIRING',
    protocol: 'smtp',
    class: 'network',
    retryable: true,
    smtp: { enhanced: '5.7.142' },
    summary:
      'Exchange Online refused the access token: it expires too soon (High Volume Email wants a token with 10 to 20 minutes left)',
    causes: [
      'the client reused a cached token close to its expiry; High Volume Email refuses tokens that expire within its margin',
    ],
    fix: "Sign in again with a new token, and renew tokens earlier for High Volume Email: keep at least 20 minutes of life (the token provider's refreshMarginMs).",
  },
  {
    code: 'SMTP_TOKEN_EXPIRED',
    protocol: 'smtp',
    class: 'network',
    retryable: true,
    smtp: { enhanced: '5.7.143' },
    summary: 'Exchange Online refused the access token: it has expired',
    causes: [
      'the client signed in with a cached token after its expiry, or the clock of this machine is wrong',
    ],
    fix: "Sign in again with a new token; check that this machine's clock is right (NTP).",
  },
  {
    code: 'SMTP_HVE_SENDER_MISMATCH',
    protocol: 'smtp',
    class: 'authentication',
    retryable: false,
    smtp: { enhanced: '5.7.62' },
    summary:
      'High Volume Email refused the envelope sender: MAIL FROM is not the HVE account that signed in',
    causes: [
      'the envelope sender (MAIL FROM) is another address than the HVE account the token was used for',
    ],
    fix: 'Send with the HVE account as the envelope sender (MAIL FROM), the same address the login named.',
  },
  {
    code: 'SMTP_HVE_FROM_MISMATCH',
    protocol: 'smtp',
    class: 'authentication',
    retryable: false,
    smtp: { enhanced: '5.6.241' },
    summary:
      "High Volume Email refused the message: its From header is not the HVE account's address",
    causes: [
      "the message's From header names another address than the HVE account (and the envelope sender)",
    ],
    fix: "Set the message's From header to the HVE account's address.",
  },
  {
    code: 'SMTP_HVE_NOT_HVE_ACCOUNT',
    protocol: 'smtp',
    class: 'authentication',
    retryable: false,
    smtp: { enhanced: '5.2.240' },
    summary: 'High Volume Email refused the sender: the address is not a High Volume Email account',
    causes: [
      'the address is an ordinary mailbox, or no HVE account with this address exists (New-MailUser -HVEAccount was not run)',
      'the address is being created and is not yet usable',
    ],
    fix: `Create the HVE account (New-MailUser -HVEAccount -Name <name> -PrimarySmtpAddress <address>) and let the app use it (${HVE_APP_ACCESS}); send ordinary mailboxes' mail through smtp.office365.com instead.`,
  },
  {
    code: 'SMTP_HVE_EXTERNAL_RECIPIENT',
    protocol: 'smtp',
    class: 'configuration',
    retryable: false,
    smtp: { enhanced: '5.5.105' },
    summary:
      'High Volume Email refused a recipient outside the organisation: it delivers to internal recipients only',
    causes: [
      "a recipient's domain is not an accepted domain of the tenant (High Volume Email has sent to internal recipients only since June 2025)",
    ],
    fix: 'Send mail for external recipients through a mailbox (smtp.office365.com) or Azure Communication Services Email; only internal recipients go through High Volume Email.',
  },
  {
    code: 'SMTP_AUTH_DISABLED_TENANT',
    protocol: 'smtp',
    class: 'authentication',
    retryable: false,
    smtp: { codes: [535], text: /SmtpClientAuthentication is disabled for the Tenant/i },
    summary: 'SMTP AUTH (client submission) is turned off for the whole organisation',
    causes: [
      'the organisation-wide SmtpClientAuthenticationDisabled setting is on and the mailbox has no setting of its own that turns SMTP AUTH on',
    ],
    fix:
      'Turn SMTP AUTH on for the organisation: Set-TransportConfig -SmtpClientAuthenticationDisabled $false ' +
      "(Exchange admin center > Settings > Mail flow: clear 'Turn off SMTP AUTH protocol for your organization'), " +
      'or only for this mailbox: Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false. See https://aka.ms/smtp_auth_disabled.',
  },
  {
    code: 'SMTP_AUTH_DISABLED_MAILBOX',
    protocol: 'smtp',
    class: 'authentication',
    retryable: false,
    smtp: { codes: [535], text: /SmtpClientAuthentication is disabled for the Mailbox/i },
    summary: 'SMTP AUTH (client submission) is turned off for this mailbox',
    causes: ['the mailbox has SmtpClientAuthenticationDisabled set to true'],
    fix:
      'Turn SMTP AUTH on for the mailbox: Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false ' +
      '(Microsoft 365 admin center > Active users > the mailbox > Mail > Manage email apps > Authenticated SMTP).',
  },
  {
    code: 'SMTP_AUTH_BLOCKED_SECURITY_DEFAULTS',
    protocol: 'smtp',
    class: 'authentication',
    retryable: false,
    smtp: { codes: [535], text: /security defaults policy/i },
    summary: "Entra ID's security defaults blocked the SMTP sign-in",
    causes: [
      'the sign-in used a password (AUTH LOGIN or PLAIN), which security defaults block as legacy authentication; XOAUTH2 with an app-only token is not affected',
      'security defaults are on for the tenant',
    ],
    fix:
      'Sign in with XOAUTH2 and an app-only token, not a password: remove any SMTP password from the configuration. ' +
      'If password sign-in is really needed, an administrator must replace security defaults with Conditional Access policies (Entra admin center > Overview > Properties > Manage security defaults).',
  },
  {
    code: 'SMTP_AUTH_BLOCKED_POLICY',
    protocol: 'smtp',
    class: 'authentication',
    retryable: false,
    smtp: { codes: [535], text: /did not meet the criteria to be authenticated/i },
    summary: 'Entra ID refused the SMTP sign-in by policy',
    causes: [
      'a Conditional Access policy blocks this sign-in (for a workload identity, typically by network location)',
      'the sign-in used a password where multi-factor authentication is required',
    ],
    fix: 'Find the sign-in in Entra ID sign-in logs (service principal sign-ins for app-only tokens) and the policy that blocked it, then exclude this app or allow its network location.',
  },
  {
    code: 'SMTP_BASIC_AUTH_DISABLED',
    protocol: 'smtp',
    class: 'authentication',
    retryable: false,
    smtp: {
      text: /Basic authentication is not supported for Client Submission|basic authentication is disabled/i,
    },
    summary: 'Exchange Online refused a password (basic authentication) sign-in for SMTP',
    causes: [
      'the client sent a user name and password (AUTH LOGIN or PLAIN) instead of an OAuth token; Exchange Online no longer accepts basic authentication for client submission',
    ],
    fix:
      'Authenticate with XOAUTH2 and an app-only token (the APPLICATION permission SMTP.SendAsApp), and remove any SMTP password from the configuration. ' +
      'Exchange Online turns password sign-in for SMTP AUTH off by default at the end of December 2026 and removes it later: ' +
      'a device that can only send with a password can send through `mailbridge relay`, which signs in to Exchange with XOAUTH2 for it.',
  },
  {
    code: 'SMTP_AUTH_FAILED',
    protocol: 'smtp',
    class: 'authentication',
    retryable: false,
    smtp: { codes: [535] },
    summary: 'Exchange Online refused the SMTP XOAUTH2 login',
    causes: [
      'the token is for another resource, e.g. Microsoft Graph (https://graph.microsoft.com/.default), instead of Exchange Online (https://outlook.office365.com/.default in the global cloud)',
      "the app has no APPLICATION permission SMTP.SendAsApp of 'Office 365 Exchange Online', or admin consent was not granted",
      "the Exchange service principal was registered with New-ServicePrincipal using the App Registration's object id instead of the Enterprise Application's",
      `the permissions were changed less than about 30 minutes ago (${PROPAGATION})`,
      `on the High Volume Email endpoint (smtp.hve.mx.microsoft): the app is not among the HVE account's allowed apps (${HVE_APP_ACCESS}), or lacks the APPLICATION permission Mail.Send of 'Office 365 Exchange Online'`,
    ],
    fix:
      'Check the token with `mailbridge token` (roles must list SMTP.SendAsApp). ' +
      `Then register the service principal with the Enterprise Application's object id: ${NEW_SERVICE_PRINCIPAL}, ` +
      `give it the mailbox: ${FULL_ACCESS}, and wait up to 30 minutes.`,
  },
  {
    code: 'SMTP_NOT_AUTHENTICATED',
    protocol: 'smtp',
    class: 'authentication',
    retryable: false,
    smtp: { codes: [530], enhanced: '5.7.57' },
    summary: 'Exchange Online refused to accept mail from a session that had not signed in',
    causes: [
      'the client sent MAIL FROM without an AUTH step (no token configured, or authentication switched off in the client)',
      'an earlier AUTH failed and the client went on sending',
      'the session did not upgrade with STARTTLS on port 587, and Exchange Online offers AUTH only over TLS',
    ],
    fix: 'Connect to port 587, upgrade with STARTTLS and sign in with AUTH XOAUTH2 before sending; look for an earlier 535 reply in the log.',
  },
  {
    code: 'SMTP_SEND_AS_DENIED',
    protocol: 'smtp',
    class: 'authentication',
    retryable: false,
    smtp: { text: /SendAsDenied/i },
    summary: 'Exchange Online refused the From address: the mailbox may not send as it',
    causes: [
      'the From address is not the address of the mailbox the app signed in as',
      'Send As permission on that address was never granted, or was granted less than about 30 minutes ago',
    ],
    fix: `Send with the From address of the mailbox the app signs in as, or grant Send As on the other address: ${SEND_AS}, then wait up to 30 minutes.`,
  },
  {
    code: 'SMTP_SEND_AS_NOT_PERMITTED',
    protocol: 'smtp',
    class: 'authentication',
    retryable: false,
    smtp: { codes: [550], enhanced: '5.7.60' },
    summary: 'Exchange Online refused the sender address: the client may not send as it',
    causes: [
      'the envelope sender (MAIL FROM) or From address is not the address of the mailbox the app signed in as',
      'Send As permission on that address was never granted, or was granted less than about 30 minutes ago',
    ],
    fix: `Send with the address of the mailbox the app signs in as, or grant Send As on the other address: ${SEND_AS}, then wait up to 30 minutes.`,
  },
  {
    code: 'SMTP_MAILBOX_LOGON_FAILURE',
    protocol: 'smtp',
    class: 'authentication',
    retryable: true,
    smtp: { codes: [430], text: /STOREDRV; mailbox logon failure/i },
    summary:
      'Exchange Online accepted the SMTP login but could not open the mailbox to submit the message',
    causes: [
      'the service principal has no FullAccess permission on this mailbox',
      `the permission was granted less than about 30 minutes ago (${PROPAGATION}); Exchange marks this reply temporary`,
      "the Exchange service principal was registered with the App Registration's object id instead of the Enterprise Application's",
    ],
    fix: `Give the service principal FullAccess: ${FULL_ACCESS}; then wait up to 30 minutes and send again.`,
  },
  {
    code: 'SMTP_CONCURRENCY_LIMIT',
    protocol: 'smtp',
    class: 'network',
    retryable: true,
    smtp: {
      codes: [432],
      text: /Concurrent connections limit exceeded|sender thread limit exceeded/i,
    },
    summary:
      'Exchange Online refused the message: too many connections are sending as this mailbox at once',
    causes: [
      'more than three connections submit messages for this mailbox at the same time, counting every program that sends as it',
    ],
    fix: 'Send again shortly, and keep to at most three sending connections per mailbox (lower the pool size), or give each program its own mailbox.',
  },
  {
    code: 'SMTP_DAILY_QUOTA_EXCEEDED',
    protocol: 'smtp',
    class: 'protocol',
    retryable: false,
    smtp: { text: /SubmissionQuotaExceededException/i },
    summary: 'Exchange Online refused the message: the mailbox reached its daily sending limit',
    causes: ['the mailbox sent to more than 10,000 recipients within 24 hours'],
    fix: 'Sending resumes as the 24-hour window moves on. Spread the volume over several mailboxes, or use a service made for bulk mail.',
  },
  {
    code: 'SMTP_MAILBOX_FULL',
    protocol: 'smtp',
    class: 'protocol',
    retryable: false,
    smtp: { enhanced: '5.2.2', text: /mailbox full/i },
    summary: 'Exchange Online refused the message: the sending mailbox is full',
    causes: [
      'every message sent over SMTP is kept in Sent Items, which counts towards the mailbox quota',
    ],
    fix: 'Empty Sent Items, or give that folder a retention policy that deletes old items, so the mailbox stays under its quota.',
  },
  {
    code: 'SMTP_TLS_VERSION_UNSUPPORTED',
    protocol: 'smtp',
    class: 'configuration',
    retryable: false,
    smtp: { codes: [421], enhanced: '4.7.66' },
    summary: 'Exchange Online refused the connection: it used TLS 1.0 or 1.1',
    causes: ['a TLS setting limits the client to TLS 1.0 or 1.1'],
    fix: 'Remove TLS settings that cap the version below 1.2 (Node.js 20 negotiates TLS 1.2 or 1.3 by default). See https://aka.ms/smtp_auth_tls.',
  },

  // ---- Token claims (selected by diagnoseTokenClaims) ---------------------
  {
    code: 'TOKEN_WRONG_TENANT',
    protocol: 'token',
    class: 'configuration',
    retryable: false,
    summary: 'The access token was issued by another tenant than the configured one',
    causes: [
      "AZURE_TENANT_ID or AZURE_AUTHORITY_HOST names another tenant, or a shared authority ('common', 'organizations') instead of the mailbox's tenant",
    ],
    fix: 'Set AZURE_TENANT_ID to the Directory (tenant) ID of the tenant that holds the mailboxes, then get a new token.',
  },
  {
    code: 'TOKEN_WRONG_AUDIENCE',
    protocol: 'token',
    class: 'configuration',
    retryable: false,
    summary: 'The access token is not for Exchange Online',
    causes: [
      "the scope asks for another resource's /.default, e.g. Microsoft Graph (MAILBRIDGE_SCOPE)",
      'the scope belongs to another national cloud than the IMAP and SMTP hosts (MAILBRIDGE_CLOUD)',
    ],
    fix: "Ask for the Exchange Online resource's /.default (https://outlook.office365.com/.default in the global cloud): leave MAILBRIDGE_SCOPE unset to use the cloud's, then get a new token.",
  },
  {
    code: 'TOKEN_DELEGATED',
    protocol: 'token',
    class: 'authentication',
    retryable: false,
    summary: 'The access token is a delegated (user) token, not an app-only one',
    causes: [
      'it was acquired with a user sign-in (authorization code, device code or password grant) instead of the client credentials grant',
    ],
    fix: "Use an app-only token from the client credentials grant (mailbridge's token provider gets one), with the APPLICATION permissions IMAP.AccessAsApp / SMTP.SendAsApp of 'Office 365 Exchange Online'.",
  },
  {
    code: 'TOKEN_NO_ROLES',
    protocol: 'token',
    class: 'authentication',
    retryable: false,
    summary:
      'The token carries no application roles: delegated permissions were granted instead of application permissions, or admin consent is missing',
    causes: [
      'the app registration lists the delegated permissions IMAP.AccessAsUser.All / SMTP.Send instead of the application permissions IMAP.AccessAsApp / SMTP.SendAsApp',
      'the application permissions were added but admin consent was not granted',
      "the permissions were added under Microsoft Graph instead of 'Office 365 Exchange Online'",
    ],
    fix:
      "In the app registration's API permissions, add the APPLICATION permission IMAP.AccessAsApp / SMTP.SendAsApp of 'Office 365 Exchange Online' " +
      '(Add a permission > APIs my organization uses > Office 365 Exchange Online > Application permissions) and grant admin consent, then get a new token.',
  },
  {
    code: 'TOKEN_ROLE_MISSING',
    protocol: 'token',
    class: 'authentication',
    retryable: false,
    summary: 'The token lacks the application role this protocol needs',
    causes: [
      'only the permission for another protocol was added (IMAP.AccessAsApp, SMTP.SendAsApp and POP.AccessAsApp are separate)',
      'full_access_as_app (EWS) or Microsoft Graph permissions were granted: they do not cover IMAP, POP or SMTP',
      'the permission was added but admin consent was not granted for it',
    ],
    fix: "In the app registration's API permissions, add the missing APPLICATION permission of 'Office 365 Exchange Online' and grant admin consent, then get a new token.",
  },
];

const BY_CODE: ReadonlyMap<DiagnosisCode, DiagnosisEntry> = new Map(
  DIAGNOSES.map((entry) => [entry.code, entry]),
);

// ---- IMAP ------------------------------------------------------------------

interface ImapReply {
  /** `NO`, `BAD`, `BYE`, … or undefined when the line carries only text. */
  status: string | undefined;
  text: string;
}

/**
 * `A1 NO AUTHENTICATE failed.`, `* BYE Session invalidated - AccessTokenExpired`,
 * the same without a tag, or the text alone. A bracketed response code
 * (`[AUTHENTICATIONFAILED]`) is skipped.
 */
function parseImapLine(line: string): ImapReply {
  const first = firstLine(line);
  const m = /^(?:(?:\*|[^\s*]+)\s+)?(OK|NO|BAD|BYE|PREAUTH)(?:\s+|$)(?:\[[^\]]*\]\s*)?(.*)$/i.exec(
    first,
  );
  if (!m) return { status: undefined, text: first };
  return { status: (m[1] as string).toUpperCase(), text: (m[2] ?? '').trim() };
}

/**
 * What the table says about one IMAP reply from Exchange Online, or
 * `undefined`. Takes the line tagged (`A1 NO …`), untagged (`* BYE …`), as
 * status and text (`NO AUTHENTICATE failed.`, what imapflow's errors give), or
 * nothing at all.
 */
export function diagnoseImapResponse(line: string | undefined): Diagnosis | undefined {
  if (!line) return undefined;
  const reply = parseImapLine(line);
  for (const entry of DIAGNOSES) {
    const matcher = entry.imap;
    if (!matcher) continue;
    if (reply.status && !(matcher.status as readonly string[]).includes(reply.status)) continue;
    if (!matcher.text.test(reply.text)) continue;
    const retryAfterMs = entry.code === 'IMAP_THROTTLED' ? parseThrottleBackoff(line) : undefined;
    return build(entry, {
      reply: line,
      ...(retryAfterMs !== undefined
        ? {
            retryAfterMs,
            // The exact figure too, as the reply says it, when the words round it.
            summary: `${entry.summary}; it asked to wait ${formatDuration(retryAfterMs)}${retryAfterMs >= 1000 ? ` (${retryAfterMs} ms)` : ''}`,
          }
        : {}),
    });
  }
  return undefined;
}

/**
 * The wait Exchange Online suggests in its throttling reply, in milliseconds:
 * `NO Request is throttled. Suggested Backoff Time: 299609 milliseconds` → 299609.
 * Exchange sends it as `NO` or `BAD`; imapflow waits part of it itself.
 */
export function parseThrottleBackoff(line: string): number | undefined {
  const m = /Suggested Backoff Time:\s*(\d{1,10})\s*milliseconds/i.exec(line);
  if (!m) return undefined;
  const ms = Number(m[1]);
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** What is known when Exchange refuses an IMAP login although the token's claims are right. */
export interface ExchangeSideContext {
  mailbox: string;
  /** The configured tenant (GUID or verified domain). */
  tenantId: string;
  /** The configured app id; the token's `appid` when it names one. */
  clientId: string;
  /** The configured cloud, added to the command when it is not the global one. */
  cloud?: string;
  claims: AccessTokenClaims;
}

/**
 * IMAP_AUTH_FAILED once the token's claims have been checked and are right
 * (Exchange's audience, this tenant, IMAP.AccessAsApp): the token-side causes
 * are ruled out, so the Exchange side leads, and the fix is the one command
 * that writes the Exchange setup script, with every value already filled in.
 *
 * The object id comes from the token's `oid` claim. In an app-only token
 * `oid` (and `sub`) is the object id of the app's service principal in the
 * tenant, which is what the portal calls the Enterprise Application's Object
 * ID and what New-ServicePrincipal -ObjectId wants. It is read from an
 * unverified token, so the advice says where to compare it.
 */
export function diagnoseExchangeSideImapRefusal(context: ExchangeSideContext): Diagnosis {
  const { appId, objectId, shown, command, objectIdNote } = exchangeSetupAdvice(context);
  return build(entry('IMAP_AUTH_FAILED'), {
    summary: `Exchange Online refused the IMAP XOAUTH2 login of app ${appId} for ${shown}, although the token is right (Exchange audience, this tenant, IMAP.AccessAsApp): the refusal is on the Exchange side`,
    causes: [
      `Exchange has no service principal for app ${appId} (New-ServicePrincipal was not run in this tenant), or it was registered with the App Registration's object id instead of the Enterprise Application's${objectId ? ` (${objectId})` : ''}`,
      `the service principal has no FullAccess on ${shown} (Add-MailboxPermission)`,
      `the service principal or the FullAccess grant is younger than about 30 minutes (${PROPAGATION})`,
      `${shown} is not a mailbox of this tenant`,
    ],
    fix:
      `Write the Exchange setup script with \`${command}\` and have an Exchange administrator run it (pwsh -File setup-exchange.ps1 -WhatIf first); it registers the service principal and grants FullAccess where missing, and fails on any gap. ` +
      objectIdNote +
      'Then wait up to 30 minutes and run doctor again.',
  });
}

/**
 * IMAP_NOT_CONNECTED once the login itself succeeded on one connection of
 * ours, with claims already checked: the token and the service principal are
 * ruled out, and so is our own connection count. What is left, most likely
 * first: no FullAccess on this mailbox, a grant (or mailbox) too new to be
 * provisioned, other programs' connections, IMAP turned off.
 */
export function diagnoseNotConnectedAfterLogin(context: ExchangeSideContext): Diagnosis {
  const { appId, shown, command, objectIdNote } = exchangeSetupAdvice(context);
  return build(entry('IMAP_NOT_CONNECTED'), {
    summary: `Exchange Online accepted the IMAP login of app ${appId} but did not open ${shown} for it (the token is right and the service principal is known to Exchange: the mailbox side is missing)`,
    causes: [
      `the service principal has no FullAccess on ${shown} (Add-MailboxPermission)`,
      `${shown} is not yet provisioned for the service principal: the FullAccess grant or the mailbox is younger than about 30 minutes (${PROPAGATION})`,
      `other programs hold too many IMAP connections to ${shown} (about 16 to 20 per mailbox; doctor opened one)`,
      `IMAP is disabled for ${shown} (Set-CASMailbox -ImapEnabled)`,
    ],
    fix:
      `Grant FullAccess with the Exchange setup script: \`${command}\`, run by an Exchange administrator (pwsh -File setup-exchange.ps1 -WhatIf first). ` +
      objectIdNote +
      "Then wait up to 30 minutes and run doctor again; if it still fails, close other programs' connections to the mailbox and check Get-CASMailbox <mailbox> | Select ImapEnabled.",
  });
}

/** The app, the mailbox as shown, and the `mailbridge setup exchange` command with what is known filled in. */
function exchangeSetupAdvice(context: ExchangeSideContext): {
  appId: string;
  objectId: string | undefined;
  shown: string;
  command: string;
  objectIdNote: string;
} {
  const appId =
    guidClaim(context.claims.appid) ?? guidClaim(context.claims.azp) ?? context.clientId;
  const objectId = guidClaim(context.claims.oid);
  const mailbox = SIMPLE_ADDRESS.test(context.mailbox) ? context.mailbox : undefined;
  const shown = mailbox ?? 'this mailbox';
  const command = [
    'mailbridge setup exchange',
    `--tenant ${context.tenantId}`,
    `--app-id ${appId}`,
    `--object-id ${objectId ?? '<Enterprise Application object id>'}`,
    `--mailbox ${mailbox ?? '<mailbox>'}`,
    ...(context.cloud && context.cloud !== 'global' ? [`--cloud ${context.cloud}`] : []),
    '--out setup-exchange.ps1',
  ].join(' ');
  const objectIdNote = objectId
    ? `The object id is the token's oid claim, which in an app-only token is the object id of the app's service principal, i.e. the Enterprise Application's Object ID (a reading of the token, not checked by Exchange: compare it with Entra ID > Enterprise applications > the app > Overview; the App Registration's Object ID is a different one). `
    : "Fill in the Enterprise Application's Object ID (Entra ID > Enterprise applications > the app > Overview; not the App Registration's Object ID): the token carries no oid claim. ";
  return { appId, objectId, shown, command, objectIdNote };
}

/** An address printed into a command line as it is; anything else is left as a placeholder. */
const SIMPLE_ADDRESS = /^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}$/;

function guidClaim(value: unknown): string | undefined {
  return typeof value === 'string' && GUID.test(value) ? value : undefined;
}

// ---- SMTP ------------------------------------------------------------------

/** A reply as nodemailer reports it on its errors (`err.responseCode`, `err.response`). */
export interface SmtpResponseFields {
  responseCode?: number;
  response?: string;
}

interface SmtpReply {
  code: number | undefined;
  enhanced: string | undefined;
  /** The text of every line, without the codes. */
  text: string;
  raw: string;
}

/**
 * `535 5.7.3 Authentication unsuccessful [host …]`, also multi-line
 * (`550-…` continuation lines). The numeric code from nodemailer's
 * `responseCode` wins over the one in the text.
 */
function parseSmtpReply(input: string | SmtpResponseFields): SmtpReply {
  const raw = typeof input === 'string' ? input : (input.response ?? '');
  const given = typeof input === 'string' ? undefined : input.responseCode;
  let code: number | undefined;
  let enhanced: string | undefined;
  const texts: string[] = [];
  for (const line of raw.split(/\r?\n/)) {
    if (!line.trim()) continue;
    const m = /^(\d{3})(?:[ -]|$)\s*(?:([245]\.\d{1,3}\.\d{1,3})(?:\s+|$))?(.*)$/.exec(line);
    if (m) {
      code ??= Number(m[1]);
      enhanced ??= m[2];
      texts.push((m[3] ?? '').trim());
    } else {
      // nodemailer keeps only the text when the reply had no code (rare), or the
      // caller passed the text alone: it may still start with an enhanced code.
      const e = /^([245]\.\d{1,3}\.\d{1,3})(?:\s+|$)(.*)$/.exec(line.trim());
      if (e) {
        enhanced ??= e[1];
        texts.push((e[2] ?? '').trim());
      } else {
        texts.push(line.trim());
      }
    }
  }
  if (Number.isInteger(given) && (given as number) >= 200 && (given as number) <= 599) {
    code = given;
  }
  return { code, enhanced, text: texts.join(' '), raw };
}

function smtpMatches(matcher: SmtpMatcher, reply: SmtpReply): boolean {
  if (matcher.codes && (reply.code === undefined || !matcher.codes.includes(reply.code))) {
    return false;
  }
  if (matcher.enhanced && reply.enhanced !== matcher.enhanced) return false;
  if (matcher.text && !matcher.text.test(reply.text)) return false;
  return true;
}

/**
 * What the table says about one SMTP reply from Exchange Online, or
 * `undefined`. Takes the reply line(s), or a nodemailer error's
 * `{ responseCode, response }`.
 */
export function diagnoseSmtpResponse(input: string | SmtpResponseFields): Diagnosis | undefined {
  const reply = parseSmtpReply(input);
  if (!reply.raw.trim() && reply.code === undefined) return undefined;
  for (const entry of DIAGNOSES) {
    if (!entry.smtp || !smtpMatches(entry.smtp, reply)) continue;
    const summary = entry.code === 'SMTP_SEND_AS_DENIED' ? sendAsSummary(reply.text) : undefined;
    return build(entry, { reply: reply.raw, ...(summary ? { summary } : {}) });
  }
  return undefined;
}

/** `SendAsDenied; a@x not allowed to send as b@x; …` names both addresses: say so. */
function sendAsSummary(text: string): string | undefined {
  const m = /(\S+@\S+?);?\s+not allowed to send as\s+(\S+@[^\s;]+)/i.exec(text);
  if (!m) return undefined;
  const signedIn = printable(m[1] as string, 254);
  const from = printable(m[2] as string, 254);
  if (!signedIn || !from) return undefined;
  return `Exchange Online refused the From address: ${signedIn} may not send as ${from}`;
}

// ---- Token claims ----------------------------------------------------------

export interface TokenNeeds {
  protocol: 'imap' | 'smtp' | 'pop';
  /**
   * The Exchange resource the configuration asks for, with or without
   * `/.default`. When absent, any cloud's Exchange Online resource is accepted.
   */
  expectedAudience?: string;
  /** The configured tenant; compared only when it is a GUID (a domain cannot be). */
  tenantId?: string;
}

/** The application role each protocol needs on Exchange Online. */
export const REQUIRED_ROLES: Readonly<Record<TokenNeeds['protocol'], string>> = {
  imap: 'IMAP.AccessAsApp',
  smtp: 'SMTP.SendAsApp',
  pop: 'POP.AccessAsApp',
};

/** Office 365 Exchange Online's application id: v2.0 tokens carry it as `aud`. */
const EXCHANGE_APP_ID = '00000002-0000-0ff1-ce00-000000000000';

const EXCHANGE_AUDIENCES: ReadonlySet<string> = new Set([
  ...Object.values(CLOUDS).map((cloud) => normalizeAudience(cloud.scope)),
  // Exchange Online's other identifier URI in the global cloud.
  'https://outlook.office.com',
  EXCHANGE_APP_ID,
]);

const GRAPH_AUDIENCES: ReadonlySet<string> = new Set(GRAPH_RESOURCES.map(normalizeAudience));

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * What is wrong with an access token for the given protocol, checked in the
 * order an administrator has to fix it: the tenant, the resource (audience),
 * the kind of token (app-only), then the application role. `undefined` when
 * the claims are fine, which does not mean Exchange will accept the login: the
 * service principal and mailbox permissions are not in the token.
 */
export function diagnoseTokenClaims(
  claims: AccessTokenClaims,
  needs: TokenNeeds,
): Diagnosis | undefined {
  const tid = typeof claims.tid === 'string' ? claims.tid : undefined;
  if (
    needs.tenantId &&
    GUID.test(needs.tenantId) &&
    tid &&
    tid.toLowerCase() !== needs.tenantId.toLowerCase()
  ) {
    return build(entry('TOKEN_WRONG_TENANT'), {
      summary: `The access token was issued by tenant ${printable(tid) ?? '(unreadable)'}, not the configured tenant ${needs.tenantId}`,
    });
  }

  const audiences = audiencesOf(claims.aud);
  if (audiences.length > 0 && !audiences.some((aud) => isExpectedAudience(aud, needs))) {
    const shown = printable(audiences.join(', ')) ?? '(unreadable)';
    const expected = needs.expectedAudience
      ? normalizeAudience(needs.expectedAudience)
      : 'the Exchange Online resource';
    const graph = audiences.some((aud) => GRAPH_AUDIENCES.has(normalizeAudience(aud)));
    return build(entry('TOKEN_WRONG_AUDIENCE'), {
      summary: graph
        ? `The access token is for Microsoft Graph (aud ${shown}), not Exchange Online: IMAP and SMTP refuse it`
        : `The access token is for ${shown}, not ${expected}`,
    });
  }

  if (typeof claims.scp === 'string' && claims.scp.trim()) {
    const scopes = printable(claims.scp, 200);
    return build(entry('TOKEN_DELEGATED'), {
      summary: `The access token is a delegated (user) token: it carries scopes${scopes ? ` (${scopes})` : ''} instead of application roles`,
    });
  }

  const needed = REQUIRED_ROLES[needs.protocol];
  const roles = Array.isArray(claims.roles)
    ? claims.roles.filter((role): role is string => typeof role === 'string')
    : [];
  if (roles.length === 0) {
    const noRoles = entry('TOKEN_NO_ROLES');
    return build(noRoles, {
      fix: noRoles.fix.replace('IMAP.AccessAsApp / SMTP.SendAsApp', needed),
    });
  }
  if (!roles.some((role) => role.toLowerCase() === needed.toLowerCase())) {
    const shown = roles
      .map((role) => printable(role, 100))
      .filter(Boolean)
      .slice(0, 10)
      .join(', ');
    const missing = entry('TOKEN_ROLE_MISSING');
    return build(missing, {
      summary: `The token's application roles (${shown || 'unreadable'}) do not include ${needed}, which ${needs.protocol.toUpperCase()} needs`,
      fix: missing.fix.replace(
        'the missing APPLICATION permission',
        `the APPLICATION permission ${needed}`,
      ),
    });
  }
  return undefined;
}

function audiencesOf(aud: unknown): string[] {
  if (typeof aud === 'string') return [aud];
  if (Array.isArray(aud)) return aud.filter((a): a is string => typeof a === 'string');
  return [];
}

function isExpectedAudience(aud: string, needs: TokenNeeds): boolean {
  const value = normalizeAudience(aud);
  if (GRAPH_AUDIENCES.has(value)) return false;
  if (value === EXCHANGE_APP_ID) return true;
  if (!needs.expectedAudience) return EXCHANGE_AUDIENCES.has(value);
  const expected = normalizeAudience(needs.expectedAudience);
  if (value === expected) return true;
  // outlook.office365.com and outlook.office.com name the same global resource.
  const global = normalizeAudience(CLOUDS.global.scope);
  return expected === global && value === 'https://outlook.office.com';
}

/** `https://outlook.office365.com/.default` and `…com/` compare as `https://outlook.office365.com`. */
function normalizeAudience(value: string): string {
  return value
    .trim()
    .toLowerCase()
    .replace(/\/\.default$/, '')
    .replace(/\/+$/, '');
}

// ---- Errors ----------------------------------------------------------------

const CLASSES: Record<DiagnosisClass, new (options: MailbridgeErrorOptions) => MailbridgeError> = {
  configuration: ConfigurationError,
  authentication: AuthenticationError,
  protocol: ProtocolError,
  network: NetworkError,
};

/**
 * Our error for a diagnosis: the class picks the subclass (and so the exit
 * code: configuration 2, authentication 3, protocol 1, network 4). The message
 * is the summary with the mailbox and the server's reply, then the likely
 * causes; the remedy is the fix.
 */
export function diagnosisToError(
  d: Diagnosis,
  context: { mailbox?: string; cause?: unknown } = {},
): MailbridgeError {
  const details: string[] = [];
  const mailbox = context.mailbox ? printable(context.mailbox, 254) : undefined;
  if (mailbox) details.push(`mailbox ${mailbox}`);
  if (d.reply) details.push(`server reply "${d.reply}"`);
  const head = details.length > 0 ? `${d.summary} (${details.join('; ')})` : d.summary;
  const causes =
    d.causes.length === 0
      ? ''
      : d.causes.length === 1
        ? ` Likely cause: ${d.causes[0]}.`
        : ` Likely causes: ${d.causes.map((cause, i) => `(${i + 1}) ${cause}`).join('; ')}.`;
  return new CLASSES[d.class]({
    code: d.code,
    message: `${head}.${causes}`,
    remedy: d.fix,
    ...(context.cause !== undefined ? { cause: context.cause } : {}),
  });
}

// ---- Helpers ---------------------------------------------------------------

function entry(code: DiagnosisCode): DiagnosisEntry {
  return BY_CODE.get(code) as DiagnosisEntry;
}

function build(
  from: DiagnosisEntry,
  overrides: {
    summary?: string;
    causes?: string[];
    fix?: string;
    reply?: string;
    retryAfterMs?: number;
  } = {},
): Diagnosis {
  const reply = overrides.reply !== undefined ? replyLine(overrides.reply) : undefined;
  return {
    code: from.code,
    protocol: from.protocol,
    summary: overrides.summary ?? from.summary,
    causes: overrides.causes ?? [...from.causes],
    fix: overrides.fix ?? from.fix,
    retryable: from.retryable,
    ...((overrides.retryAfterMs ?? from.waitMs) !== undefined
      ? { retryAfterMs: overrides.retryAfterMs ?? from.waitMs }
      : {}),
    class: from.class,
    ...(reply ? { reply } : {}),
  };
}

/**
 * A server's reply as one line of printable ASCII, without Exchange's
 * `[BeginDiagnosticData]…` blob, at most `max` characters: fit for a log, a
 * spool file or a bounce. Server replies never echo the token, but they can
 * carry long hex dumps.
 */
export function replyLine(raw: string, max = 200): string {
  const line = raw
    .replace(/\[BeginDiagnosticData\][\s\S]*$/i, '')
    .replace(/\s+/g, ' ')
    .trim();
  return asciiText(line, max);
}

/** A claim or address fit to print as it is, or `undefined`: never a cut or altered value. */
function printable(value: string, max = 200): string | undefined {
  const text = value.trim();
  return text && asciiText(text, max) === text ? text : undefined;
}

function firstLine(text: string): string {
  return (text.split(/\r?\n/).find((line) => line.trim()) ?? '').trim();
}
