import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLOUDS } from '../../src/config/clouds.js';
import { describeConfig, loadConfig } from '../../src/config/load.js';
import {
  type CertificateFixtures,
  CLIENT_ID,
  CLIENT_SECRET,
  configurationError,
  createCertificateFixtures,
  expectProblem,
  PASSWORD,
  TENANT_ID,
} from './support.js';

let fx: CertificateFixtures;
beforeAll(async () => {
  fx = await createCertificateFixtures();
});
afterAll(() => fx.cleanup());

const baseEnv = {
  AZURE_TENANT_ID: TENANT_ID,
  AZURE_CLIENT_ID: CLIENT_ID,
  AZURE_CLIENT_SECRET: CLIENT_SECRET,
};

async function writeConfig(name: string, content: unknown): Promise<string> {
  const path = join(fx.dir, name);
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

describe('sources', () => {
  it('reads everything from the environment', async () => {
    const config = await loadConfig({ env: baseEnv });
    expect(config.tenantId).toBe(TENANT_ID);
    expect(config.credential.kind).toBe('secret');
  });

  it('reads a JSON file', async () => {
    const file = await writeConfig('all.json', {
      tenantId: TENANT_ID,
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      imap: { port: 1993 },
    });
    const config = await loadConfig({ env: {}, file });
    expect(config.imap).toEqual({ host: 'outlook.office365.com', port: 1993 });
  });

  it('reads a YAML file with job sections', async () => {
    const file = await writeConfig(
      'all.yaml',
      `tenantId: ${TENANT_ID}\nclientId: ${CLIENT_ID}\nclientSecret: "${CLIENT_SECRET}"\nrelay:\n  listen: 127.0.0.1:2525\n`,
    );
    const config = await loadConfig({ env: {}, file });
    expect(config.sections).toEqual({ relay: { listen: '127.0.0.1:2525' } });
  });

  it('resolves a relative certificatePath against the config file directory', async () => {
    await mkdir(join(fx.dir, 'etc/certs'), { recursive: true });
    await copyFile(fx.paths.encrypted, join(fx.dir, 'etc/certs/client.pem'));
    const file = await writeConfig(
      'etc/mailbridge.yaml',
      `tenantId: ${TENANT_ID}\nclientId: ${CLIENT_ID}\ncertificatePath: certs/client.pem\n`,
    );
    const config = await loadConfig({
      env: { AZURE_CLIENT_CERTIFICATE_PASSWORD: PASSWORD },
      file,
    });
    expect(config.credential).toMatchObject({
      kind: 'certificate',
      path: join(fx.dir, 'etc/certs/client.pem'),
    });
  });

  it('resolves a relative federatedTokenFile against the config file directory', async () => {
    await copyFile(fx.paths.tokenFile, join(fx.dir, 'etc/token'));
    const file = await writeConfig('etc/federated.json', {
      tenantId: TENANT_ID,
      clientId: CLIENT_ID,
      federatedTokenFile: './token',
    });
    const config = await loadConfig({ env: {}, file });
    expect(config.credential).toEqual({
      kind: 'federated',
      federatedTokenFile: join(fx.dir, 'etc/token'),
    });
  });

  it('passes file errors on with their own code', async () => {
    const missing = await configurationError(
      loadConfig({ env: baseEnv, file: join(fx.dir, 'nope.yaml') }),
    );
    expect(missing.code).toBe('CONFIG_FILE_UNREADABLE');
    const broken = await configurationError(
      loadConfig({ env: baseEnv, file: await writeConfig('broken.json', '{"a": }') }),
    );
    expect(broken.code).toBe('CONFIG_FILE_INVALID');
  });

  it('refuses an unknown scalar key in the file with a suggestion', async () => {
    const file = await writeConfig('typo.json', { tenantID: TENANT_ID });
    await expectProblem(
      loadConfig({ env: baseEnv, file }),
      'tenantID',
      "Unknown setting 'tenantID' — did you mean 'tenantId'?",
    );
  });
});

describe('precedence: flag > environment > file > defaults', () => {
  let file: string;
  beforeAll(async () => {
    file = await writeConfig('precedence.yaml', {
      tenantId: 'file.example.com',
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      scope: 'api://from-file/.default',
      imap: { host: 'imap.file.test', port: 1001 },
      smtp: { host: 'smtp.file.test', port: 1002 },
    });
  });

  it('file over defaults', async () => {
    const config = await loadConfig({ env: {}, file });
    expect(config.tenantId).toBe('file.example.com');
    expect(config.scope).toBe('api://from-file/.default');
    expect(config.imap).toEqual({ host: 'imap.file.test', port: 1001 });
    expect(config.authorityHost).toBe('https://login.microsoftonline.com');
  });

  it('environment over file, field by field in nested sections', async () => {
    const config = await loadConfig({
      env: { AZURE_TENANT_ID: 'env.example.com', MAILBRIDGE_IMAP_PORT: '2001' },
      file,
    });
    expect(config.tenantId).toBe('env.example.com');
    expect(config.imap).toEqual({ host: 'imap.file.test', port: 2001 });
    expect(config.smtp).toEqual({ host: 'smtp.file.test', port: 1002 });
  });

  it('flags over environment, field by field', async () => {
    const config = await loadConfig({
      env: {
        AZURE_TENANT_ID: 'env.example.com',
        MAILBRIDGE_IMAP_PORT: '2001',
        MAILBRIDGE_IMAP_HOST: 'imap.env.test',
      },
      file,
      overrides: {
        tenantId: 'flag.example.com',
        imap: { port: 3001 },
        scope: undefined,
      },
    });
    expect(config.tenantId).toBe('flag.example.com');
    expect(config.imap).toEqual({ host: 'imap.env.test', port: 3001 });
    expect(config.scope).toBe('api://from-file/.default');
  });

  it('an empty environment value does not hide the file', async () => {
    const config = await loadConfig({ env: { AZURE_TENANT_ID: '' }, file });
    expect(config.tenantId).toBe('file.example.com');
  });

  it('names where each of several credentials came from', async () => {
    const error = await expectProblem(
      loadConfig({
        env: { AZURE_CLIENT_CERTIFICATE_PATH: fx.paths.plain },
        file,
        overrides: { federatedTokenFile: fx.paths.tokenFile },
      }),
      'credential',
      'More than one credential is set',
    );
    expect(error.message).toContain(`clientSecret (from the config file ${file})`);
    expect(error.message).toContain('certificatePath (from AZURE_CLIENT_CERTIFICATE_PATH)');
    expect(error.message).toContain('federatedTokenFile (from a flag or option)');
  });

  it('reports an unusable environment value together with the other problems', async () => {
    const error = await configurationError(
      loadConfig({
        env: { ...baseEnv, MAILBRIDGE_SMTP_PORT: 'submission', MAILBRIDGE_CLOUD: 'x' },
      }),
    );
    expect(error.problems.map((p) => p.field)).toEqual(['smtp.port', 'cloud']);
    expect(error.message).toContain('MAILBRIDGE_SMTP_PORT must be a port number');
    expect(error.message).toContain('cloud (MAILBRIDGE_CLOUD) must be one of');
  });

  it('names the environment variable of a refused value', async () => {
    await expectProblem(
      loadConfig({ env: { ...baseEnv, AZURE_TENANT_ID: 'organizations' } }),
      'tenantId',
      "tenantId (AZURE_TENANT_ID) is 'organizations'",
    );
  });
});

describe('clouds', () => {
  it.each(['usgov-high', 'usgov-dod', 'china'] as const)(
    '%s sets every endpoint',
    async (cloud) => {
      const config = await loadConfig({ env: { ...baseEnv, MAILBRIDGE_CLOUD: cloud } });
      const profile = CLOUDS[cloud];
      expect(config).toMatchObject({
        cloud,
        authorityHost: profile.authorityHost,
        authority: `${profile.authorityHost}/${TENANT_ID}`,
        customAuthorityHost: false,
        scope: profile.scope,
        imap: { host: profile.imapHost, port: 993 },
        smtp: { host: profile.smtpHost, port: 587 },
        warnings: [],
      });
    },
  );

  it('lets each endpoint be overridden one by one', async () => {
    const config = await loadConfig({
      env: { ...baseEnv, MAILBRIDGE_CLOUD: 'usgov-dod', MAILBRIDGE_SMTP_HOST: 'smtp.relay.test' },
      overrides: { imap: { port: 1993 } },
    });
    expect(config.authorityHost).toBe('https://login.microsoftonline.us');
    expect(config.scope).toBe('https://outlook-dod.office365.us/.default');
    expect(config.imap).toEqual({ host: 'outlook-dod.office365.us', port: 1993 });
    expect(config.smtp).toEqual({ host: 'smtp.relay.test', port: 587 });
  });

  it('reads the POP host for the proxy: the IMAP host of the cloud on 995, or pop: / MAILBRIDGE_POP_*', async () => {
    expect((await loadConfig({ env: baseEnv })).pop).toEqual({
      host: 'outlook.office365.com',
      port: 995,
    });
    const config = await loadConfig({
      env: { ...baseEnv, MAILBRIDGE_CLOUD: 'usgov-dod', MAILBRIDGE_POP_PORT: '1995' },
    });
    expect(config.pop).toEqual({ host: 'outlook-dod.office365.us', port: 1995 });
    const file = await writeConfig('pop.yaml', {
      tenantId: TENANT_ID,
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      pop: { host: 'pop.file.test' },
    });
    const fromFile = await loadConfig({ env: { MAILBRIDGE_POP_HOST: 'pop.env.test' }, file });
    expect(fromFile.pop).toEqual({ host: 'pop.env.test', port: 995 });
    expect(fromFile.sections).toEqual({});
  });

  it('warns when the scope belongs to another cloud', async () => {
    const config = await loadConfig({
      env: { ...baseEnv, MAILBRIDGE_CLOUD: 'china' },
      overrides: { scope: 'https://outlook.office365.com/.default' },
    });
    expect(config.warnings).toEqual([
      expect.stringContaining('is the Exchange resource of the global cloud, but cloud is china'),
    ]);
  });
});

describe('custom authority host', () => {
  it('from a flag, with a port and a trailing slash', async () => {
    const config = await loadConfig({
      env: baseEnv,
      overrides: {
        authorityHost: 'https://127.0.0.1:8443/',
        scope: 'api://mailbridge-test/.default',
        imap: { host: '127.0.0.1', port: 10993 },
        smtp: { host: '127.0.0.1', port: 10587 },
      },
    });
    expect(config).toMatchObject({
      authorityHost: 'https://127.0.0.1:8443',
      authority: `https://127.0.0.1:8443/${TENANT_ID}`,
      customAuthorityHost: true,
      scope: 'api://mailbridge-test/.default',
      imap: { host: '127.0.0.1', port: 10993 },
      smtp: { host: '127.0.0.1', port: 10587 },
    });
  });

  it('from AZURE_AUTHORITY_HOST, refusing http', async () => {
    await expectProblem(
      loadConfig({ env: { ...baseEnv, AZURE_AUTHORITY_HOST: 'http://localhost:8080' } }),
      'authorityHost',
      'authorityHost (AZURE_AUTHORITY_HOST) uses http',
    );
  });
});

describe('describeConfig', () => {
  it('summarises a certificate configuration without secrets', async () => {
    const config = await loadConfig({
      env: { AZURE_TENANT_ID: TENANT_ID, AZURE_CLIENT_ID: CLIENT_ID },
      overrides: { certificatePath: fx.paths.pfx, certificatePassword: PASSWORD },
    });
    const summary = describeConfig(config);
    expect(summary).toEqual({
      tenantId: TENANT_ID,
      clientId: CLIENT_ID,
      cloud: 'global',
      credential: 'certificate',
      certificate: {
        path: fx.paths.pfx,
        subject: 'CN=mailbridge-client',
        thumbprintSha1: expect.stringMatching(/^[0-9A-F]{40}$/),
        thumbprintSha256: expect.stringMatching(/^[0-9A-F]{64}$/),
        notAfter: expect.stringMatching(/^\d{4}-/),
        keyBits: 2048,
        sendCertificateChain: false,
      },
      authority: `https://login.microsoftonline.com/${TENANT_ID}`,
      customAuthorityHost: false,
      scope: 'https://outlook.office365.com/.default',
      imap: 'outlook.office365.com:993',
      smtp: 'smtp.office365.com:587',
      warnings: [],
    });
    const text = JSON.stringify(summary);
    expect(text).not.toContain('PRIVATE KEY');
    expect(text).not.toContain(PASSWORD);
  });

  it('summarises secret and federated configurations', async () => {
    const secret = describeConfig(await loadConfig({ env: baseEnv }));
    expect(secret.credential).toBe('secret');
    expect(JSON.stringify(secret)).not.toContain(CLIENT_SECRET);
    const federated = describeConfig(
      await loadConfig({
        env: {
          AZURE_TENANT_ID: TENANT_ID,
          AZURE_CLIENT_ID: CLIENT_ID,
          AZURE_FEDERATED_TOKEN_FILE: fx.paths.tokenFile,
        },
      }),
    );
    expect(federated).toMatchObject({
      credential: 'federated',
      federatedTokenFile: fx.paths.tokenFile,
    });
  });
});
