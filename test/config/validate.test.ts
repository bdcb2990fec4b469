import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Settings } from '../../src/config/types.js';
import { checkAuthorityHost, checkScope, validateSettings } from '../../src/config/validate.js';
import {
  type CertificateFixtures,
  CLIENT_ID,
  CLIENT_SECRET,
  configurationError,
  createCertificateFixtures,
  expectProblem,
  PASSWORD,
  TENANT_ID,
  validSettings,
} from './support.js';

let fx: CertificateFixtures;
beforeAll(async () => {
  fx = await createCertificateFixtures();
});
afterAll(() => fx.cleanup());

/** Raw settings, as a file may hold them: the types are what is being checked. */
type Raw = Record<string, unknown>;
const validate = (settings: Raw) => validateSettings(settings as Settings);
const withSecret = (extra: Raw): Raw => ({ ...validSettings(), ...extra });

describe('a valid configuration', () => {
  it('gets the global defaults', async () => {
    const config = await validate(validSettings());
    expect(config).toMatchObject({
      tenantId: TENANT_ID,
      clientId: CLIENT_ID,
      cloud: 'global',
      authorityHost: 'https://login.microsoftonline.com',
      authority: `https://login.microsoftonline.com/${TENANT_ID}`,
      customAuthorityHost: false,
      scope: 'https://outlook.office365.com/.default',
      imap: { host: 'outlook.office365.com', port: 993 },
      smtp: { host: 'smtp.office365.com', port: 587 },
      warnings: [],
      sections: {},
    });
    expect(config.credential.kind).toBe('secret');
    if (config.credential.kind === 'secret') {
      expect(config.credential.clientSecret.reveal()).toBe(CLIENT_SECRET);
    }
  });

  it('accepts a verified domain as the tenant', async () => {
    const config = await validate(withSecret({ tenantId: 'contoso.onmicrosoft.com' }));
    expect(config.authority).toBe('https://login.microsoftonline.com/contoso.onmicrosoft.com');
  });

  it('keeps object-valued unknown keys as job sections', async () => {
    const relay = { listen: '127.0.0.1:2525', mailbox: 'relay@contoso.com' };
    const config = await validate(withSecret({ relay, archive: { folder: 'Archive' } }));
    expect(config.sections).toEqual({ relay, archive: { folder: 'Archive' } });
  });

  it('builds a federated credential from a callback', async () => {
    const clientAssertion = () => 'jwt';
    const config = await validate({ tenantId: TENANT_ID, clientId: CLIENT_ID, clientAssertion });
    expect(config.credential).toEqual({ kind: 'federated', clientAssertion });
  });

  it('builds a federated credential from a readable token file, without reading its content', async () => {
    const config = await validate({
      tenantId: TENANT_ID,
      clientId: CLIENT_ID,
      federatedTokenFile: fx.paths.tokenFile,
    });
    expect(config.credential).toEqual({
      kind: 'federated',
      federatedTokenFile: fx.paths.tokenFile,
    });
    expect(JSON.stringify(config)).not.toContain('eyJhbGciOiJSUzI1NiJ9');
  });

  it('builds a certificate credential', async () => {
    const config = await validate({
      tenantId: TENANT_ID,
      clientId: CLIENT_ID,
      certificatePath: fx.paths.encrypted,
      certificatePassword: PASSWORD,
      sendCertificateChain: true,
    });
    expect(config.credential).toMatchObject({
      kind: 'certificate',
      path: fx.paths.encrypted,
      keyBits: 2048,
      sendCertificateChain: true,
    });
  });

  it('puts a certificate expiry warning in config.warnings', async () => {
    const config = await validate({
      tenantId: TENANT_ID,
      clientId: CLIENT_ID,
      certificatePath: fx.paths.expiring,
    });
    expect(config.warnings).toHaveLength(1);
    expect(config.warnings[0]).toMatch(/expires on \d{4}-\d\d-\d\dT.*in 10 days/);
  });
});

describe('tenant and client', () => {
  it('refuses a missing tenantId, naming the variable', async () => {
    await expectProblem(
      validate({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET }),
      'tenantId',
      'tenantId is missing. Set it (or AZURE_TENANT_ID)',
    );
  });

  it('refuses a missing clientId, naming the variable', async () => {
    await expectProblem(
      validate({ tenantId: TENANT_ID, clientSecret: CLIENT_SECRET }),
      'clientId',
      'clientId is missing. Set it (or AZURE_CLIENT_ID)',
    );
  });

  it.each(['common', 'organizations', 'Consumers'])('refuses the %s tenant', async (tenantId) => {
    await expectProblem(
      validate(withSecret({ tenantId })),
      'tenantId',
      `is '${tenantId.toLowerCase()}', which cannot be used for app-only tokens`,
    );
  });

  it('refuses a tenant that is neither a GUID nor a domain, suggesting the onmicrosoft.com name', async () => {
    await expectProblem(
      validate(withSecret({ tenantId: 'contoso' })),
      'tenantId',
      'neither a GUID nor a domain name (did you mean contoso.onmicrosoft.com?)',
    );
    await expectProblem(
      validate(withSecret({ tenantId: 'https://login.microsoftonline.com/x' })),
      'tenantId',
      'neither a GUID nor a domain name.',
    );
  });

  it('refuses a clientId that is not a GUID, without quoting it', async () => {
    const error = await expectProblem(
      validate(withSecret({ clientId: 'my-mail-app' })),
      'clientId',
      'is not a GUID',
    );
    expect(error.message).not.toContain('my-mail-app');
  });

  it('refuses a tenantId that is not a string', async () => {
    await expectProblem(validate(withSecret({ tenantId: 12345 })), 'tenantId', 'must be a string');
  });
});

describe('credentials', () => {
  it('refuses zero credentials, listing the choices', async () => {
    const error = await expectProblem(
      validate({ tenantId: TENANT_ID, clientId: CLIENT_ID }),
      'credential',
      'No credential is set',
    );
    expect(error.message).toContain('clientSecret (AZURE_CLIENT_SECRET)');
    expect(error.message).toContain('certificatePath (AZURE_CLIENT_CERTIFICATE_PATH)');
    expect(error.message).toContain('federatedTokenFile (AZURE_FEDERATED_TOKEN_FILE)');
  });

  it('refuses more than one credential, naming those found', async () => {
    const error = await expectProblem(
      validate(withSecret({ certificatePath: fx.paths.plain, clientAssertion: () => 'jwt' })),
      'credential',
      'More than one credential is set: clientSecret, certificatePath, clientAssertion.',
    );
    expect(error.message).not.toContain('federatedTokenFile,');
  });

  it('refuses certificatePassword without certificatePath', async () => {
    await expectProblem(
      validate(withSecret({ certificatePassword: PASSWORD })),
      'certificatePassword',
      'is set but certificatePath is not',
    );
  });

  it('refuses an empty clientSecret', async () => {
    await expectProblem(validate(withSecret({ clientSecret: '' })), 'clientSecret', 'is empty');
  });

  it('refuses a clientAssertion that is not a function', async () => {
    await expectProblem(
      validate({ tenantId: TENANT_ID, clientId: CLIENT_ID, clientAssertion: 'eyJ.x.y' }),
      'clientAssertion',
      'use federatedTokenFile',
    );
  });

  it('refuses a federated token file that does not exist', async () => {
    const path = join(fx.dir, 'no-token');
    await expectProblem(
      validate({ tenantId: TENANT_ID, clientId: CLIENT_ID, federatedTokenFile: path }),
      'federatedTokenFile',
      `${path} cannot be read: no such file`,
    );
  });

  it('refuses a federated token file that is a directory', async () => {
    await expectProblem(
      validate({ tenantId: TENANT_ID, clientId: CLIENT_ID, federatedTokenFile: fx.dir }),
      'federatedTokenFile',
      'it is not a regular file',
    );
  });

  it('refuses sendCertificateChain that is not a boolean', async () => {
    await expectProblem(
      validate(withSecret({ sendCertificateChain: 'always' })),
      'sendCertificateChain',
      'must be true or false',
    );
  });

  it('warns when sendCertificateChain is set without a certificate', async () => {
    const config = await validate(withSecret({ sendCertificateChain: true }));
    expect(config.warnings).toEqual([expect.stringContaining('sendCertificateChain is set but')]);
  });

  it.each([
    ['mismatched', 'belongs to its private key'],
    ['short', 'has 1024 bits'],
    ['expired', 'expired on'],
    ['ec', 'needs an RSA key'],
  ] as const)('reports a %s certificate as a certificatePath problem', async (name, fragment) => {
    await expectProblem(
      validate({ tenantId: TENANT_ID, clientId: CLIENT_ID, certificatePath: fx.paths[name] }),
      'certificatePath',
      fragment,
    );
  });

  it('reports a wrong certificate password as a certificatePassword problem', async () => {
    await expectProblem(
      validate({
        tenantId: TENANT_ID,
        clientId: CLIENT_ID,
        certificatePath: fx.paths.pfx,
        certificatePassword: 'not-it',
      }),
      'certificatePassword',
      'it is wrong',
    );
  });
});

describe('scope', () => {
  it('accepts another resource /.default', async () => {
    const config = await validate(withSecret({ scope: 'api://mailbridge-test/.default' }));
    expect(config.scope).toBe('api://mailbridge-test/.default');
  });

  it.each([
    'https://graph.microsoft.com/.default',
    'https://graph.microsoft.com//.default',
    'https://graph.microsoft.com',
    'https://graph.microsoft.com/',
    'https://graph.microsoft.com/Mail.Read',
    'https://graph.microsoft.us/.default',
    'https://dod-graph.microsoft.us/.default',
    'https://microsoftgraph.chinacloudapi.cn/.default',
    'https://graph.windows.net/.default',
    '00000003-0000-0000-c000-000000000000/.default',
    'HTTPS://GRAPH.MICROSOFT.COM/.default',
  ])('refuses the Graph scope %s', async (scope) => {
    await expectProblem(
      validate(withSecret({ scope })),
      'scope',
      'is a Microsoft Graph scope, and IMAP and SMTP refuse Graph tokens. Use the Exchange Online scope, e.g. https://outlook.office365.com/.default',
    );
  });

  it.each([
    'https://outlook.office.com/IMAP.AccessAsUser.All',
    'https://outlook.office.com/SMTP.Send',
    'IMAP.AccessAsUser.All',
    'offline_access',
  ])('refuses the delegated scope %s', async (scope) => {
    await expectProblem(
      validate(withSecret({ scope })),
      'scope',
      'is a delegated permission, which app-only tokens cannot carry',
    );
  });

  it('refuses a resource without /.default, saying what to write', async () => {
    await expectProblem(
      validate(withSecret({ scope: 'https://outlook.office365.com/' })),
      'scope',
      'lacks /.default: use https://outlook.office365.com/.default',
    );
  });

  it.each([
    'https://outlook.office365.com/.default offline_access',
    'https://outlook.office365.com/.default,https://outlook.office.com/.default',
  ])('refuses several scopes (%s)', async (scope) => {
    await expectProblem(validate(withSecret({ scope })), 'scope', 'holds 2 scopes');
  });

  it('refuses an empty scope', async () => {
    await expectProblem(validate(withSecret({ scope: '' })), 'scope', 'is empty');
  });

  it('warns when the scope is the Exchange resource of another cloud', async () => {
    const config = await validate(withSecret({ scope: 'https://outlook.office365.us/.default' }));
    expect(config.warnings).toEqual([
      expect.stringContaining(
        'is the Exchange resource of the usgov-high cloud, but cloud is global',
      ),
    ]);
  });

  it('does not warn for the global cloud older Exchange name', () => {
    expect(checkScope('https://outlook.office.com/.default', 'global')).toEqual({});
    expect(checkScope('https://outlook.office365.us/.default', 'usgov-high')).toEqual({});
  });
});

describe('authority host', () => {
  it('refuses http, pointing at NODE_EXTRA_CA_CERTS', async () => {
    const error = await expectProblem(
      validate(withSecret({ authorityHost: 'http://127.0.0.1:8443' })),
      'authorityHost',
      'TLS verification is never switched off',
    );
    expect(error.message).toContain('NODE_EXTRA_CA_CERTS');
  });

  it.each([
    ['login.microsoftonline.us', 'must be a URL starting with https://'],
    ['ftp://login.example', 'must use https'],
    ['https://login.microsoftonline.com/common', 'no path. The tenant goes in tenantId'],
    ['https://login.example/?x=1', 'no query or fragment'],
    ['https://user:pw@login.example', 'must not carry a user name or password'],
    ['https://', 'is not a valid URL'],
  ])('refuses %s', async (authorityHost, fragment) => {
    await expectProblem(validate(withSecret({ authorityHost })), 'authorityHost', fragment);
  });

  it('normalises a trailing slash and keeps a port', () => {
    expect(checkAuthorityHost('https://127.0.0.1:8443/')).toEqual({
      authorityHost: 'https://127.0.0.1:8443',
    });
    expect(checkAuthorityHost('https://LOGIN.microsoftonline.us:443/')).toEqual({
      authorityHost: 'https://login.microsoftonline.us',
    });
  });

  it('marks hosts outside the built-in list as custom', async () => {
    const custom = await validate(withSecret({ authorityHost: 'https://localhost:8443/' }));
    expect(custom.authorityHost).toBe('https://localhost:8443');
    expect(custom.authority).toBe(`https://localhost:8443/${TENANT_ID}`);
    expect(custom.customAuthorityHost).toBe(true);
    const builtIn = await validate(
      withSecret({ authorityHost: 'https://login.partner.microsoftonline.cn' }),
    );
    expect(builtIn.customAuthorityHost).toBe(false);
  });
});

describe('cloud, hosts and ports', () => {
  it('refuses an unknown cloud, listing the four', async () => {
    await expectProblem(
      validate(withSecret({ cloud: 'usgov' })),
      'cloud',
      'must be one of global, usgov-high, usgov-dod, china.',
    );
    await expectProblem(
      validate(withSecret({ cloud: 'gcc' })),
      'cloud',
      'GCC (moderate) tenants use the global cloud',
    );
  });

  it.each([0, 65536, 99.5, -1, 'abc', '1e3'])('refuses the port %j', async (port) => {
    await expectProblem(
      validate(withSecret({ imap: { port } as never })),
      'imap.port',
      'must be a whole number from 1 to 65535',
    );
  });

  it('accepts a port written as a string', async () => {
    const config = await validate(withSecret({ smtp: { port: '2525' } as never }));
    expect(config.smtp.port).toBe(2525);
  });

  it.each([
    ['', 'is empty'],
    ['  ', 'is empty'],
    ['imaps://outlook.office365.com', 'must be a host name only'],
    ['outlook.office365.com:993', 'the port goes in smtp.port'],
  ])('refuses the host %j', async (host, fragment) => {
    await expectProblem(validate(withSecret({ smtp: { host } })), 'smtp.host', fragment);
  });

  it('accepts an IPv6 literal host', async () => {
    expect((await validate(withSecret({ imap: { host: '::1' } }))).imap.host).toBe('::1');
  });

  it('refuses imap that is not a mapping', async () => {
    await expectProblem(
      validate(withSecret({ imap: 'outlook.office365.com' })),
      'imap',
      'must be a mapping',
    );
  });

  it('refuses unknown keys inside imap/smtp', async () => {
    await expectProblem(
      validate(withSecret({ smtp: { hots: 'x' } as never })),
      'smtp.hots',
      "did you mean 'smtp.host'?",
    );
  });
});

describe('unknown settings', () => {
  it.each([
    ['tenantID', "Unknown setting 'tenantID' — did you mean 'tenantId'?"],
    ['client_secret', "did you mean 'clientSecret'?"],
    ['certificatPath', "did you mean 'certificatePath'?"],
    ['tenatnId', "did you mean 'tenantId'?"],
    [
      'AZURE_CLIENT_ID',
      "that is an environment variable's name; in the config file write 'clientId'",
    ],
    ['verbose', "Unknown setting 'verbose'. Known settings: tenantId,"],
  ])('refuses %s', async (key, fragment) => {
    await expectProblem(validate(withSecret({ [key]: 'x' })), key, fragment);
  });

  it('refuses a section named like imap/smtp', async () => {
    await expectProblem(
      validate(withSecret({ IMAP: { port: 1 } })),
      'IMAP',
      "did you mean 'imap'?",
    );
  });
});

describe('one error for every problem', () => {
  it('collects every problem into one CONFIG_INVALID error', async () => {
    const error = await configurationError(
      validate({
        tenantId: 'common',
        clientId: 'nope',
        clientSecret: CLIENT_SECRET,
        certificatePath: fx.paths.expired,
        scope: 'https://graph.microsoft.com/.default',
        authorityHost: 'http://login.example',
        cloud: 'mars',
        imap: { port: 0 },
        smtp: { host: '' },
        tenantID: 'x',
      }),
    );
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.problems.map((p) => p.field).sort()).toEqual(
      [
        'tenantID',
        'tenantId',
        'clientId',
        'credential',
        'cloud',
        'authorityHost',
        'scope',
        'imap.port',
        'smtp.host',
        'certificatePath',
      ].sort(),
    );
    expect(error.message).toMatch(/^The configuration is not valid:\n/);
    expect(error.message).toContain('\n10 problems. Fix each setting where it is set');
    for (const problem of error.problems) {
      expect(error.message).toContain(`  - ${problem.field}: ${problem.message}`);
    }
    expect(error.toJSON()).toMatchObject({ code: 'CONFIG_INVALID', exitCode: 2 });
  });

  it('prepends problems found earlier', async () => {
    const error = await configurationError(
      validateSettings(validSettings(), {
        problems: [{ field: 'imap.port', message: 'MAILBRIDGE_IMAP_PORT must be a port number.' }],
      }),
    );
    expect(error.problems).toEqual([
      { field: 'imap.port', message: 'MAILBRIDGE_IMAP_PORT must be a port number.' },
    ]);
  });
});
