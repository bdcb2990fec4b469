/**
 * Every message a user can get from config validation, as main gave them
 * before the move to one schema layer (captured from main, then frozen):
 * bad inputs of each kind → the exact problems, field and message. A message
 * that changes must change here too, on purpose and for the better. No
 * message may quote a secret-shaped value, whatever its field.
 */
import { describe, expect, it } from 'vitest';
import type { Settings } from '../../src/config/types.js';
import { type SettingOrigin, validateSettings } from '../../src/config/validate.js';
import type { ConfigProblem } from '../../src/errors.js';
import { ConfigurationError } from '../../src/errors.js';
import { parseRelaySettings } from '../../src/jobs/relay/config.js';
import { type ExchangePlanInput, parseExchangePlan } from '../../src/setup/exchange-plan.js';

const T = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const C = 'a3b1c2d4-e5f6-4789-9abc-def012345678';
/** A client secret's shape: never in a message, as a value or as a key. */
const S = 'Zq8~sEcReT.vAlUe-9f3b1c7e2d4a6b8c0d1e3f5a7b9';

type Problems = ConfigProblem[];
const sorted = (problems: readonly ConfigProblem[]) =>
  [...problems].sort((a, b) => `${a.field}${a.message}`.localeCompare(`${b.field}${b.message}`));

function problemsOf(run: () => unknown): Problems {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigurationError);
    return sorted((error as ConfigurationError).problems);
  }
  throw new Error('expected a ConfigurationError');
}

function expectNoSecret(problems: Problems): void {
  expect(JSON.stringify(problems)).not.toContain('sEcReT');
}

/** Settings that pass, with a client secret. */
const ok = { tenantId: T, clientId: C, clientSecret: S };

const SETTINGS: [string, Record<string, unknown>, [string, SettingOrigin][], Problems][] = [
  [
    'nothing at all',
    {},
    [],
    [
      {
        field: 'clientId',
        message:
          "clientId is missing. Set it (or AZURE_CLIENT_ID) to the Application (client) ID from the app registration's Overview page.",
      },
      {
        field: 'credential',
        message:
          'No credential is set. Set exactly one of clientSecret (AZURE_CLIENT_SECRET), certificatePath (AZURE_CLIENT_CERTIFICATE_PATH), federatedTokenFile (AZURE_FEDERATED_TOKEN_FILE); a certificate is the safer choice for unattended use. In Azure, managedIdentity: true (MAILBRIDGE_CREDENTIAL=managed-identity) needs none of them.',
      },
      {
        field: 'tenantId',
        message:
          "tenantId is missing. Set it (or AZURE_TENANT_ID) to the Directory (tenant) ID from the app registration's Overview page, or a verified domain such as contoso.onmicrosoft.com.",
      },
    ],
  ],
  [
    'tenantId missing',
    { clientId: C, clientSecret: S },
    [],
    [
      {
        field: 'tenantId',
        message:
          "tenantId is missing. Set it (or AZURE_TENANT_ID) to the Directory (tenant) ID from the app registration's Overview page, or a verified domain such as contoso.onmicrosoft.com.",
      },
    ],
  ],
  [
    'tenantId empty',
    { tenantId: '  ', clientId: C, clientSecret: S },
    [],
    [
      {
        field: 'tenantId',
        message:
          "tenantId is missing. Set it (or AZURE_TENANT_ID) to the Directory (tenant) ID from the app registration's Overview page, or a verified domain such as contoso.onmicrosoft.com.",
      },
    ],
  ],
  [
    'tenantId not a string',
    { tenantId: 12345, clientId: C, clientSecret: S },
    [],
    [
      {
        field: 'tenantId',
        message: 'tenantId must be a string (in YAML, put the value in quotes).',
      },
    ],
  ],
  [
    'tenantId a list',
    { tenantId: ['a'], clientId: C, clientSecret: S },
    [],
    [
      {
        field: 'tenantId',
        message: 'tenantId must be a string (in YAML, put the value in quotes).',
      },
    ],
  ],
  [
    'tenantId common',
    { tenantId: 'Common', clientId: C, clientSecret: S },
    [],
    [
      {
        field: 'tenantId',
        message:
          "tenantId is 'common', which cannot be used for app-only tokens: the client credentials flow must name the tenant. Use the Directory (tenant) ID (a GUID) or a verified domain of the tenant.",
      },
    ],
  ],
  [
    'tenantId organizations from the environment',
    { tenantId: 'organizations', clientId: C, clientSecret: S },
    [['tenantId', { source: 'environment', variable: 'AZURE_TENANT_ID' }]],
    [
      {
        field: 'tenantId',
        message:
          "tenantId (AZURE_TENANT_ID) is 'organizations', which cannot be used for app-only tokens: the client credentials flow must name the tenant. Use the Directory (tenant) ID (a GUID) or a verified domain of the tenant.",
      },
    ],
  ],
  [
    'tenantId short name',
    { tenantId: 'Contoso', clientId: C, clientSecret: S },
    [],
    [
      {
        field: 'tenantId',
        message:
          "tenantId is neither a GUID nor a domain name (did you mean contoso.onmicrosoft.com?). Use the Directory (tenant) ID from the app registration's Overview page, or a verified domain of the tenant.",
      },
    ],
  ],
  [
    'tenantId URL',
    { tenantId: 'https://login.microsoftonline.com/x', clientId: C, clientSecret: S },
    [],
    [
      {
        field: 'tenantId',
        message:
          "tenantId is neither a GUID nor a domain name. Use the Directory (tenant) ID from the app registration's Overview page, or a verified domain of the tenant.",
      },
    ],
  ],
  [
    'tenantId secret-like',
    { tenantId: S, clientId: C, clientSecret: S },
    [],
    [
      {
        field: 'tenantId',
        message:
          "tenantId is neither a GUID nor a domain name. Use the Directory (tenant) ID from the app registration's Overview page, or a verified domain of the tenant.",
      },
    ],
  ],
  [
    'clientId missing',
    { tenantId: T, clientSecret: S },
    [],
    [
      {
        field: 'clientId',
        message:
          "clientId is missing. Set it (or AZURE_CLIENT_ID) to the Application (client) ID from the app registration's Overview page.",
      },
    ],
  ],
  [
    'clientId not a GUID',
    { tenantId: T, clientId: 'my-mail-app', clientSecret: S },
    [],
    [
      {
        field: 'clientId',
        message:
          "clientId is not a GUID. Use the Application (client) ID from the app registration's Overview page (not its name, and not a secret).",
      },
    ],
  ],
  [
    'clientId not a GUID from the environment',
    { tenantId: T, clientId: 'my-mail-app', clientSecret: S },
    [['clientId', { source: 'environment', variable: 'AZURE_CLIENT_ID' }]],
    [
      {
        field: 'clientId',
        message:
          "clientId (AZURE_CLIENT_ID) is not a GUID. Use the Application (client) ID from the app registration's Overview page (not its name, and not a secret).",
      },
    ],
  ],
  [
    'clientId a number',
    { tenantId: T, clientId: 7, clientSecret: S },
    [],
    [
      {
        field: 'clientId',
        message: 'clientId must be a string (in YAML, put the value in quotes).',
      },
    ],
  ],
  [
    'no credential',
    { tenantId: T, clientId: C },
    [],
    [
      {
        field: 'credential',
        message:
          'No credential is set. Set exactly one of clientSecret (AZURE_CLIENT_SECRET), certificatePath (AZURE_CLIENT_CERTIFICATE_PATH), federatedTokenFile (AZURE_FEDERATED_TOKEN_FILE); a certificate is the safer choice for unattended use. In Azure, managedIdentity: true (MAILBRIDGE_CREDENTIAL=managed-identity) needs none of them.',
      },
    ],
  ],
  [
    'two credentials from three sources',
    { ...ok, federatedTokenFile: '/nonexistent/token', certificatePath: '/nonexistent/c.pem' },
    [
      ['clientSecret', { source: 'environment', variable: 'AZURE_CLIENT_SECRET' }],
      ['federatedTokenFile', { source: 'file', path: '/etc/mailbridge.yaml' }],
      ['certificatePath', { source: 'override' }],
    ],
    [
      {
        field: 'certificatePath',
        message:
          'Cannot read the certificate file /nonexistent/c.pem: no such file (ENOENT). Check the path and that this user may read the file.',
      },
      {
        field: 'credential',
        message:
          'More than one credential is set: clientSecret (from AZURE_CLIENT_SECRET), certificatePath (from a flag or option), federatedTokenFile (from the config file /etc/mailbridge.yaml). Set exactly one, and remove the others from the flags, the environment or the config file.',
      },
      {
        field: 'federatedTokenFile',
        message:
          "federatedTokenFile /nonexistent/token cannot be read: no such file (ENOENT). With workload identity, the token file is mounted into the pod by the webhook; check the pod's service account and the path.",
      },
    ],
  ],
  [
    'clientSecret empty',
    { tenantId: T, clientId: C, clientSecret: '' },
    [],
    [{ field: 'clientSecret', message: 'clientSecret is empty.' }],
  ],
  [
    'clientSecret a number',
    { tenantId: T, clientId: C, clientSecret: 1234 },
    [],
    [
      {
        field: 'clientSecret',
        message: 'clientSecret must be a string (in YAML, put the value in quotes).',
      },
    ],
  ],
  [
    'certificatePath empty',
    { tenantId: T, clientId: C, certificatePath: '' },
    [],
    [{ field: 'certificatePath', message: 'certificatePath is empty.' }],
  ],
  [
    'certificatePassword without certificatePath',
    { ...ok, certificatePassword: 'pw' },
    [],
    [
      {
        field: 'certificatePassword',
        message:
          "certificatePassword is set but certificatePath is not: the password only decrypts the certificate's key. Set certificatePath (AZURE_CLIENT_CERTIFICATE_PATH) or remove the password.",
      },
    ],
  ],
  [
    'certificatePassword a number',
    { tenantId: T, clientId: C, certificatePath: '', certificatePassword: 5 },
    [],
    [
      {
        field: 'certificatePassword',
        message: 'certificatePassword must be a string (in YAML, put the value in quotes).',
      },
      { field: 'certificatePath', message: 'certificatePath is empty.' },
    ],
  ],
  [
    'federatedTokenFile empty',
    { tenantId: T, clientId: C, federatedTokenFile: '' },
    [],
    [{ field: 'federatedTokenFile', message: 'federatedTokenFile is empty.' }],
  ],
  [
    'federatedTokenFile missing file',
    { tenantId: T, clientId: C, federatedTokenFile: '/nonexistent/mailbridge-token' },
    [],
    [
      {
        field: 'federatedTokenFile',
        message:
          "federatedTokenFile /nonexistent/mailbridge-token cannot be read: no such file (ENOENT). With workload identity, the token file is mounted into the pod by the webhook; check the pod's service account and the path.",
      },
    ],
  ],
  [
    'federatedTokenFile a directory',
    { tenantId: T, clientId: C, federatedTokenFile: '/' },
    [],
    [
      {
        field: 'federatedTokenFile',
        message:
          "federatedTokenFile / cannot be read: it is not a regular file. With workload identity, the token file is mounted into the pod by the webhook; check the pod's service account and the path.",
      },
    ],
  ],
  [
    'clientAssertion a string',
    { tenantId: T, clientId: C, clientAssertion: 'eyJ.x.y' },
    [],
    [
      {
        field: 'clientAssertion',
        message:
          'clientAssertion must be a function returning a signed client assertion (JWT); it can only be given in code. From a file or the environment, use federatedTokenFile (AZURE_FEDERATED_TOKEN_FILE).',
      },
    ],
  ],
  [
    'sendCertificateChain not a flag',
    { ...ok, sendCertificateChain: 'always' },
    [],
    [{ field: 'sendCertificateChain', message: 'sendCertificateChain must be true or false.' }],
  ],
  [
    'sendCertificateChain 2',
    { ...ok, sendCertificateChain: 2 },
    [],
    [{ field: 'sendCertificateChain', message: 'sendCertificateChain must be true or false.' }],
  ],
  [
    'cloud unknown',
    { ...ok, cloud: 'mars' },
    [],
    [{ field: 'cloud', message: 'cloud must be one of global, usgov-high, usgov-dod, china.' }],
  ],
  [
    'cloud near',
    { ...ok, cloud: 'usgov' },
    [],
    [
      {
        field: 'cloud',
        message:
          "cloud must be one of global, usgov-high, usgov-dod, china. Did you mean 'usgov-dod'?",
      },
    ],
  ],
  [
    'cloud near 2',
    { ...ok, cloud: 'chna' },
    [],
    [
      {
        field: 'cloud',
        message: "cloud must be one of global, usgov-high, usgov-dod, china. Did you mean 'china'?",
      },
    ],
  ],
  [
    'cloud gcc',
    { ...ok, cloud: 'GCC' },
    [],
    [
      {
        field: 'cloud',
        message:
          'cloud must be one of global, usgov-high, usgov-dod, china. GCC (moderate) tenants use the global cloud.',
      },
    ],
  ],
  [
    'cloud a number',
    { ...ok, cloud: 1 },
    [],
    [{ field: 'cloud', message: 'cloud must be a string (in YAML, put the value in quotes).' }],
  ],
  [
    'cloud from the environment',
    { ...ok, cloud: 'dod' },
    [['cloud', { source: 'environment', variable: 'MAILBRIDGE_CLOUD' }]],
    [
      {
        field: 'cloud',
        message: 'cloud (MAILBRIDGE_CLOUD) must be one of global, usgov-high, usgov-dod, china.',
      },
    ],
  ],
  [
    'authorityHost without scheme',
    { ...ok, authorityHost: 'login.microsoftonline.us' },
    [],
    [
      {
        field: 'authorityHost',
        message:
          'authorityHost must be a URL starting with https://, e.g. https://login.microsoftonline.us.',
      },
    ],
  ],
  [
    'authorityHost http',
    { ...ok, authorityHost: 'http://127.0.0.1:8443' },
    [],
    [
      {
        field: 'authorityHost',
        message:
          "authorityHost uses http: the authority receives the app's credential, so it must be https, and TLS verification is never switched off. For a service with a private CA, add that CA to NODE_EXTRA_CA_CERTS and use https.",
      },
    ],
  ],
  [
    'authorityHost ftp',
    { ...ok, authorityHost: 'ftp://login.example' },
    [],
    [
      {
        field: 'authorityHost',
        message: 'authorityHost must use https, e.g. https://login.microsoftonline.us.',
      },
    ],
  ],
  [
    'authorityHost path',
    { ...ok, authorityHost: 'https://login.microsoftonline.com/common' },
    [],
    [
      {
        field: 'authorityHost',
        message:
          'authorityHost takes the scheme, host and port only (https://login.microsoftonline.com); no path. The tenant goes in tenantId.',
      },
    ],
  ],
  [
    'authorityHost query',
    { ...ok, authorityHost: 'https://login.example/?x=1' },
    [],
    [
      {
        field: 'authorityHost',
        message:
          'authorityHost takes the scheme, host and port only (https://login.example); no query or fragment.',
      },
    ],
  ],
  [
    'authorityHost user',
    { ...ok, authorityHost: 'https://user:pw@login.example' },
    [],
    [{ field: 'authorityHost', message: 'authorityHost must not carry a user name or password.' }],
  ],
  [
    'authorityHost invalid',
    { ...ok, authorityHost: 'https://' },
    [],
    [
      {
        field: 'authorityHost',
        message: 'authorityHost is not a valid URL; e.g. https://login.microsoftonline.us.',
      },
    ],
  ],
  [
    'authorityHost a number',
    { ...ok, authorityHost: 443 },
    [],
    [
      {
        field: 'authorityHost',
        message: 'authorityHost must be a string (in YAML, put the value in quotes).',
      },
    ],
  ],
  [
    'authorityHost from the environment',
    { ...ok, authorityHost: 'http://x' },
    [['authorityHost', { source: 'environment', variable: 'AZURE_AUTHORITY_HOST' }]],
    [
      {
        field: 'authorityHost',
        message:
          "authorityHost (AZURE_AUTHORITY_HOST) uses http: the authority receives the app's credential, so it must be https, and TLS verification is never switched off. For a service with a private CA, add that CA to NODE_EXTRA_CA_CERTS and use https.",
      },
    ],
  ],
  [
    'scope empty',
    { ...ok, scope: '' },
    [],
    [
      {
        field: 'scope',
        message: 'scope is empty. Remove it to use https://outlook.office365.com/.default.',
      },
    ],
  ],
  [
    'scope empty in china',
    { ...ok, scope: '', cloud: 'china' },
    [],
    [
      {
        field: 'scope',
        message: 'scope is empty. Remove it to use https://partner.outlook.cn/.default.',
      },
    ],
  ],
  [
    'scope two',
    { ...ok, scope: 'https://outlook.office365.com/.default offline_access' },
    [],
    [
      {
        field: 'scope',
        message:
          'scope holds 2 scopes, but an app-only token is for one resource: use only https://outlook.office365.com/.default.',
      },
    ],
  ],
  [
    'scope graph',
    { ...ok, scope: 'https://graph.microsoft.com/.default' },
    [],
    [
      {
        field: 'scope',
        message:
          "scope 'https://graph.microsoft.com/.default' is a Microsoft Graph scope, and IMAP and SMTP refuse Graph tokens. Use the Exchange Online scope, e.g. https://outlook.office365.com/.default.",
      },
    ],
  ],
  [
    'scope graph guid',
    { ...ok, scope: '00000003-0000-0000-c000-000000000000/.default' },
    [],
    [
      {
        field: 'scope',
        message:
          'scope is a Microsoft Graph scope, and IMAP and SMTP refuse Graph tokens. Use the Exchange Online scope, e.g. https://outlook.office365.com/.default.',
      },
    ],
  ],
  [
    'scope delegated',
    { ...ok, scope: 'https://outlook.office.com/IMAP.AccessAsUser.All' },
    [],
    [
      {
        field: 'scope',
        message:
          "scope 'https://outlook.office.com/IMAP.AccessAsUser.All' is a delegated permission, which app-only tokens cannot carry. Use the resource's /.default, e.g. https://outlook.office365.com/.default, and grant the app the application permissions IMAP.AccessAsApp and/or SMTP.SendAsApp (Office 365 Exchange Online) with admin consent.",
      },
    ],
  ],
  [
    'scope delegated bare',
    { ...ok, scope: 'IMAP.AccessAsUser.All' },
    [],
    [
      {
        field: 'scope',
        message:
          "scope 'IMAP.AccessAsUser.All' is a delegated permission, which app-only tokens cannot carry. Use the resource's /.default, e.g. https://outlook.office365.com/.default, and grant the app the application permissions IMAP.AccessAsApp and/or SMTP.SendAsApp (Office 365 Exchange Online) with admin consent.",
      },
    ],
  ],
  [
    'scope delegated unquoted',
    { ...ok, scope: 'offline_access' },
    [],
    [
      {
        field: 'scope',
        message:
          "scope is a delegated permission, which app-only tokens cannot carry. Use the resource's /.default, e.g. https://outlook.office365.com/.default, and grant the app the application permissions IMAP.AccessAsApp and/or SMTP.SendAsApp (Office 365 Exchange Online) with admin consent.",
      },
    ],
  ],
  [
    'scope without default',
    { ...ok, scope: 'https://outlook.office365.com/' },
    [],
    [
      {
        field: 'scope',
        message:
          "scope 'https://outlook.office365.com/' lacks /.default: use https://outlook.office365.com/.default.",
      },
    ],
  ],
  [
    'scope secret-like without default',
    { ...ok, scope: S },
    [],
    [
      {
        field: 'scope',
        message:
          "scope is a delegated permission, which app-only tokens cannot carry. Use the resource's /.default, e.g. https://outlook.office365.com/.default, and grant the app the application permissions IMAP.AccessAsApp and/or SMTP.SendAsApp (Office 365 Exchange Online) with admin consent.",
      },
    ],
  ],
  [
    'scope no resource',
    { ...ok, scope: '/.default' },
    [],
    [
      {
        field: 'scope',
        message: 'scope names no resource; use https://outlook.office365.com/.default.',
      },
    ],
  ],
  [
    'scope a number',
    { ...ok, scope: 3 },
    [],
    [{ field: 'scope', message: 'scope must be a string (in YAML, put the value in quotes).' }],
  ],
  [
    'imap a string',
    { ...ok, imap: 'outlook.office365.com' },
    [],
    [
      {
        field: 'imap',
        message:
          'imap must be a mapping with host and/or port, e.g. imap: { host: outlook.office365.com, port: 993 }.',
      },
    ],
  ],
  [
    'smtp a list',
    { ...ok, smtp: ['x'] },
    [],
    [
      {
        field: 'smtp',
        message:
          'smtp must be a mapping with host and/or port, e.g. smtp: { host: smtp.office365.com, port: 587 }.',
      },
    ],
  ],
  [
    'imap in china a string',
    { ...ok, cloud: 'china', imap: 'x' },
    [],
    [
      {
        field: 'imap',
        message:
          'imap must be a mapping with host and/or port, e.g. imap: { host: partner.outlook.cn, port: 993 }.',
      },
    ],
  ],
  [
    'imap.port values',
    { ...ok, imap: { port: 0 }, smtp: { port: 'abc' } },
    [],
    [
      { field: 'imap.port', message: 'imap.port must be a whole number from 1 to 65535.' },
      { field: 'smtp.port', message: 'smtp.port must be a whole number from 1 to 65535.' },
    ],
  ],
  [
    'imap.port fraction',
    { ...ok, imap: { port: 99.5 } },
    [],
    [{ field: 'imap.port', message: 'imap.port must be a whole number from 1 to 65535.' }],
  ],
  [
    'imap.port from the environment',
    { ...ok, imap: { port: 70000 } },
    [['imap.port', { source: 'environment', variable: 'MAILBRIDGE_IMAP_PORT' }]],
    [
      {
        field: 'imap.port',
        message: 'imap.port (MAILBRIDGE_IMAP_PORT) must be a whole number from 1 to 65535.',
      },
    ],
  ],
  [
    'smtp.host empty',
    { ...ok, smtp: { host: ' ' } },
    [],
    [
      {
        field: 'smtp.host',
        message: 'smtp.host is empty. Set a host name, or remove it to use smtp.office365.com.',
      },
    ],
  ],
  [
    'smtp.host empty in usgov-dod',
    { ...ok, cloud: 'usgov-dod', smtp: { host: '' } },
    [],
    [
      {
        field: 'smtp.host',
        message: 'smtp.host is empty. Set a host name, or remove it to use smtp-dod.office365.us.',
      },
    ],
  ],
  [
    'smtp.host with scheme',
    { ...ok, smtp: { host: 'imaps://outlook.office365.com' } },
    [],
    [
      {
        field: 'smtp.host',
        message:
          'smtp.host must be a host name only, like smtp.office365.com: no scheme, path or port (the port goes in smtp.port).',
      },
    ],
  ],
  [
    'imap.host with port',
    { ...ok, imap: { host: 'outlook.office365.com:993' } },
    [],
    [
      {
        field: 'imap.host',
        message:
          'imap.host must be a host name only, like outlook.office365.com: no scheme, path or port (the port goes in imap.port).',
      },
    ],
  ],
  [
    'imap.host a number',
    { ...ok, imap: { host: 5 } },
    [],
    [{ field: 'imap.host', message: 'imap.host must be a string.' }],
  ],
  [
    'imap.host from the environment',
    { ...ok, imap: { host: 'a b' } },
    [['imap.host', { source: 'environment', variable: 'MAILBRIDGE_IMAP_HOST' }]],
    [
      {
        field: 'imap.host',
        message:
          'imap.host (MAILBRIDGE_IMAP_HOST) must be a host name only, like outlook.office365.com: no scheme, path or port (the port goes in imap.port).',
      },
    ],
  ],
  [
    'unknown keys in imap and smtp',
    { ...ok, smtp: { hots: 'x', tls: true }, imap: { 'Zq8~sEcReT.vAlUe-9f3b1c': 1 } },
    [],
    [
      {
        field: 'imap.(unknown key)',
        message:
          'Unknown setting in imap, (a key of 23 characters that is no setting name, not shown in case it is a misplaced secret). Known settings: imap.host, imap.port; settings of a job go in its section (relay:, archive:, …).',
      },
      { field: 'smtp.hots', message: "Unknown setting 'smtp.hots' — did you mean 'smtp.host'?" },
      {
        field: 'smtp.tls',
        message:
          "Unknown setting 'smtp.tls'. Known settings: smtp.host, smtp.port; settings of a job go in its section (relay:, archive:, …).",
      },
    ],
  ],
  ['caFile empty', { ...ok, caFile: '' }, [], [{ field: 'caFile', message: 'caFile is empty.' }]],
  [
    'caFile missing',
    { ...ok, caFile: '/nonexistent/ca.pem' },
    [],
    [
      {
        field: 'caFile',
        message:
          'caFile /nonexistent/ca.pem cannot be used: it cannot be read: no such file (ENOENT).',
      },
    ],
  ],
  [
    'caFile a number',
    { ...ok, caFile: 1 },
    [],
    [{ field: 'caFile', message: 'caFile must be a string (in YAML, put the value in quotes).' }],
  ],
  [
    'unknown setting near',
    { ...ok, tenantID: 'x', client_secret: 'y', certificatPath: 'z' },
    [],
    [
      {
        field: 'certificatPath',
        message: "Unknown setting 'certificatPath' — did you mean 'certificatePath'?",
      },
      {
        field: 'client_secret',
        message: "Unknown setting 'client_secret' — did you mean 'clientSecret'?",
      },
      { field: 'tenantID', message: "Unknown setting 'tenantID' — did you mean 'tenantId'?" },
    ],
  ],
  [
    'unknown setting far',
    { ...ok, verbose: true },
    [],
    [
      {
        field: 'verbose',
        message:
          "Unknown setting 'verbose'. Known settings: tenantId, clientId, clientSecret, certificatePath, certificatePassword, sendCertificateChain, federatedTokenFile, clientAssertion, managedIdentity, authorityHost, cloud, scope, imap, smtp, pop, caFile; settings of a job go in its section (relay:, archive:, …).",
      },
    ],
  ],
  [
    'environment variable name',
    { ...ok, AZURE_CLIENT_ID: C },
    [],
    [
      {
        field: 'AZURE_CLIENT_ID',
        message:
          "Unknown setting 'AZURE_CLIENT_ID': that is an environment variable's name; in the config file write 'clientId'.",
      },
    ],
  ],
  [
    'environment variable name of a variable without setting',
    { ...ok, MAILBRIDGE_IMAP_PORT: 1 },
    [],
    [
      {
        field: 'MAILBRIDGE_IMAP_PORT',
        message:
          "Unknown setting 'MAILBRIDGE_IMAP_PORT': that is an environment variable's name; in the config file write 'imap.port'.",
      },
    ],
  ],
  [
    'unknown setting secret-like',
    { ...ok, [S]: true },
    [],
    [
      {
        field: '(unknown key)',
        message:
          'Unknown setting (a key of 44 characters that is no setting name, not shown in case it is a misplaced secret). Known settings: tenantId, clientId, clientSecret, certificatePath, certificatePassword, sendCertificateChain, federatedTokenFile, clientAssertion, managedIdentity, authorityHost, cloud, scope, imap, smtp, pop, caFile; settings of a job go in its section (relay:, archive:, …).',
      },
    ],
  ],
  [
    'section near imap',
    { ...ok, IMAP: { port: 1 }, smpt: { port: 2 } },
    [],
    [
      { field: 'IMAP', message: "Unknown section 'IMAP': did you mean 'imap'?" },
      { field: 'smpt', message: "Unknown section 'smpt': did you mean 'smtp'?" },
    ],
  ],
  [
    'many at once',
    {
      tenantId: 'common',
      clientId: 'nope',
      clientSecret: S,
      scope: 'https://graph.microsoft.com/.default',
      authorityHost: 'http://login.example',
      cloud: 'mars',
      imap: { port: 0 },
      smtp: { host: '' },
      tenantID: 'x',
    },
    [],
    [
      {
        field: 'authorityHost',
        message:
          "authorityHost uses http: the authority receives the app's credential, so it must be https, and TLS verification is never switched off. For a service with a private CA, add that CA to NODE_EXTRA_CA_CERTS and use https.",
      },
      {
        field: 'clientId',
        message:
          "clientId is not a GUID. Use the Application (client) ID from the app registration's Overview page (not its name, and not a secret).",
      },
      { field: 'cloud', message: 'cloud must be one of global, usgov-high, usgov-dod, china.' },
      { field: 'imap.port', message: 'imap.port must be a whole number from 1 to 65535.' },
      {
        field: 'scope',
        message:
          "scope 'https://graph.microsoft.com/.default' is a Microsoft Graph scope, and IMAP and SMTP refuse Graph tokens. Use the Exchange Online scope, e.g. https://outlook.office365.com/.default.",
      },
      {
        field: 'smtp.host',
        message: 'smtp.host is empty. Set a host name, or remove it to use smtp.office365.com.',
      },
      {
        field: 'tenantId',
        message:
          "tenantId is 'common', which cannot be used for app-only tokens: the client credentials flow must name the tenant. Use the Directory (tenant) ID (a GUID) or a verified domain of the tenant.",
      },
      { field: 'tenantID', message: "Unknown setting 'tenantID' — did you mean 'tenantId'?" },
    ],
  ],
];

describe('config validation messages', () => {
  it.each(SETTINGS)('%s', async (_name, input, origins, expected) => {
    let problems: Problems = [];
    try {
      await validateSettings(input as Settings, { origins: new Map(origins) });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigurationError);
      problems = sorted((error as ConfigurationError).problems);
    }
    expect(problems).toEqual(expected);
    expectNoSecret(problems);
  });
});

/** A relay section that passes. */
const minimal = {
  spool: '/var/spool/mailbridge',
  allowNetworks: ['127.0.0.1/32'],
  policy: [{ network: '127.0.0.1/32', senders: ['scanner@contoso.com'] }],
};

const RELAY: [string, unknown, { listen?: string[] }, Problems][] = [
  [
    'no section',
    undefined,
    {},
    [
      {
        field: 'relay.policy',
        message:
          'relay.policy is required: list which senders each user or network may use, and the mailbox each goes out as.',
      },
      {
        field: 'relay.spool',
        message: 'relay.spool is required: the directory that keeps accepted messages.',
      },
      {
        field: 'relay',
        message: 'The config file has no relay section: add one (see `mailbridge relay --help`).',
      },
    ],
  ],
  [
    'a list',
    [],
    {},
    [
      {
        field: 'relay.policy',
        message:
          'relay.policy is required: list which senders each user or network may use, and the mailbox each goes out as.',
      },
      {
        field: 'relay.spool',
        message: 'relay.spool is required: the directory that keeps accepted messages.',
      },
      { field: 'relay', message: 'relay must be a mapping of settings.' },
    ],
  ],
  [
    'a string',
    'relay',
    {},
    [
      {
        field: 'relay.policy',
        message:
          'relay.policy is required: list which senders each user or network may use, and the mailbox each goes out as.',
      },
      {
        field: 'relay.spool',
        message: 'relay.spool is required: the directory that keeps accepted messages.',
      },
      { field: 'relay', message: 'relay must be a mapping of settings.' },
    ],
  ],
  [
    'empty mapping',
    {},
    {},
    [
      {
        field: 'relay.policy',
        message:
          'relay.policy is required: list which senders each user or network may use, and the mailbox each goes out as.',
      },
      {
        field: 'relay.spool',
        message: 'relay.spool is required: the directory that keeps accepted messages.',
      },
    ],
  ],
  [
    'unknown keys',
    {
      ...minimal,
      lisen: [],
      maxMesageSize: 1,
      frobnicate: 1,
      'Zq8~sEcReT.vAlUe-9f3b1c': 1,
    },
    {},
    [
      {
        field: 'relay.(unknown key)',
        message:
          'Unknown setting in relay, (a key of 23 characters that is no setting name, not shown in case it is a misplaced secret). Known: listen, spool, tls, users, allowNetworks, policy, maxMessageSize, maxRecipients, rateLimitPerMinute, connectionsPerMailbox, retryFor, retryBackoff, bounce, http, shutdownTimeout, hostname, allowPlaintextAuth, maxConnections, maxConnectionsPerAddress, sessionTimeout, authPenalty, routes.',
      },
      {
        field: 'relay.frobnicate',
        message:
          "Unknown setting 'relay.frobnicate'. Known: listen, spool, tls, users, allowNetworks, policy, maxMessageSize, maxRecipients, rateLimitPerMinute, connectionsPerMailbox, retryFor, retryBackoff, bounce, http, shutdownTimeout, hostname, allowPlaintextAuth, maxConnections, maxConnectionsPerAddress, sessionTimeout, authPenalty, routes.",
      },
      {
        field: 'relay.lisen',
        message: "Unknown setting 'relay.lisen': did you mean 'relay.listen'?",
      },
      {
        field: 'relay.maxMesageSize',
        message: "Unknown setting 'relay.maxMesageSize': did you mean 'relay.maxMessageSize'?",
      },
    ],
  ],
  [
    'listen not strings',
    {
      ...minimal,
      listen: [1],
    },
    {},
    [
      // Changed: "needs at least one address" followed from the same mistake; it is said once now.
      { field: 'relay.listen', message: 'relay.listen must be a list of strings.' },
    ],
  ],
  [
    'listen a mapping',
    {
      ...minimal,
      listen: { a: 1 },
    },
    {},
    [
      // Changed: "needs at least one address" followed from the same mistake; it is said once now.
      { field: 'relay.listen', message: 'relay.listen must be a list of strings.' },
    ],
  ],
  [
    'listen empty',
    {
      ...minimal,
      listen: [],
    },
    {},
    [{ field: 'relay.listen', message: 'relay.listen needs at least one address.' }],
  ],
  [
    'listen entries',
    {
      ...minimal,
      listen: ['127.0.0.1', 'http://x:1', '127.0.0.1:70000', 'smtps://127.0.0.1:465'],
    },
    {},
    [
      { field: 'relay.listen[0]', message: "'127.0.0.1' is not HOST:PORT (IPv6 as [::1]:2525)." },
      {
        field: 'relay.listen[1]',
        message: "'http://x:1': the scheme must be smtp:// or smtps:// (implicit TLS).",
      },
      { field: 'relay.listen[2]', message: "'127.0.0.1:70000': the port must be 0-65535." },
      {
        field: 'relay.listen',
        message:
          'smtps://127.0.0.1:465 asks for implicit TLS, but relay.tls (cert and key) is not set.',
      },
    ],
  ],
  [
    'listen flag',
    {
      ...minimal,
    },
    { listen: ['nope'] },
    [{ field: '--listen nope', message: "'nope' is not HOST:PORT (IPv6 as [::1]:2525)." }],
  ],
  [
    'spool empty',
    {
      spool: ' ',
      allowNetworks: ['127.0.0.1/32'],
      policy: [{ network: '127.0.0.1/32', senders: ['scanner@contoso.com'] }],
    },
    {},
    [{ field: 'relay.spool', message: 'relay.spool must be a directory path.' }],
  ],
  [
    'spool a number',
    {
      spool: 1,
      allowNetworks: ['127.0.0.1/32'],
      policy: [{ network: '127.0.0.1/32', senders: ['scanner@contoso.com'] }],
    },
    {},
    [{ field: 'relay.spool', message: 'relay.spool must be a directory path.' }],
  ],
  [
    'tls a string',
    {
      ...minimal,
      tls: 'x',
    },
    {},
    [{ field: 'relay.tls', message: 'relay.tls must be a mapping with cert and key (PEM files).' }],
  ],
  [
    'tls empty',
    {
      ...minimal,
      tls: {},
    },
    {},
    [
      { field: 'relay.tls.cert', message: 'relay.tls.cert must name the PEM certificate file.' },
      { field: 'relay.tls.key', message: 'relay.tls.key must name the PEM private key file.' },
    ],
  ],
  [
    'tls unknown key',
    {
      ...minimal,
      tls: { cert: '/c', key: '/k', ca: '/x' },
    },
    {},
    [{ field: 'relay.tls.ca', message: "Unknown setting 'relay.tls.ca'. Known: cert, key." }],
  ],
  [
    'users empty',
    {
      ...minimal,
      users: '',
    },
    {},
    [{ field: 'relay.users', message: 'relay.users must name a file of name:hash lines.' }],
  ],
  [
    'users a list',
    {
      ...minimal,
      users: ['a'],
    },
    {},
    [{ field: 'relay.users', message: 'relay.users must name a file of name:hash lines.' }],
  ],
  [
    'allowNetworks entries',
    {
      spool: '/var/spool/mailbridge',
      allowNetworks: ['10.0.0.0/33', 'secret'],
      policy: [{ network: '127.0.0.1/32', senders: ['scanner@contoso.com'] }],
    },
    {},
    [
      {
        field: 'relay.allowNetworks[0]',
        message: 'this entry is not an IPv4 or IPv6 network (CIDR).',
      },
      {
        field: 'relay.allowNetworks[1]',
        message: 'this entry is not an IPv4 or IPv6 network (CIDR).',
      },
      {
        field: 'relay.policy[0].network',
        message:
          '127.0.0.1/32 is not inside relay.allowNetworks: its clients are refused before the policy applies. Add it to relay.allowNetworks.',
      },
    ],
  ],
  [
    'allowNetworks a number',
    {
      spool: '/var/spool/mailbridge',
      allowNetworks: 5,
      policy: [{ network: '127.0.0.1/32', senders: ['scanner@contoso.com'] }],
    },
    {},
    [
      { field: 'relay.allowNetworks', message: 'relay.allowNetworks must be a list of strings.' },
      {
        field: 'relay.policy[0].network',
        message:
          '127.0.0.1/32 is not inside relay.allowNetworks: its clients are refused before the policy applies. Add it to relay.allowNetworks.',
      },
    ],
  ],
  [
    'sizes',
    {
      ...minimal,
      maxMessageSize: '200MB',
    },
    {},
    [
      {
        field: 'relay.maxMessageSize',
        message: "relay.maxMessageSize is above Exchange Online's ceiling of 150 MB.",
      },
    ],
  ],
  [
    'size word',
    {
      ...minimal,
      maxMessageSize: 'big',
    },
    {},
    [
      {
        field: 'relay.maxMessageSize',
        message: 'relay.maxMessageSize must be a size such as 35MB or a number of bytes.',
      },
    ],
  ],
  [
    'size zero',
    {
      ...minimal,
      maxMessageSize: 0,
    },
    {},
    [
      {
        field: 'relay.maxMessageSize',
        message: 'relay.maxMessageSize must be a size such as 35MB or a number of bytes.',
      },
    ],
  ],
  [
    'integers',
    {
      ...minimal,
      maxRecipients: 0,
      connectionsPerMailbox: 4,
      maxConnections: 1.5,
      maxConnectionsPerAddress: '3',
    },
    {},
    [
      {
        field: 'relay.connectionsPerMailbox',
        message: 'relay.connectionsPerMailbox must be a whole number from 1 to 3.',
      },
      {
        field: 'relay.maxConnectionsPerAddress',
        message: 'relay.maxConnectionsPerAddress must be a whole number from 1 to 10000.',
      },
      {
        field: 'relay.maxConnections',
        message: 'relay.maxConnections must be a whole number from 1 to 10000.',
      },
      {
        field: 'relay.maxRecipients',
        message: 'relay.maxRecipients must be a whole number from 1 to 1000.',
      },
    ],
  ],
  [
    'rate limit',
    {
      ...minimal,
      rateLimitPerMinute: 'fast',
    },
    {},
    [
      {
        field: 'relay.rateLimitPerMinute',
        message:
          'relay.rateLimitPerMinute must be a whole number from 1 to 100000 or false for no limit.',
      },
    ],
  ],
  [
    'rate limit true',
    {
      ...minimal,
      rateLimitPerMinute: true,
    },
    {},
    [
      {
        field: 'relay.rateLimitPerMinute',
        message:
          'relay.rateLimitPerMinute must be a whole number from 1 to 100000 or false for no limit.',
      },
    ],
  ],
  [
    'durations',
    {
      ...minimal,
      retryFor: 'forever',
      shutdownTimeout: -1,
      sessionTimeout: '0s',
    },
    {},
    [
      {
        field: 'relay.retryFor',
        message: 'relay.retryFor must be a duration such as 90s, 30m, 24h or 2d.',
      },
      { field: 'relay.sessionTimeout', message: 'relay.sessionTimeout must be above 0.' },
      {
        field: 'relay.shutdownTimeout',
        message: 'relay.shutdownTimeout must be a duration such as 90s, 30m, 24h or 2d.',
      },
    ],
  ],
  [
    'backoff a string',
    {
      ...minimal,
      retryBackoff: '1m',
    },
    {},
    [
      {
        field: 'relay.retryBackoff',
        message: 'relay.retryBackoff must be a mapping: { initial: 1m, max: 1h }.',
      },
    ],
  ],
  [
    'backoff values',
    {
      ...minimal,
      retryBackoff: { initial: 'x', max: '1 week' },
    },
    {},
    [
      {
        field: 'relay.retryBackoff.initial',
        message: 'relay.retryBackoff.initial must be a duration such as 90s, 30m, 24h or 2d.',
      },
      {
        field: 'relay.retryBackoff.max',
        message: 'relay.retryBackoff.max must be a duration such as 90s, 30m, 24h or 2d.',
      },
    ],
  ],
  [
    'backoff order',
    {
      ...minimal,
      retryBackoff: { initial: '2h', max: '1h' },
      authPenalty: { initial: '1m', max: '1s' },
    },
    {},
    [
      {
        field: 'relay.authPenalty',
        message: 'relay.authPenalty.initial must not exceed relay.authPenalty.max.',
      },
      {
        field: 'relay.retryBackoff',
        message: 'relay.retryBackoff.initial must not exceed relay.retryBackoff.max.',
      },
    ],
  ],
  [
    'auth penalty a list',
    {
      ...minimal,
      authPenalty: [1],
    },
    {},
    [
      {
        field: 'relay.authPenalty',
        message: 'relay.authPenalty must be a mapping: { initial: 1s, max: 15s }.',
      },
    ],
  ],
  [
    'booleans',
    {
      ...minimal,
      bounce: 'yes',
      allowPlaintextAuth: 1,
    },
    {},
    [
      {
        field: 'relay.allowPlaintextAuth',
        message: 'relay.allowPlaintextAuth must be true or false.',
      },
      { field: 'relay.bounce', message: 'relay.bounce must be true or false.' },
    ],
  ],
  [
    'hostname',
    {
      ...minimal,
      hostname: 'relay host',
    },
    {},
    [{ field: 'relay.hostname', message: 'relay.hostname must be a host name.' }],
  ],
  [
    'http',
    {
      ...minimal,
      http: '0.0.0.0:9025',
    },
    {},
    [
      {
        field: 'relay.http',
        message:
          'relay.http 0.0.0.0:9025 is not a loopback address: /healthz and /metrics are served on loopback only (127.0.0.1 or ::1).',
      },
    ],
  ],
  [
    'http bad',
    {
      ...minimal,
      http: 'smtps://127.0.0.1:9025',
    },
    {},
    [{ field: 'relay.http', message: 'relay.http must be HOST:PORT, e.g. 127.0.0.1:9025.' }],
  ],
  [
    'http a number',
    {
      ...minimal,
      http: 9025,
    },
    {},
    [{ field: 'relay.http', message: 'relay.http must be HOST:PORT, e.g. 127.0.0.1:9025.' }],
  ],
  [
    'policy missing',
    { spool: '/var/spool/mailbridge', allowNetworks: ['127.0.0.1/32'] },
    {},
    [
      {
        field: 'relay.policy',
        message:
          'relay.policy is required: list which senders each user or network may use, and the mailbox each goes out as.',
      },
    ],
  ],
  [
    'policy empty',
    { spool: '/var/spool/mailbridge', allowNetworks: ['127.0.0.1/32'], policy: [] },
    {},
    [{ field: 'relay.policy', message: 'relay.policy must be a non-empty list of rules.' }],
  ],
  [
    'policy a mapping',
    { spool: '/var/spool/mailbridge', allowNetworks: ['127.0.0.1/32'], policy: { a: 1 } },
    {},
    [{ field: 'relay.policy', message: 'relay.policy must be a non-empty list of rules.' }],
  ],
  [
    'policy rules',
    {
      spool: '/var/spool/mailbridge',
      allowNetworks: ['127.0.0.1/32'],
      policy: [
        'x',
        { senders: ['a@b.c'] },
        { user: 'scanner', network: '10.0.0.0/8', senders: [] },
        {
          network: '192.168.0.0/16',
          senders: ['not an address', '', 5, ['x'], 'a b@c'],
          mailbox: 'nope',
        },
        { user: 'printer', senders: ['<>'] },
        { user: 'a:b', senders: 'x' },
        { network: 'nowhere', senders: ['*'], mailbx: 'a@b.c', 'Zq8~sEcReT.vAlUe-9f3b1c': 1 },
      ],
    },
    {},
    [
      {
        field: 'relay.policy[0]',
        message: 'a rule is a mapping: { user | network, senders: [...], mailbox }.',
      },
      {
        field: 'relay.policy[1]',
        message: 'a rule names exactly one of user (a local account) or network (CIDR).',
      },
      {
        field: 'relay.policy[2].senders',
        message: "senders must list at least one address, '*@domain' or '*'.",
      },
      {
        field: 'relay.policy[2]',
        message: 'a rule names exactly one of user (a local account) or network (CIDR).',
      },
      {
        field: 'relay.policy[3].mailbox',
        message: 'mailbox must be the address of a Microsoft 365 mailbox.',
      },
      {
        field: 'relay.policy[3].senders[0]',
        message: "this entry is not an address, '*@domain', '*' or '<>' (it has no @).",
      },
      {
        field: 'relay.policy[3].senders[1]',
        message: "this entry is not an address, '*@domain', '*' or '<>' (it is empty).",
      },
      {
        field: 'relay.policy[3].senders[2]',
        message: "this entry is not an address, '*@domain', '*' or '<>' (it is a number).",
      },
      {
        field: 'relay.policy[3].senders[3]',
        message: "this entry is not an address, '*@domain', '*' or '<>' (it is a list).",
      },
      {
        field: 'relay.policy[3].senders[4]',
        message: "this entry is not an address, '*@domain', '*' or '<>' (it contains a space).",
      },
      {
        field: 'relay.policy[4].mailbox',
        message: "a rule that allows the null sender '<>' needs a mailbox to send as.",
      },
      {
        field: 'relay.policy[5].senders',
        message: "senders must list at least one address, '*@domain' or '*'.",
      },
      { field: 'relay.policy[5].user', message: 'user must be a user name of the users file.' },
      // Changed: a rule's unknown key is named in full and gets a "did you mean", as in every section.
      {
        field: 'relay.policy[6].(unknown key)',
        message:
          'Unknown setting in relay.policy[6], (a key of 23 characters that is no setting name, not shown in case it is a misplaced secret). Known: user, network, senders, mailbox.',
      },
      {
        field: 'relay.policy[6].mailbx',
        message:
          "Unknown setting 'relay.policy[6].mailbx': did you mean 'relay.policy[6].mailbox'?",
      },
      {
        field: 'relay.policy[6].network',
        message: 'network must be an IPv4 or IPv6 network (CIDR).',
      },
    ],
  ],
  [
    'policy user without users, network outside',
    {
      spool: '/var/spool/mailbridge',
      allowNetworks: ['127.0.0.1/32'],
      policy: [
        { user: 'scanner', senders: ['*@contoso.com'], mailbox: 'scans@contoso.com' },
        { network: '10.1.0.0/16', senders: ['*'] },
      ],
    },
    {},
    [
      {
        field: 'relay.policy[0].user',
        message: "the rule names user 'scanner' but relay.users (the users file) is not set.",
      },
      {
        field: 'relay.policy[1].network',
        message:
          '10.1.0.0/16 is not inside relay.allowNetworks: its clients are refused before the policy applies. Add it to relay.allowNetworks.',
      },
    ],
  ],
  [
    'open relay',
    {
      spool: '/var/spool/mailbridge',
      allowNetworks: [],
      policy: [{ network: '127.0.0.1/32', senders: ['scanner@contoso.com'] }],
    },
    { listen: ['0.0.0.0:25'] },
    [
      {
        field: 'relay.listen',
        message:
          "Refusing to listen on 0.0.0.0:25 (beyond loopback) as an open relay: set relay.allowNetworks to the devices' networks, or relay.tls and relay.users so that clients must authenticate over TLS.",
      },
      {
        field: 'relay.policy[0].network',
        message:
          '127.0.0.1/32 is not inside relay.allowNetworks: its clients are refused before the policy applies. Add it to relay.allowNetworks.',
      },
    ],
  ],
  [
    'open relay tls only',
    {
      spool: '/var/spool/mailbridge',
      allowNetworks: [],
      policy: [{ user: 'u', senders: ['*'] }],
      tls: { cert: '/c', key: '/k' },
    },
    { listen: ['0.0.0.0:25'] },
    [
      {
        field: 'relay.listen',
        message:
          "Refusing to listen on 0.0.0.0:25 (beyond loopback) as an open relay: set relay.allowNetworks to the devices' networks, or relay.users so that clients must authenticate over TLS.",
      },
      {
        field: 'relay.policy[0].user',
        message: "the rule names user 'u' but relay.users (the users file) is not set.",
      },
    ],
  ],
  [
    'everyone allowed',
    {
      spool: '/var/spool/mailbridge',
      allowNetworks: ['0.0.0.0/0', '127.0.0.1/32'],
      policy: [{ network: '127.0.0.1/32', senders: ['scanner@contoso.com'] }],
      listen: ['[::]:2525'],
    },
    {},
    [
      {
        field: 'relay.allowNetworks',
        message:
          '0.0.0.0/0 admits every address: with a listener beyond loopback ([::]:2525) that is an open relay. List only the networks of the devices that send.',
      },
    ],
  ],
  [
    'implicit TLS without tls',
    {
      ...minimal,
    },
    { listen: ['smtps://127.0.0.1:465'] },
    [
      {
        field: 'relay.listen',
        message:
          'smtps://127.0.0.1:465 asks for implicit TLS, but relay.tls (cert and key) is not set.',
      },
    ],
  ],
];

describe('relay section messages', () => {
  it('refuses an unknown key inside retryBackoff, which main accepted silently', () => {
    const problems = problemsOf(() =>
      parseRelaySettings({
        spool: '/var/spool/mailbridge',
        allowNetworks: ['127.0.0.1/32'],
        policy: [{ network: '127.0.0.1/32', senders: ['*'] }],
        retryBackoff: { initial: '1s', max: '2s', factor: 2 },
      }),
    );
    expect(problems).toEqual([
      {
        field: 'relay.retryBackoff.factor',
        message: "Unknown setting 'relay.retryBackoff.factor'. Known: initial, max.",
      },
    ]);
  });

  it.each(RELAY)('%s', (_name, input, options, expected) => {
    const problems = problemsOf(() => parseRelaySettings(input, options));
    expect(problems).toEqual(expected);
    expectNoSecret(problems);
  });
});

/** A valid plan, for the cases that change one value of it. */
const plan = {
  tenant: 'contoso.onmicrosoft.com',
  appId: '11111111-2222-3333-4444-555555555555',
  objectId: '66666666-7777-8888-9999-aaaaaaaaaaaa',
  mailboxes: ['archive@contoso.com'],
};

const PLAN: [string, Record<string, unknown>, Problems][] = [
  [
    'nothing',
    {},
    [
      { field: 'appId', message: 'the application (client) id (--app-id) is required' },
      {
        field: 'mailboxes',
        message: 'at least one mailbox is required (--mailbox ADDRESS or --mailboxes FILE)',
      },
      {
        field: 'objectId',
        message:
          "the Enterprise Application's (service principal's) object id (--object-id) is required",
      },
      {
        field: 'tenant',
        message: 'the tenant (directory id or verified domain, --tenant) is required',
      },
    ],
  ],
  [
    'wrong types',
    {
      tenant: 5,
      appId: ['x'],
      objectId: { a: 1 },
      mailboxes: 'a@contoso.com',
      displayName: 7,
      protocols: 5,
      sendAs: 'yes',
      enableProtocols: 1,
      remove: null,
      cloud: 3,
    },
    [
      { field: 'appId', message: 'must be a string, not a list' },
      {
        field: 'cloud',
        message: 'number 3 is not a cloud (one of: global, usgov-high, usgov-dod, china)',
      },
      { field: 'displayName', message: 'must be a string, not number 7' },
      { field: 'enableProtocols', message: 'must be true or false, not number 1' },
      { field: 'mailboxes', message: 'must be a list of addresses, not the text "a@contoso.com"' },
      { field: 'objectId', message: 'must be a string, not a mapping' },
      { field: 'protocols', message: 'must be a list such as imap,smtp, not number 5' },
      { field: 'sendAs', message: 'must be true or false, not the text "yes"' },
      { field: 'tenant', message: 'must be a string, not number 5' },
    ],
  ],
  [
    'bad values',
    {
      tenant: 'common',
      appId: 'not-a-guid',
      objectId: 'nope',
      displayName: 'O’Brien',
      protocols: 'imap,ftp',
      cloud: 'mars',
      mailboxes: [
        'ok@contoso.com',
        "x@y.com'; Remove-Mailbox -Identity ceo; '",
        { address: '$(Invoke-Evil)@x.com', source: 'list.csv line 7' },
        42,
        null,
      ],
    },
    [
      {
        field: 'appId',
        message:
          '"not-a-guid" is not a GUID (expected 8-4-4-4-12 hexadecimal digits, e.g. 00000000-1111-2222-3333-444444444444)',
      },
      {
        field: 'cloud',
        message: '"mars" is not a cloud (one of: global, usgov-high, usgov-dod, china)',
      },
      {
        field: 'displayName',
        message:
          'the display name holds the character ’ (U+2019) (PowerShell reads it as a quote): only printable ASCII is accepted, because Windows PowerShell 5.1 reads a script without a byte order mark as Windows-1252, where parts of other characters become quotes',
      },
      {
        field: 'list.csv line 7',
        message:
          '"$(Invoke-Evil)@x.com" is refused: the part before the @ holds a dollar sign ($) (U+0024) (allowed: letters, digits, . and !#%&\'*+/=?^_{|}~-)',
      },
      {
        field: 'mailboxes[1]',
        message:
          '"x@y.com\'; Remove-Mailbox -Identity ceo; \'" holds whitespace or control characters',
      },
      { field: 'mailboxes[3]', message: 'must be an address, not number 42' },
      { field: 'mailboxes[4]', message: 'must be an address, not null' },
      {
        field: 'objectId',
        message:
          '"nope" is not a GUID (expected 8-4-4-4-12 hexadecimal digits, e.g. 00000000-1111-2222-3333-444444444444)',
      },
      { field: 'protocols', message: '"ftp" is not a protocol (one of: imap, pop, smtp)' },
      {
        field: 'tenant',
        message: "'common' is not a tenant: name the directory (tenant) id or a verified domain",
      },
    ],
  ],
  [
    'object id equals app id',
    {
      tenant: 'contoso.onmicrosoft.com',
      appId: '11111111-2222-3333-4444-555555555555',
      objectId: '11111111-2222-3333-4444-555555555555',
      mailboxes: ['archive@contoso.com'],
    },
    [
      {
        field: 'objectId',
        message:
          "it equals the application id: give the object id shown on the Enterprise Application's overview page (Entra ID > Enterprise applications), not the application id",
      },
    ],
  ],
  [
    'sendAs without smtp',
    {
      tenant: 'contoso.onmicrosoft.com',
      appId: '11111111-2222-3333-4444-555555555555',
      objectId: '66666666-7777-8888-9999-aaaaaaaaaaaa',
      mailboxes: ['archive@contoso.com'],
      protocols: ['imap'],
      sendAs: true,
    },
    [{ field: 'sendAs', message: 'SendAs is for sending over SMTP: add smtp to the protocols' }],
  ],
  [
    'no protocol',
    {
      tenant: 'contoso.onmicrosoft.com',
      appId: '11111111-2222-3333-4444-555555555555',
      objectId: '66666666-7777-8888-9999-aaaaaaaaaaaa',
      mailboxes: ['archive@contoso.com'],
      protocols: ',',
    },
    [{ field: 'protocols', message: 'name at least one of: imap, pop, smtp' }],
  ],
  [
    'protocols list of numbers',
    {
      tenant: 'contoso.onmicrosoft.com',
      appId: '11111111-2222-3333-4444-555555555555',
      objectId: '66666666-7777-8888-9999-aaaaaaaaaaaa',
      mailboxes: ['archive@contoso.com'],
      protocols: [1],
    },
    [{ field: 'protocols', message: 'must be a list such as imap,smtp, not a list' }],
  ],
  [
    'empty mailbox list',
    {
      tenant: 'contoso.onmicrosoft.com',
      appId: '11111111-2222-3333-4444-555555555555',
      objectId: '66666666-7777-8888-9999-aaaaaaaaaaaa',
      mailboxes: [],
    },
    [
      {
        field: 'mailboxes',
        message: 'at least one mailbox is required (--mailbox ADDRESS or --mailboxes FILE)',
      },
    ],
  ],
  [
    'empty strings',
    {
      tenant: '',
      appId: '',
      objectId: '66666666-7777-8888-9999-aaaaaaaaaaaa',
      mailboxes: ['archive@contoso.com'],
      cloud: '',
    },
    [
      { field: 'appId', message: 'the application (client) id (--app-id) is required' },
      {
        field: 'tenant',
        message: 'the tenant (directory id or verified domain, --tenant) is required',
      },
    ],
  ],
  [
    'tenant shapes',
    {
      tenant: 'contoso',
      appId: '11111111-2222-3333-4444-555555555555',
      objectId: '66666666-7777-8888-9999-aaaaaaaaaaaa',
      mailboxes: ['archive@contoso.com'],
    },
    [
      {
        field: 'tenant',
        message:
          '"contoso" is not a domain name (it has no dot) (a tenant is a directory id GUID or a verified domain)',
      },
    ],
  ],
  [
    'smtpScope a number',
    { ...plan, smtpScope: 5 },
    [
      {
        field: 'smtpScope',
        message:
          'must be a string, not number 5: use group:NAME (the members of one group) or mailboxes (exactly the mailboxes given)',
      },
    ],
  ],
  [
    'smtpScope unknown',
    { ...plan, smtpScope: 'everyone' },
    [
      {
        field: 'smtpScope',
        message:
          '"everyone" is not a scope: use group:NAME (the members of one group) or mailboxes (exactly the mailboxes given)',
      },
    ],
  ],
  [
    'smtpScope empty group',
    { ...plan, smtpScope: 'group:' },
    [{ field: 'smtpScope', message: 'the group name is empty' }],
  ],
  [
    'smtpScope without smtp',
    { ...plan, protocols: 'imap', smtpScope: 'mailboxes' },
    [
      {
        field: 'smtpScope',
        message: 'the SMTP scope is for sending over SMTP: add smtp to the protocols',
      },
    ],
  ],
  [
    'smtpScope with sendAs',
    { ...plan, smtpScope: 'group:Senders', sendAs: true },
    [
      {
        field: 'sendAs',
        message:
          'SendAs is not needed with an SMTP scope: the role assignment lets the app send as every mailbox in the scope',
      },
    ],
  ],
];

describe('Exchange setup plan messages', () => {
  it.each(PLAN)('%s', (_name, input, expected) => {
    const problems = problemsOf(() => parseExchangePlan(input as ExchangePlanInput));
    expect(problems).toEqual(expected);
  });
});
