import { describe, expect, it } from 'vitest';
import { setupConsentUrlCommand } from '../../src/cli/commands/setup-consent-url.js';
import { CLOUDS } from '../../src/config/clouds.js';
import {
  type AdminConsentUrlOptions,
  buildAdminConsentUrl,
  encodeQueryValue,
} from '../../src/setup/consent-url.js';
import { runCommand } from '../helpers/run-command.js';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const CLIENT = 'a3b1c2d4-e5f6-4789-9abc-def012345678';

function build(options: Partial<AdminConsentUrlOptions> = {}): string {
  return buildAdminConsentUrl({
    tenant: TENANT,
    clientId: CLIENT,
    redirectUri: 'https://app.contoso.com/consent',
    ...options,
  });
}

describe('buildAdminConsentUrl', () => {
  it('builds the v2.0 admin-consent URL (known answer)', () => {
    expect(
      build({
        tenant: TENANT.toUpperCase(),
        clientId: CLIENT.toUpperCase(),
        redirectUri: 'https://localhost:8400/consent?x=1&y=2',
        state: 'a b&c=d+e/é#',
      }),
    ).toBe(
      'https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0/adminconsent' +
        '?client_id=a3b1c2d4-e5f6-4789-9abc-def012345678' +
        '&scope=https://outlook.office365.com/.default' +
        '&redirect_uri=https://localhost:8400/consent%3Fx%3D1%26y%3D2' +
        '&state=a%20b%26c%3Dd%2Be/%C3%A9%23',
    );
  });

  it('leaves state out when none is given', () => {
    expect(build()).toBe(
      `https://login.microsoftonline.com/${TENANT}/v2.0/adminconsent?client_id=${CLIENT}` +
        '&scope=https://outlook.office365.com/.default&redirect_uri=https://app.contoso.com/consent',
    );
  });

  it('decodes back to exactly the values given, the redirect URI unnormalised', () => {
    const values = {
      redirectUri: 'https://APP.contoso.com:443/a/../cb?next=/x%2Fy&q=a+b',
      state: '{"page":"/settings?tab=1"} 100% ok ∑',
    };
    const url = new URL(build(values));
    expect(url.searchParams.get('redirect_uri')).toBe(values.redirectUri);
    expect(url.searchParams.get('state')).toBe(values.state);
    expect(url.searchParams.get('client_id')).toBe(CLIENT);
    expect(url.searchParams.get('scope')).toBe('https://outlook.office365.com/.default');
    expect([...url.searchParams.keys()]).toEqual(['client_id', 'scope', 'redirect_uri', 'state']);
    // No trailing slash added, no host lowercased: Entra ID compares the registered URI exactly.
    expect(build({ redirectUri: 'https://App.contoso.com' })).toContain(
      '&redirect_uri=https://App.contoso.com',
    );
  });

  it('takes organizations (multi-tenant) and verified domains as the tenant', () => {
    expect(build({ tenant: 'Organizations' })).toMatch(
      /^https:\/\/login\.microsoftonline\.com\/organizations\/v2\.0\/adminconsent\?/,
    );
    expect(build({ tenant: 'contoso.onmicrosoft.com' })).toContain(
      '.com/contoso.onmicrosoft.com/v2.0/adminconsent?',
    );
    expect(build({ tenant: 'xn--mnchen-3ya.example.de' })).toContain('/xn--mnchen-3ya.example.de/');
  });

  it.each([
    ['usgov-high', 'https://login.microsoftonline.us', 'https://outlook.office365.us/.default'],
    ['usgov-dod', 'https://login.microsoftonline.us', 'https://outlook-dod.office365.us/.default'],
    ['china', 'https://login.partner.microsoftonline.cn', 'https://partner.outlook.cn/.default'],
    ['global', 'https://login.microsoftonline.com', 'https://outlook.office365.com/.default'],
  ] as const)('uses the authority host and Exchange resource of %s', (cloud, host, scope) => {
    expect(CLOUDS[cloud].authorityHost).toBe(host);
    const url = build({ cloud });
    expect(url.startsWith(`${host}/${TENANT}/v2.0/adminconsent?`)).toBe(true);
    expect(new URL(url).searchParams.get('scope')).toBe(scope);
  });

  it.each([
    'http://localhost/cb',
    'http://localhost:8400/consent',
    'http://127.0.0.1:53682/',
    'http://[::1]/cb',
    'https://app.contoso.com/consent',
  ])('accepts the redirect URI %s', (redirectUri) => {
    expect(new URL(build({ redirectUri })).searchParams.get('redirect_uri')).toBe(redirectUri);
  });

  it.each([
    ['', 'is empty'],
    ['http://app.contoso.com/consent', 'uses http'],
    ['http://localhost.contoso.com/cb', 'uses http'],
    ['ftp://app.contoso.com/', 'uses ftp'],
    ['javascript:alert(1)', 'uses javascript'],
    ['app.contoso.com/consent', 'is not an absolute URL'],
    ['/consent', 'is not an absolute URL'],
    ['https://app.contoso.com/consent#done', 'has a fragment'],
    ['https://user:pass@app.contoso.com/', 'user name or password'],
    ['https://app.contoso.com/a b', 'spaces or control characters'],
    ['https://app.contoso.com/\ncb', 'spaces or control characters'],
    [`https://app.contoso.com/${'a'.repeat(240)}`, 'longer than'],
  ])('refuses the redirect URI %j (SETUP_REDIRECT_URI_INVALID)', (redirectUri, message) => {
    expect(() => build({ redirectUri })).toThrow(
      expect.objectContaining({
        code: 'SETUP_REDIRECT_URI_INVALID',
        exitCode: 2,
        message: expect.stringContaining(message),
      }),
    );
  });

  it.each([
    ['common', 'personal Microsoft accounts cannot consent'],
    ['consumers', 'personal Microsoft accounts cannot consent'],
    ['contoso', 'is not a tenant id'],
    ['', 'is not a tenant id'],
    ['contoso.com/../common', 'is not a tenant id'],
    ['72f988bf-86f1-41af-91ab-2d7cd011db4', 'is not a tenant id'],
    ['-contoso.com', 'is not a tenant id'],
  ])('refuses the tenant %j (SETUP_TENANT_INVALID)', (tenant, message) => {
    expect(() => build({ tenant })).toThrow(
      expect.objectContaining({
        code: 'SETUP_TENANT_INVALID',
        exitCode: 2,
        message: expect.stringContaining(message),
      }),
    );
  });

  it.each(['', 'my-app', `${CLIENT}x`, `{${CLIENT}}`, 'a3b1c2d4e5f647899abcdef012345678'])(
    'refuses the client id %j (SETUP_CLIENT_ID_INVALID)',
    (clientId) => {
      expect(() => build({ clientId })).toThrow(
        expect.objectContaining({ code: 'SETUP_CLIENT_ID_INVALID', exitCode: 2 }),
      );
    },
  );

  it('shows control characters in refusals escaped, never raw', () => {
    expect(() => build({ tenant: 'evil\u001b[2J.com' })).toThrow(
      expect.objectContaining({ message: expect.stringContaining('evil\\x1b[2J.com') }),
    );
  });

  it('refuses an unknown cloud', () => {
    expect(() => build({ cloud: 'mars' as never })).toThrow(
      expect.objectContaining({ code: 'SETUP_CLOUD_INVALID' }),
    );
  });
});

describe('encodeQueryValue', () => {
  it.each([
    ['https://outlook.office365.com/.default', 'https://outlook.office365.com/.default'],
    ['a&b=c', 'a%26b%3Dc'],
    ['a+b c', 'a%2Bb%20c'],
    ['100%', '100%25'],
    ['#?', '%23%3F'],
    ['é', '%C3%A9'],
  ])('encodes %j as %s', (value, encoded) => {
    expect(encodeQueryValue(value)).toBe(encoded);
    expect(new URLSearchParams(`v=${encoded}`).get('v')).toBe(value);
  });
});

describe('setup consent-url command', () => {
  it('prints the URL alone on stdout', async () => {
    const run = await runCommand(setupConsentUrlCommand, [
      '--tenant',
      'organizations',
      '--client-id',
      CLIENT,
      '--redirect-uri',
      'https://app.contoso.com/consent',
      '--state',
      'x y',
      '--cloud',
      'china',
    ]);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe(
      `https://login.partner.microsoftonline.cn/organizations/v2.0/adminconsent?client_id=${CLIENT}` +
        '&scope=https://partner.outlook.cn/.default&redirect_uri=https://app.contoso.com/consent&state=x%20y\n',
    );
  });

  it.each([
    [
      ['--client-id', CLIENT, '--redirect-uri', 'https://a.example/cb'],
      'USAGE: --tenant is required',
    ],
    [
      ['--tenant', TENANT, '--redirect-uri', 'https://a.example/cb'],
      'USAGE: --client-id is required',
    ],
    [['--tenant', TENANT, '--client-id', CLIENT], 'USAGE: --redirect-uri is required'],
    [
      ['--tenant', 'common', '--client-id', CLIENT, '--redirect-uri', 'https://a.example/cb'],
      'SETUP_TENANT_INVALID',
    ],
    [
      ['--tenant', TENANT, '--client-id', CLIENT, '--redirect-uri', 'http://a.example/cb'],
      'SETUP_REDIRECT_URI_INVALID',
    ],
  ])('refuses %j with exit 2', async (argv, message) => {
    const run = await runCommand(setupConsentUrlCommand, argv);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(`mailbridge: error ${message}`);
  });
});
