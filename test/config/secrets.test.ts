/**
 * The only real guard against a secret in a message is to look for it: every
 * path below loads a configuration holding distinctive secret and password
 * values and searches everything a caller could print.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeConfig, type LoadConfigOptions, loadConfig } from '../../src/config/load.js';
import { encryptPrivateKey } from '../helpers/pki.js';
import {
  type CertificateFixtures,
  CLIENT_ID,
  CLIENT_SECRET,
  configurationError,
  createCertificateFixtures,
  PASSWORD,
  TENANT_ID,
} from './support.js';

let fx: CertificateFixtures;
beforeAll(async () => {
  fx = await createCertificateFixtures();
});
afterAll(() => fx.cleanup());

const SECRETS = [CLIENT_SECRET, PASSWORD];

function expectNoSecret(text: string): void {
  for (const secret of SECRETS) {
    expect(text).not.toContain(secret);
    // Not even a recognisable part of it.
    expect(text).not.toContain(secret.slice(0, 10));
    expect(text).not.toContain(secret.slice(-10));
  }
}

async function file(name: string, content: string): Promise<string> {
  const path = join(fx.dir, name);
  await writeFile(path, content);
  return path;
}

const ids = { AZURE_TENANT_ID: TENANT_ID, AZURE_CLIENT_ID: CLIENT_ID };

describe('failing configurations never show a secret or password', () => {
  const cases: [string, () => Promise<LoadConfigOptions>][] = [
    [
      'secret with other problems',
      async () => ({
        env: { ...ids, AZURE_TENANT_ID: 'common', AZURE_CLIENT_SECRET: CLIENT_SECRET },
      }),
    ],
    [
      'secret and a certificate with its password',
      async () => ({
        env: {
          ...ids,
          AZURE_CLIENT_SECRET: CLIENT_SECRET,
          AZURE_CLIENT_CERTIFICATE_PATH: fx.paths.encrypted,
          AZURE_CLIENT_CERTIFICATE_PASSWORD: PASSWORD,
        },
      }),
    ],
    [
      'a wrong PEM password',
      async () => ({
        env: ids,
        overrides: {
          certificatePath: await file(
            'other-password.pem',
            encryptPrivateKey(fx.key.privateKeyPem, 'another-password') + fx.leaf.certificatePem,
          ),
          certificatePassword: PASSWORD,
        },
      }),
    ],
    [
      'a wrong PFX password',
      async () => ({
        env: ids,
        overrides: { certificatePath: fx.paths.pfxNoPassword, certificatePassword: PASSWORD },
      }),
    ],
    [
      'a password without a certificate',
      async () => ({
        env: {
          ...ids,
          AZURE_CLIENT_SECRET: CLIENT_SECRET,
          AZURE_CLIENT_CERTIFICATE_PASSWORD: PASSWORD,
        },
      }),
    ],
    [
      'a password for an expired certificate',
      async () => ({
        env: ids,
        overrides: { certificatePath: fx.paths.expired, certificatePassword: PASSWORD },
      }),
    ],
    [
      'a secret pasted into clientId and tenantId',
      async () => ({ env: { AZURE_TENANT_ID: CLIENT_SECRET, AZURE_CLIENT_ID: PASSWORD } }),
    ],
    [
      'a secret under a misspelt key',
      async () => ({
        env: ids,
        overrides: { client_secret: CLIENT_SECRET, certPassword: PASSWORD },
      }),
    ],
    [
      'a secret pasted into scope',
      async () => ({ env: { ...ids, AZURE_CLIENT_SECRET: 'x', MAILBRIDGE_SCOPE: CLIENT_SECRET } }),
    ],
    [
      'a secret of the wrong type',
      async () => ({ env: ids, overrides: { clientSecret: [CLIENT_SECRET] as never } }),
    ],
    [
      'a secret in an invalid JSON file',
      async () => ({
        env: ids,
        file: await file(
          'broken.json',
          `{\n "clientSecret": ${CLIENT_SECRET},\n "x": "${PASSWORD}"`,
        ),
      }),
    ],
    [
      'a secret in an invalid YAML file',
      async () => ({
        env: ids,
        file: await file('broken.yaml', `clientSecret: ${CLIENT_SECRET}: ${PASSWORD}\n`),
      }),
    ],
    [
      'a secret in a YAML file with a bad escape',
      async () => ({
        env: ids,
        file: await file('escape.yaml', `clientSecret: "${CLIENT_SECRET}\\q"\n`),
      }),
    ],
    [
      'a secret in a file that is not a mapping',
      async () => ({
        env: ids,
        file: await file('list.yaml', `- ${CLIENT_SECRET}\n- ${PASSWORD}\n`),
      }),
    ],
  ];

  it.each(cases)('%s', async (_name, options) => {
    const error = await configurationError(loadConfig(await options()));
    expectNoSecret(error.message);
    expectNoSecret(error.remedy);
    expectNoSecret(JSON.stringify(error));
    expectNoSecret(JSON.stringify(error.problems));
    expectNoSecret(inspect(error, { depth: 10 }));
    expectNoSecret(String(error));
  });
});

describe('succeeding configurations never show a secret or password', () => {
  const cases: [string, () => LoadConfigOptions][] = [
    ['a client secret', () => ({ env: { ...ids, AZURE_CLIENT_SECRET: CLIENT_SECRET } })],
    [
      'an encrypted PEM key',
      () => ({
        env: {
          ...ids,
          AZURE_CLIENT_CERTIFICATE_PATH: fx.paths.encrypted,
          AZURE_CLIENT_CERTIFICATE_PASSWORD: PASSWORD,
        },
      }),
    ],
    [
      'a PFX',
      () => ({
        env: ids,
        overrides: { certificatePath: fx.paths.pfx, certificatePassword: PASSWORD },
      }),
    ],
    [
      'a certificate expiring soon, with a password given',
      () => ({
        env: ids,
        overrides: { certificatePath: fx.paths.expiring, certificatePassword: PASSWORD },
      }),
    ],
  ];

  it.each(cases)('%s', async (_name, options) => {
    const config = await loadConfig(options());
    if (_name.includes('expiring')) expect(config.warnings).toHaveLength(1);
    for (const text of [
      inspect(config, { depth: 10 }),
      JSON.stringify(config),
      `${config.credential.kind === 'secret' ? config.credential.clientSecret : ''}`,
      JSON.stringify(describeConfig(config)),
      config.warnings.join('\n'),
    ]) {
      expectNoSecret(text);
      expect(text).not.toContain('PRIVATE KEY-----');
    }
  });

  it('keeps the secret and the key reachable through reveal()', async () => {
    const config = await loadConfig({ env: { ...ids, AZURE_CLIENT_SECRET: CLIENT_SECRET } });
    expect(config.credential.kind === 'secret' && config.credential.clientSecret.reveal()).toBe(
      CLIENT_SECRET,
    );
  });
});
