import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  ENVIRONMENT_VARIABLES,
  environmentVariableFor,
  environmentVariablesFound,
  readEnvironment,
  readNetworkEnvironment,
} from '../../src/config/env.js';
import { SETTING_KEYS } from '../../src/config/validate.js';
import { CLIENT_SECRET, PASSWORD } from './support.js';

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('ENVIRONMENT_VARIABLES', () => {
  it('lists every variable once, each for a known setting, with a description', () => {
    const names = ENVIRONMENT_VARIABLES.map((v) => v.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toEqual([
      'AZURE_TENANT_ID',
      'AZURE_CLIENT_ID',
      'AZURE_CLIENT_SECRET',
      'AZURE_CLIENT_CERTIFICATE_PATH',
      'AZURE_CLIENT_CERTIFICATE_PASSWORD',
      'AZURE_CLIENT_SEND_CERTIFICATE_CHAIN',
      'AZURE_FEDERATED_TOKEN_FILE',
      'MAILBRIDGE_CREDENTIAL',
      'AZURE_AUTHORITY_HOST',
      'MAILBRIDGE_CLOUD',
      'MAILBRIDGE_SCOPE',
      'MAILBRIDGE_IMAP_HOST',
      'MAILBRIDGE_IMAP_PORT',
      'MAILBRIDGE_SMTP_HOST',
      'MAILBRIDGE_SMTP_PORT',
      'MAILBRIDGE_POP_HOST',
      'MAILBRIDGE_POP_PORT',
      'MAILBRIDGE_CA_FILE',
    ]);
    for (const variable of ENVIRONMENT_VARIABLES) {
      expect(SETTING_KEYS as readonly string[]).toContain(variable.setting.split('.')[0]);
      expect(variable.description.length).toBeGreaterThan(5);
    }
  });

  it('maps settings back to their variable', () => {
    expect(environmentVariableFor('tenantId')).toBe('AZURE_TENANT_ID');
    expect(environmentVariableFor('smtp.port')).toBe('MAILBRIDGE_SMTP_PORT');
    expect(environmentVariableFor('clientAssertion')).toBeUndefined();
  });
});

describe('readEnvironment', () => {
  it('reads every variable into the settings shape', () => {
    const { settings, problems, origins } = readEnvironment({
      AZURE_TENANT_ID: ' contoso.onmicrosoft.com ',
      AZURE_CLIENT_ID: 'a3b1c2d4-e5f6-4789-9abc-def012345678',
      AZURE_CLIENT_SECRET: CLIENT_SECRET,
      AZURE_CLIENT_CERTIFICATE_PATH: '/etc/mailbridge/client.pem',
      AZURE_CLIENT_CERTIFICATE_PASSWORD: PASSWORD,
      AZURE_CLIENT_SEND_CERTIFICATE_CHAIN: 'TRUE',
      AZURE_FEDERATED_TOKEN_FILE: '/var/run/secrets/token',
      AZURE_AUTHORITY_HOST: 'https://login.microsoftonline.us',
      MAILBRIDGE_CLOUD: 'usgov-high',
      MAILBRIDGE_SCOPE: 'https://outlook.office365.us/.default',
      MAILBRIDGE_IMAP_HOST: 'imap.example.test',
      MAILBRIDGE_IMAP_PORT: '1993',
      MAILBRIDGE_SMTP_HOST: 'smtp.example.test',
      MAILBRIDGE_SMTP_PORT: '2587',
      UNRELATED: 'x',
    });
    expect(problems).toEqual([]);
    expect(settings).toEqual({
      tenantId: 'contoso.onmicrosoft.com',
      clientId: 'a3b1c2d4-e5f6-4789-9abc-def012345678',
      clientSecret: CLIENT_SECRET,
      certificatePath: '/etc/mailbridge/client.pem',
      certificatePassword: PASSWORD,
      sendCertificateChain: true,
      federatedTokenFile: '/var/run/secrets/token',
      authorityHost: 'https://login.microsoftonline.us',
      cloud: 'usgov-high',
      scope: 'https://outlook.office365.us/.default',
      imap: { host: 'imap.example.test', port: 1993 },
      smtp: { host: 'smtp.example.test', port: 2587 },
    });
    expect(origins.get('imap.port')).toBe('MAILBRIDGE_IMAP_PORT');
    expect(origins.get('clientSecret')).toBe('AZURE_CLIENT_SECRET');
  });

  it('keeps secrets exactly as given (no trimming)', () => {
    const { settings } = readEnvironment({ AZURE_CLIENT_SECRET: ` ${CLIENT_SECRET} ` });
    expect(settings.clientSecret).toBe(` ${CLIENT_SECRET} `);
  });

  it('treats empty and blank values as unset', () => {
    const env = { AZURE_TENANT_ID: '', AZURE_CLIENT_SECRET: '', MAILBRIDGE_IMAP_PORT: '  ' };
    expect(readEnvironment(env)).toEqual({ settings: {}, problems: [], origins: new Map() });
    expect(environmentVariablesFound(env)).toEqual([]);
  });

  it.each(['0', '1', 'true', 'false', 'False'])('accepts %s as a flag', (value) => {
    const { settings, problems } = readEnvironment({ AZURE_CLIENT_SEND_CERTIFICATE_CHAIN: value });
    expect(problems).toEqual([]);
    expect(settings.sendCertificateChain).toBe(value === '1' || value.toLowerCase() === 'true');
  });

  it('refuses a flag that is not true/false/1/0, naming the variable', () => {
    const { settings, problems } = readEnvironment({ AZURE_CLIENT_SEND_CERTIFICATE_CHAIN: 'yes' });
    expect(settings).toEqual({});
    expect(problems).toEqual([
      {
        field: 'sendCertificateChain',
        message: 'AZURE_CLIENT_SEND_CERTIFICATE_CHAIN must be true, false, 1 or 0.',
      },
    ]);
  });

  it.each(['0', '65536', 'abc', '99.5', '-1'])('refuses port %s, naming the variable', (port) => {
    const { settings, problems } = readEnvironment({ MAILBRIDGE_SMTP_PORT: port });
    expect(settings).toEqual({});
    expect(problems).toEqual([
      {
        field: 'smtp.port',
        message: 'MAILBRIDGE_SMTP_PORT must be a port number from 1 to 65535.',
      },
    ]);
  });

  it('reads process.env only when called without an environment', () => {
    vi.stubEnv('AZURE_TENANT_ID', 'fabrikam.example');
    vi.stubEnv('AZURE_CLIENT_SECRET', CLIENT_SECRET);
    expect(readEnvironment().settings.tenantId).toBe('fabrikam.example');
    expect(environmentVariablesFound()).toEqual(
      expect.arrayContaining(['AZURE_TENANT_ID', 'AZURE_CLIENT_SECRET']),
    );
  });
});

describe('readNetworkEnvironment', () => {
  it('takes the https proxy first, lower case before upper case, then HTTP_PROXY', () => {
    expect(
      readNetworkEnvironment({ HTTPS_PROXY: 'http://a:1', https_proxy: 'http://b:2' }).proxy,
    ).toEqual({ variable: 'https_proxy', value: 'http://b:2' });
    expect(readNetworkEnvironment({ HTTP_PROXY: ' http://c:3 ' }).proxy).toEqual({
      variable: 'HTTP_PROXY',
      value: 'http://c:3',
    });
    expect(readNetworkEnvironment({ HTTPS_PROXY: ' ' }).proxy).toBeUndefined();
  });

  it('splits NO_PROXY at commas and spaces, and keeps NODE_EXTRA_CA_CERTS', () => {
    expect(
      readNetworkEnvironment({
        NO_PROXY: 'a.example, .b.example  c:443',
        NODE_EXTRA_CA_CERTS: '/x',
      }),
    ).toEqual({ noProxy: ['a.example', '.b.example', 'c:443'], nodeExtraCaCerts: '/x' });
  });
});

describe('environmentVariablesFound', () => {
  it('returns names only, never values', () => {
    const found = environmentVariablesFound({
      AZURE_CLIENT_SECRET: CLIENT_SECRET,
      AZURE_CLIENT_CERTIFICATE_PASSWORD: PASSWORD,
      MAILBRIDGE_CLOUD: 'china',
      AZURE_TENANT_ID: '',
    });
    expect(found).toEqual([
      'AZURE_CLIENT_SECRET',
      'AZURE_CLIENT_CERTIFICATE_PASSWORD',
      'MAILBRIDGE_CLOUD',
    ]);
    expect(JSON.stringify(found)).not.toContain(CLIENT_SECRET);
    expect(JSON.stringify(found)).not.toContain(PASSWORD);
  });
});
