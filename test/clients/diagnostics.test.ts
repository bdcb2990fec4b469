import { describe, expect, it } from 'vitest';
import type { AccessTokenClaims } from '../../src/auth/claims.js';
import {
  DIAGNOSES,
  type Diagnosis,
  type DiagnosisClass,
  type DiagnosisCode,
  diagnoseImapResponse,
  diagnoseSmtpResponse,
  diagnoseTokenClaims,
  diagnosisToError,
  parseThrottleBackoff,
  replyLine,
} from '../../src/clients/diagnostics.js';
import {
  AuthenticationError,
  ConfigurationError,
  ExitCode,
  NetworkError,
  ProtocolError,
} from '../../src/errors.js';
import { classifyDeliveryError } from '../../src/jobs/relay/backoff.js';

interface Row {
  line: string;
  code: DiagnosisCode;
  class: DiagnosisClass;
  retryable: boolean;
  /** Fragments of the fix (and summary) the admin reads. */
  says: string[];
}

/** Lines as Exchange Online's IMAP service sends them. */
const imapRows: Row[] = [
  {
    line: 'A1 NO AUTHENTICATE failed.',
    code: 'IMAP_AUTH_FAILED',
    class: 'authentication',
    retryable: false,
    says: [
      'New-ServicePrincipal -AppId <app id> -ObjectId <Enterprise Application object id>',
      'IMAP.AccessAsApp',
    ],
  },
  {
    line: 'A3 BAD User is authenticated but not connected.',
    code: 'IMAP_NOT_CONNECTED',
    class: 'authentication',
    retryable: false,
    says: [
      'Add-MailboxPermission -Identity <mailbox> -User <service principal> -AccessRights FullAccess',
      'Set-CASMailbox -Identity <mailbox> -ImapEnabled $true',
      'wait up to 30 minutes',
      "close other programs' connections",
    ],
  },
  {
    line: '* BYE Session invalidated - AccessTokenExpired',
    code: 'IMAP_TOKEN_EXPIRED',
    class: 'network',
    retryable: true,
    says: ['Reconnect with a new token'],
  },
  {
    line: 'A5 NO Request is throttled. Suggested Backoff Time: 299609 milliseconds',
    code: 'IMAP_THROTTLED',
    class: 'network',
    retryable: true,
    says: ['Wait for the backoff time'],
  },
  {
    line: 'A7 BAD Request is throttled. Suggested Backoff Time: 89117 milliseconds',
    code: 'IMAP_THROTTLED',
    class: 'network',
    retryable: true,
    says: ['fewer connections per mailbox'],
  },
  {
    // Dovecot's (the sandbox's) refusal of a login beyond mail_max_userip_connections.
    line: 'A2 NO [LIMIT] Maximum number of connections from user+IP exceeded (mail_max_userip_connections=10)',
    code: 'IMAP_TOO_MANY_CONNECTIONS',
    class: 'network',
    retryable: true,
    says: ['Another run or client holds them', 'lower --connections'],
  },
  {
    line: 'A9 BAD Command Error. 10',
    code: 'IMAP_COMMAND_TOO_LONG',
    class: 'protocol',
    retryable: false,
    says: ['smaller batches'],
  },
];

/** Lines as Exchange Online's SMTP submission service (smtp.office365.com:587) sends them. */
const smtpRows: Row[] = [
  {
    line: '535 5.7.3 Authentication unsuccessful [SN4PR0601CA0005.namprd06.prod.outlook.com 2026-11-22T10:00:00.000Z 08DD2A1B3C4D5E6F]',
    code: 'SMTP_AUTH_FAILED',
    class: 'authentication',
    retryable: false,
    says: [
      'New-ServicePrincipal -AppId <app id> -ObjectId <Enterprise Application object id>',
      'SMTP.SendAsApp',
    ],
  },
  {
    line: '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. [TY1PR01CA0183.jpnprd01.prod.outlook.com 2026-11-22T10:00:00.000Z 08DD2A1B3C4D5E6F]',
    code: 'SMTP_AUTH_DISABLED_TENANT',
    class: 'authentication',
    retryable: false,
    says: [
      'Set-TransportConfig -SmtpClientAuthenticationDisabled $false',
      'Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false',
    ],
  },
  {
    line: '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information. [BN9PR03CA0716.namprd03.prod.outlook.com 2026-11-22T10:00:00.000Z 08DD2A1B3C4D5E6F]',
    code: 'SMTP_AUTH_DISABLED_MAILBOX',
    class: 'authentication',
    retryable: false,
    says: ['Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false'],
  },
  {
    line: "535 5.7.139 Authentication unsuccessful, user is locked by your organization's security defaults policy. Contact your administrator. [BN9PR03CA0716.namprd03.prod.outlook.com 2026-11-22T10:00:00.000Z 08DD2A1B3C4D5E6F]",
    code: 'SMTP_AUTH_BLOCKED_SECURITY_DEFAULTS',
    class: 'authentication',
    retryable: false,
    says: ['XOAUTH2', 'security defaults'],
  },
  {
    line: '535 5.7.139 Authentication unsuccessful, the request did not meet the criteria to be authenticated successfully. Contact your administrator. [BN9PR03CA0716.namprd03.prod.outlook.com 2026-11-22T10:00:00.000Z 08DD2A1B3C4D5E6F]',
    code: 'SMTP_AUTH_BLOCKED_POLICY',
    class: 'authentication',
    retryable: false,
    says: ['sign-in logs'],
  },
  {
    line: '535 5.7.139 Authentication unsuccessful, basic authentication is disabled. [YT3PR01CA0122.CANPRD01.PROD.OUTLOOK.COM 2026-11-22T10:00:00.000Z 08DD2A1B3C4D5E6F]',
    code: 'SMTP_BASIC_AUTH_DISABLED',
    class: 'authentication',
    retryable: false,
    says: ['XOAUTH2', 'SMTP.SendAsApp'],
  },
  {
    line: '550 5.7.30 Basic authentication is not supported for Client Submission.',
    code: 'SMTP_BASIC_AUTH_DISABLED',
    class: 'authentication',
    retryable: false,
    says: ['XOAUTH2', 'remove any SMTP password'],
  },
  {
    line: '554 5.2.252 SendAsDenied; archive@contoso.com not allowed to send as ceo@contoso.com; STOREDRV.Submit; Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message. 0.35250:0A00C384, 1.36674:0A000000, 1.61250:00000000[EndDiagnosticData] [Hostname=SN4PR06MB1234.namprd06.prod.outlook.com]',
    code: 'SMTP_SEND_AS_DENIED',
    class: 'authentication',
    retryable: false,
    says: [
      'Add-RecipientPermission -Identity <address to send as> -Trustee <service principal> -AccessRights SendAs',
    ],
  },
  {
    line: '554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with message Cannot submit message.',
    code: 'SMTP_SEND_AS_DENIED',
    class: 'authentication',
    retryable: false,
    says: ['AccessRights SendAs'],
  },
  {
    line: '550 5.7.60 SMTP; Client does not have permissions to send as this sender',
    code: 'SMTP_SEND_AS_NOT_PERMITTED',
    class: 'authentication',
    retryable: false,
    says: [
      'Add-RecipientPermission -Identity <address to send as> -Trustee <service principal> -AccessRights SendAs',
    ],
  },
  {
    line: '530 5.7.57 Client not authenticated to send mail. [BN1P110CA0052.NAMP110.PROD.OUTLOOK.COM 2026-11-22T10:00:00.000Z 08DD2A1B3C4D5E6F]',
    code: 'SMTP_NOT_AUTHENTICATED',
    class: 'authentication',
    retryable: false,
    says: ['STARTTLS', 'AUTH XOAUTH2'],
  },
  {
    line: '430 4.2.0 STOREDRV; mailbox logon failure; Failed to process message due to a transient exception with message [BeginDiagnosticData]MapiExceptionLogonFailed[EndDiagnosticData]',
    code: 'SMTP_MAILBOX_LOGON_FAILURE',
    class: 'authentication',
    retryable: true,
    says: [
      'Add-MailboxPermission -Identity <mailbox> -User <service principal> -AccessRights FullAccess',
      'wait up to 30 minutes',
    ],
  },
  {
    line: '432 4.3.2 Concurrent connections limit exceeded.',
    code: 'SMTP_CONCURRENCY_LIMIT',
    class: 'network',
    retryable: true,
    says: ['at most three sending connections'],
  },
  {
    line: '432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded',
    code: 'SMTP_CONCURRENCY_LIMIT',
    class: 'network',
    retryable: true,
    says: ['at most three sending connections'],
  },
  {
    line: '554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException',
    code: 'SMTP_DAILY_QUOTA_EXCEEDED',
    class: 'protocol',
    retryable: false,
    says: ['24-hour window'],
  },
  {
    line: '554 5.2.2 mailbox full; STOREDRV.Submission.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded',
    code: 'SMTP_MAILBOX_FULL',
    class: 'protocol',
    retryable: false,
    says: ['Sent Items'],
  },
  {
    line: '535 5.7.139 Authentication unsuccessful, basic authentication is disabled',
    code: 'SMTP_BASIC_AUTH_DISABLED',
    class: 'authentication',
    retryable: false,
    says: ['XOAUTH2', 'end of December 2026', '`mailbridge relay`'],
  },
  {
    line: '535 5.7.3 Authentication unsuccessful',
    code: 'SMTP_AUTH_FAILED',
    class: 'authentication',
    retryable: false,
    says: ['SMTP.SendAsApp', 'New-ServicePrincipal'],
  },
  {
    line: "550 5.7.233 Your message can't be sent because your tenant has exceeded its daily limit for sending email to external recipients (tenant external recipient rate limit)",
    code: 'SMTP_TENANT_EXTERNAL_LIMIT',
    class: 'network',
    retryable: true,
    says: ['TERRL', 'do not send again at once', 'at least an hour'],
  },
  {
    line: "550 5.7.233 - Your message can't be sent because your tenant has exceeded its daily limit for sending email to external recipients (tenant external recipient rate limit).",
    code: 'SMTP_TENANT_EXTERNAL_LIMIT',
    class: 'network',
    retryable: true,
    says: ['TERRL'],
  },
  {
    line: '550 5.7.68 TenantInboundAttribution; Direct Send not allowed for this organization from unauthorized sources',
    code: 'SMTP_DIRECT_SEND_REJECTED',
    class: 'authentication',
    retryable: false,
    says: ['Direct Send', '`mailbridge relay`', 'inbound connector'],
  },
  {
    line: '550 5.5.105 External sending is not supported for High Volume Email accounts.',
    code: 'SMTP_HVE_EXTERNAL_RECIPIENT',
    class: 'configuration',
    retryable: false,
    says: ['internal recipients only', 'smtp.office365.com'],
  },
  // Microsoft names the next HVE refusals by their enhanced code only; the text
  // after the code is ours, and the table matches on the code.
  {
    line: '535 5.7.142 Authentication unsuccessful, the access token is about to expire',
    code: 'SMTP_TOKEN_EXPIRING',
    class: 'network',
    retryable: true,
    says: ['10 to 20 minutes', 'at least 20 minutes'],
  },
  {
    line: '535 5.7.143 Authentication unsuccessful, the access token has expired',
    code: 'SMTP_TOKEN_EXPIRED',
    class: 'network',
    retryable: true,
    says: ['new token', 'clock'],
  },
  {
    line: '550 5.7.62 MAIL FROM is not the High Volume Email account that authenticated',
    code: 'SMTP_HVE_SENDER_MISMATCH',
    class: 'authentication',
    retryable: false,
    says: ['MAIL FROM', 'HVE account'],
  },
  {
    line: '550 5.6.241 The From header does not match the High Volume Email account',
    code: 'SMTP_HVE_FROM_MISMATCH',
    class: 'authentication',
    retryable: false,
    says: ['From header'],
  },
  {
    line: '550 5.2.240 The sender is not a High Volume Email account',
    code: 'SMTP_HVE_NOT_HVE_ACCOUNT',
    class: 'authentication',
    retryable: false,
    says: ['New-MailUser -HVEAccount', 'Add-HVEAppAccess'],
  },
  {
    line: '421 4.7.66 TLS 1.0 and 1.1 are not supported. Please upgrade/update your client to support TLS 1.2. Visit https://aka.ms/smtp_auth_tls',
    code: 'SMTP_TLS_VERSION_UNSUPPORTED',
    class: 'configuration',
    retryable: false,
    says: ['TLS 1.2'],
  },
];

function expectRow(d: Diagnosis | undefined, row: Row, protocol: 'imap' | 'smtp'): void {
  expect(d, row.line).toBeDefined();
  const diagnosis = d as Diagnosis;
  expect(diagnosis.code).toBe(row.code);
  expect(diagnosis.protocol).toBe(protocol);
  expect(diagnosis.class).toBe(row.class);
  expect(diagnosis.retryable).toBe(row.retryable);
  expect(diagnosis.causes.length).toBeGreaterThan(0);
  for (const fragment of row.says) {
    expect(`${diagnosis.summary} ${diagnosis.fix}`).toContain(fragment);
  }
}

describe('diagnoseImapResponse', () => {
  for (const row of imapRows) {
    it(`${row.line} → ${row.code}`, () => {
      expectRow(diagnoseImapResponse(row.line), row, 'imap');
    });
  }

  it('reads the line with or without a tag, as imapflow errors give it', () => {
    expect(diagnoseImapResponse('NO AUTHENTICATE failed.')?.code).toBe('IMAP_AUTH_FAILED');
    expect(diagnoseImapResponse('BAD User is authenticated but not connected.')?.code).toBe(
      'IMAP_NOT_CONNECTED',
    );
    expect(
      diagnoseImapResponse('00000003 BAD User is authenticated but not connected.\r\n')?.code,
    ).toBe('IMAP_NOT_CONNECTED');
  });

  it('skips a bracketed response code before the text', () => {
    expect(diagnoseImapResponse('A1 NO [AUTHENTICATIONFAILED] AUTHENTICATE failed.')?.code).toBe(
      'IMAP_AUTH_FAILED',
    );
  });

  it('does not match the text under another status', () => {
    expect(diagnoseImapResponse('A1 OK AUTHENTICATE completed.')).toBeUndefined();
    expect(diagnoseImapResponse('A1 OK AUTHENTICATE failed.')).toBeUndefined();
  });

  it('carries the suggested backoff and says it in words', () => {
    const d = diagnoseImapResponse(
      'A5 NO Request is throttled. Suggested Backoff Time: 299609 milliseconds',
    );
    expect(d?.retryAfterMs).toBe(299609);
    expect(d?.summary).toBe(
      "Exchange Online is throttling this mailbox's IMAP requests; it asked to wait 5 min (299609 ms)",
    );
  });

  it('keeps the reply for the message', () => {
    expect(diagnoseImapResponse('A1 NO AUTHENTICATE failed.')?.reply).toBe(
      'A1 NO AUTHENTICATE failed.',
    );
  });

  it('returns undefined for a line not in the table', () => {
    expect(diagnoseImapResponse('A2 NO [TRYCREATE] Mailbox does not exist.')).toBeUndefined();
    expect(
      diagnoseImapResponse('* BYE Microsoft Exchange Server IMAP4 server signing off.'),
    ).toBeUndefined();
    expect(diagnoseImapResponse('')).toBeUndefined();
    expect(diagnoseImapResponse(undefined)).toBeUndefined();
  });
});

describe('parseThrottleBackoff', () => {
  it('reads the milliseconds from both the NO and the BAD reply', () => {
    expect(
      parseThrottleBackoff(
        'A5 NO Request is throttled. Suggested Backoff Time: 299609 milliseconds',
      ),
    ).toBe(299609);
    expect(
      parseThrottleBackoff(
        'A7 BAD Request is throttled. Suggested Backoff Time: 89117 milliseconds',
      ),
    ).toBe(89117);
  });

  it('is undefined when the line has no backoff', () => {
    expect(parseThrottleBackoff('A5 NO Request is throttled.')).toBeUndefined();
    expect(parseThrottleBackoff('A1 NO AUTHENTICATE failed.')).toBeUndefined();
  });
});

describe('diagnoseSmtpResponse', () => {
  for (const row of smtpRows) {
    it(`${row.line.slice(0, 60)} → ${row.code}`, () => {
      expectRow(diagnoseSmtpResponse(row.line), row, 'smtp');
    });
  }

  it('takes a nodemailer error’s responseCode and response', () => {
    const d = diagnoseSmtpResponse({
      responseCode: 535,
      response: '535 5.7.3 Authentication unsuccessful [SN4PR0601CA0005.namprd06.prod.outlook.com]',
    });
    expect(d?.code).toBe('SMTP_AUTH_FAILED');
  });

  it('asks to wait at least an hour after TERRL, and the relay defers the message that long', () => {
    const line = smtpRows.find((r) => r.code === 'SMTP_TENANT_EXTERNAL_LIMIT')?.line ?? '';
    expect(diagnoseSmtpResponse(line)?.retryAfterMs).toBe(3_600_000);
    const failure = classifyDeliveryError(
      Object.assign(new Error('Message failed'), { responseCode: 550, response: line }),
    );
    expect(failure).toMatchObject({
      kind: 'temporary',
      code: 'SMTP_TENANT_EXTERNAL_LIMIT',
      minDelayMs: 3_600_000,
    });
  });

  it('reads 535 with an HVE token code as that code, not as the general 535', () => {
    expect(diagnoseSmtpResponse({ responseCode: 535, response: '535 5.7.142 x' })?.code).toBe(
      'SMTP_TOKEN_EXPIRING',
    );
    expect(diagnoseSmtpResponse({ responseCode: 535, response: '535 5.7.143 x' })?.code).toBe(
      'SMTP_TOKEN_EXPIRED',
    );
  });

  it('names both addresses of a SendAsDenied reply', () => {
    const d = diagnoseSmtpResponse(
      smtpRows.find((r) => r.code === 'SMTP_SEND_AS_DENIED')?.line ?? '',
    );
    expect(d?.summary).toBe(
      'Exchange Online refused the From address: archive@contoso.com may not send as ceo@contoso.com',
    );
  });

  it('drops the diagnostic blob and keeps the reply short', () => {
    const d = diagnoseSmtpResponse(
      smtpRows.find((r) => r.code === 'SMTP_SEND_AS_DENIED')?.line ?? '',
    );
    expect(d?.reply).not.toContain('BeginDiagnosticData');
    expect(d?.reply?.length).toBeLessThanOrEqual(200);
    expect(d?.reply?.startsWith('554 5.2.252 SendAsDenied; archive@contoso.com')).toBe(true);
  });

  it('makes a reply one line of printable ASCII, other characters shown as ?', () => {
    expect(
      replyLine('550 5.1.1 <j\u00f6rg@contoso.com>\r\n\tunknown \u001b[2J\u202eyes', 200),
    ).toBe('550 5.1.1 <j?rg@contoso.com> unknown ?[2J?yes');
    expect(replyLine(`421 ${'x'.repeat(50)}`, 20)).toBe(`421 ${'x'.repeat(15)}…`);
    expect(replyLine('  [BeginDiagnosticData]only a dump[EndDiagnosticData]', 200)).toBe('');
  });

  it('reads a multi-line reply', () => {
    const d = diagnoseSmtpResponse(
      '550-5.7.60 SMTP; Client does not have permissions\r\n550 5.7.60 to send as this sender',
    );
    expect(d?.code).toBe('SMTP_SEND_AS_NOT_PERMITTED');
  });

  it('reads an unknown 535 as a refused login', () => {
    expect(diagnoseSmtpResponse('535 5.7.8 Error: authentication failed')?.code).toBe(
      'SMTP_AUTH_FAILED',
    );
  });

  it('returns undefined for a reply not in the table', () => {
    expect(diagnoseSmtpResponse('250 2.0.0 OK')).toBeUndefined();
    expect(
      diagnoseSmtpResponse('550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found'),
    ).toBeUndefined();
    expect(diagnoseSmtpResponse({})).toBeUndefined();
    expect(diagnoseSmtpResponse('')).toBeUndefined();
  });
});

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const OTHER_TENANT = '11111111-2222-4333-8444-555555555555';

function appToken(overrides: Partial<AccessTokenClaims> = {}): AccessTokenClaims {
  return {
    aud: 'https://outlook.office365.com',
    iss: `https://sts.windows.net/${TENANT}/`,
    tid: TENANT,
    appid: '0f3c8a4e-5b1d-4c2a-9e7f-1a2b3c4d5e6f',
    roles: ['IMAP.AccessAsApp', 'SMTP.SendAsApp'],
    ...overrides,
  };
}

describe('diagnoseTokenClaims', () => {
  it('passes a good app-only token for IMAP and SMTP', () => {
    expect(diagnoseTokenClaims(appToken(), { protocol: 'imap', tenantId: TENANT })).toBeUndefined();
    expect(
      diagnoseTokenClaims(appToken(), {
        protocol: 'smtp',
        tenantId: TENANT,
        expectedAudience: 'https://outlook.office365.com/.default',
      }),
    ).toBeUndefined();
  });

  it('accepts the other spellings of the Exchange resource', () => {
    for (const aud of [
      'https://outlook.office365.com/',
      'https://outlook.office.com',
      '00000002-0000-0ff1-ce00-000000000000',
    ]) {
      expect(
        diagnoseTokenClaims(appToken({ aud }), {
          protocol: 'imap',
          expectedAudience: 'https://outlook.office365.com',
        }),
        aud,
      ).toBeUndefined();
    }
    expect(
      diagnoseTokenClaims(appToken({ aud: 'https://outlook.office365.us' }), { protocol: 'imap' }),
    ).toBeUndefined();
  });

  it('says in words that delegated permissions were granted when the token has no roles', () => {
    const { roles: _, ...noRoles } = appToken();
    const d = diagnoseTokenClaims(noRoles, { protocol: 'imap', tenantId: TENANT });
    expect(d?.code).toBe('TOKEN_NO_ROLES');
    expect(d?.protocol).toBe('token');
    expect(d?.class).toBe('authentication');
    expect(d?.summary).toContain('delegated permissions');
    expect(d?.summary).toContain('application permissions');
    expect(d?.summary).toBe(
      'The token carries no application roles: delegated permissions were granted instead of application permissions, or admin consent is missing',
    );
    expect(d?.fix).toContain(
      "add the APPLICATION permission IMAP.AccessAsApp of 'Office 365 Exchange Online'",
    );
    expect(d?.fix).toContain('grant admin consent');
  });

  it('treats an empty roles list like a missing one', () => {
    const d = diagnoseTokenClaims(appToken({ roles: [] }), { protocol: 'smtp' });
    expect(d?.code).toBe('TOKEN_NO_ROLES');
    expect(d?.fix).toContain('SMTP.SendAsApp');
  });

  it('names the missing role and the roles present', () => {
    const d = diagnoseTokenClaims(appToken({ roles: ['full_access_as_app'] }), {
      protocol: 'smtp',
    });
    expect(d?.code).toBe('TOKEN_ROLE_MISSING');
    expect(d?.summary).toBe(
      "The token's application roles (full_access_as_app) do not include SMTP.SendAsApp, which SMTP needs",
    );
    expect(d?.fix).toContain('the APPLICATION permission SMTP.SendAsApp');
    const pop = diagnoseTokenClaims(appToken(), { protocol: 'pop' });
    expect(pop?.code).toBe('TOKEN_ROLE_MISSING');
    expect(pop?.summary).toContain('POP.AccessAsApp');
  });

  it('recognises a delegated (user) token by its scp claim', () => {
    const { roles: _, ...user } = appToken({ scp: 'IMAP.AccessAsUser.All SMTP.Send' });
    const d = diagnoseTokenClaims(user, { protocol: 'imap' });
    expect(d?.code).toBe('TOKEN_DELEGATED');
    expect(d?.summary).toBe(
      'The access token is a delegated (user) token: it carries scopes (IMAP.AccessAsUser.All SMTP.Send) instead of application roles',
    );
  });

  it('recognises a Microsoft Graph token, by URL and by application id', () => {
    for (const aud of ['https://graph.microsoft.com', '00000003-0000-0000-c000-000000000000']) {
      const d = diagnoseTokenClaims(appToken({ aud, roles: ['Mail.Send'] }), { protocol: 'smtp' });
      expect(d?.code, aud).toBe('TOKEN_WRONG_AUDIENCE');
      expect(d?.class).toBe('configuration');
      expect(d?.summary).toBe(
        `The access token is for Microsoft Graph (aud ${aud}), not Exchange Online: IMAP and SMTP refuse it`,
      );
      expect(d?.fix).toContain('https://outlook.office365.com/.default');
    }
  });

  it('refuses another cloud’s Exchange resource when the configuration names one', () => {
    const d = diagnoseTokenClaims(appToken({ aud: 'https://outlook.office365.us' }), {
      protocol: 'imap',
      expectedAudience: 'https://outlook.office365.com/.default',
    });
    expect(d?.code).toBe('TOKEN_WRONG_AUDIENCE');
    expect(d?.summary).toBe(
      'The access token is for https://outlook.office365.us, not https://outlook.office365.com',
    );
  });

  it('checks the tenant first, and only against a tenant GUID', () => {
    const d = diagnoseTokenClaims(appToken({ tid: OTHER_TENANT, roles: [] }), {
      protocol: 'imap',
      tenantId: TENANT,
    });
    expect(d?.code).toBe('TOKEN_WRONG_TENANT');
    expect(d?.summary).toBe(
      `The access token was issued by tenant ${OTHER_TENANT}, not the configured tenant ${TENANT}`,
    );
    expect(
      diagnoseTokenClaims(appToken({ tid: OTHER_TENANT }), {
        protocol: 'imap',
        tenantId: 'contoso.onmicrosoft.com',
      }),
    ).toBeUndefined();
    expect(
      diagnoseTokenClaims(appToken({ tid: TENANT.toUpperCase() }), {
        protocol: 'imap',
        tenantId: TENANT,
      }),
    ).toBeUndefined();
  });

  it('never prints a claim that is not printable ASCII', () => {
    const d = diagnoseTokenClaims(appToken({ aud: 'https://evil\u001b[31m.example' }), {
      protocol: 'imap',
    });
    expect(d?.code).toBe('TOKEN_WRONG_AUDIENCE');
    expect(d?.summary).toBe(
      'The access token is for (unreadable), not the Exchange Online resource',
    );
  });
});

describe('diagnosisToError', () => {
  const cases: [DiagnosisClass, new (...args: never[]) => Error, number][] = [
    ['configuration', ConfigurationError, ExitCode.usage],
    ['authentication', AuthenticationError, ExitCode.auth],
    ['protocol', ProtocolError, ExitCode.failure],
    ['network', NetworkError, ExitCode.unreachable],
  ];
  for (const [cls, ErrorClass, exitCode] of cases) {
    it(`maps class ${cls} to ${ErrorClass.name} (exit ${exitCode})`, () => {
      const entry = DIAGNOSES.find((e) => e.class === cls);
      const line = {
        IMAP_TOKEN_EXPIRED: '* BYE Session invalidated - AccessTokenExpired',
        IMAP_AUTH_FAILED: 'A1 NO AUTHENTICATE failed.',
        IMAP_COMMAND_TOO_LONG: 'A9 BAD Command Error. 10',
      }[entry?.code as string];
      const d =
        (line ? diagnoseImapResponse(line) : undefined) ??
        diagnoseTokenClaims(appToken({ tid: OTHER_TENANT }), {
          protocol: 'imap',
          tenantId: TENANT,
        });
      expect(d?.class).toBe(cls);
      const error = diagnosisToError(d as Diagnosis);
      expect(error).toBeInstanceOf(ErrorClass);
      expect(error.exitCode).toBe(exitCode);
      expect(error.code).toBe(d?.code);
    });
  }

  it('writes the summary, mailbox, server reply and causes, with the fix as remedy', () => {
    const cause = new Error('Command failed');
    const d = diagnoseImapResponse('A3 BAD User is authenticated but not connected.') as Diagnosis;
    const error = diagnosisToError(d, { mailbox: 'archive@contoso.com', cause });
    expect(error).toBeInstanceOf(AuthenticationError);
    expect(error.exitCode).toBe(3);
    expect(error.code).toBe('IMAP_NOT_CONNECTED');
    expect(error.cause).toBe(cause);
    expect(error.remedy).toBe(d.fix);
    expect(error.message).toBe(
      'Exchange Online accepted the token but did not open the mailbox for the app ' +
        '(mailbox archive@contoso.com; server reply "A3 BAD User is authenticated but not connected."). ' +
        'Likely causes: (1) the service principal has no FullAccess permission on this mailbox; ' +
        '(2) the mailbox is not yet provisioned for the service principal: the FullAccess grant, the service principal or the mailbox itself is younger than about 30 minutes (Exchange takes up to about 30 minutes to apply a new or changed permission); ' +
        '(3) too many IMAP connections to this mailbox are open at once (Exchange allows about 16 to 20 per mailbox, counting every program that uses it); ' +
        '(4) IMAP is disabled for this mailbox. ' +
        'Give the service principal FullAccess: Add-MailboxPermission -Identity <mailbox> -User <service principal> -AccessRights FullAccess; ' +
        "then wait up to 30 minutes before trying again; close other programs' connections to the mailbox; " +
        'turn IMAP on for the mailbox if it is off: Set-CASMailbox -Identity <mailbox> -ImapEnabled $true.',
    );
  });

  it('uses the singular for one cause and leaves out what it was not given', () => {
    const d = diagnoseSmtpResponse(
      '550 5.7.30 Basic authentication is not supported for Client Submission.',
    ) as Diagnosis;
    const error = diagnosisToError({ ...d, reply: undefined });
    expect(error.message).toMatch(
      /^Exchange Online refused a password \(basic authentication\) sign-in for SMTP\. Likely cause: the client sent/,
    );
    expect(error.cause).toBeUndefined();
  });

  it('turns every SMTP row into an error that exits with its class’s code', () => {
    const exit: Record<DiagnosisClass, number> = {
      configuration: 2,
      authentication: 3,
      protocol: 1,
      network: 4,
    };
    for (const row of smtpRows) {
      const error = diagnosisToError(diagnoseSmtpResponse(row.line) as Diagnosis, {
        mailbox: 'relay@contoso.com',
      });
      expect(error.exitCode, row.line).toBe(exit[row.class]);
      expect(error.code).toBe(row.code);
    }
  });
});

describe('DIAGNOSES', () => {
  it('has one entry per code, each with causes and a fix', () => {
    const codes = DIAGNOSES.map((e) => e.code);
    expect(new Set(codes).size).toBe(codes.length);
    for (const entry of DIAGNOSES) {
      expect(entry.code).toMatch(/^(IMAP|SMTP|TOKEN)_[A-Z_]+$/);
      expect(entry.causes.length, entry.code).toBeGreaterThan(0);
      expect(entry.fix, entry.code).toMatch(/\.$/);
      expect(entry.summary, entry.code).not.toMatch(/\.$/);
    }
  });

  it('is covered by a server line or a claim test for every entry', () => {
    const tested = new Set<string>([
      ...imapRows.map((r) => r.code),
      ...smtpRows.map((r) => r.code),
      'TOKEN_WRONG_TENANT',
      'TOKEN_WRONG_AUDIENCE',
      'TOKEN_DELEGATED',
      'TOKEN_NO_ROLES',
      'TOKEN_ROLE_MISSING',
    ]);
    for (const entry of DIAGNOSES) expect(tested.has(entry.code), entry.code).toBe(true);
  });
});
