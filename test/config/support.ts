/**
 * Certificate files of every shape the config module must read or refuse,
 * written to a temporary directory at test time (no binary fixtures in git).
 */
import { createPrivateKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { ConfigurationError } from '../../src/errors.js';
import {
  encryptPrivateKey,
  generateRsaKeyPair,
  type Issued,
  issueCertificate,
  type KeyPair,
  toPfx,
} from '../helpers/pki.js';

export const TENANT_ID = '72f988bf-86f1-41af-91ab-2d7cd011db47';
export const CLIENT_ID = 'a3b1c2d4-e5f6-4789-9abc-def012345678';
/** Distinctive values that must never appear in messages, logs or serialised configs. */
export const CLIENT_SECRET = 'Zq8~sEcReT.vAlUe-9f3b1c7e2d4a6b8c0d1e3f5a7b9';
export const PASSWORD = 'pAsSwOrD-4e8a6c0b2d-Unique';
export const WRONG_PASSWORD = 'wRoNg-PaSsWoRd-7b3c9d1e';

const DAY = 86_400_000;

export interface CertificateFixtures {
  dir: string;
  key: KeyPair;
  leaf: Issued;
  ca: Issued;
  /** Absolute paths by name. */
  paths: {
    plain: string;
    pkcs1: string;
    encrypted: string;
    legacyEncrypted: string;
    pfx: string;
    pfxNoPassword: string;
    p12: string;
    pfxAsPemNamed: string;
    mismatched: string;
    short: string;
    expired: string;
    expiring: string;
    notYetValid: string;
    ec: string;
    keyOnly: string;
    certificateOnly: string;
    twoKeys: string;
    garbage: string;
    derCertificate: string;
    tokenFile: string;
  };
  cleanup(): Promise<void>;
}

export async function createCertificateFixtures(): Promise<CertificateFixtures> {
  const dir = await mkdtemp(join(tmpdir(), 'mailbridge-config-'));
  const key = generateRsaKeyPair(2048);
  const otherKey = generateRsaKeyPair(2048);
  const shortKey = generateRsaKeyPair(1024);
  const ca = issueCertificate({ commonName: 'mailbridge config test CA', isCa: true });
  const leaf = issueCertificate({ commonName: 'mailbridge-client', keys: key, issuer: ca });
  const now = Date.now();
  const expired = issueCertificate({
    commonName: 'expired',
    keys: key,
    notBefore: new Date(now - 400 * DAY),
    notAfter: new Date(now - DAY),
  });
  const expiring = issueCertificate({
    commonName: 'expiring',
    keys: key,
    notAfter: new Date(now + 10 * DAY),
  });
  const notYetValid = issueCertificate({
    commonName: 'future',
    keys: key,
    notBefore: new Date(now + 5 * DAY),
    notAfter: new Date(now + 400 * DAY),
  });
  const other = issueCertificate({ commonName: 'someone-else', keys: otherKey });
  const short = issueCertificate({ commonName: 'short', keys: shortKey });
  const ecKey = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    .privateKey.export({ type: 'pkcs8', format: 'pem' })
    .toString();
  const pkcs1 = createPrivateKey(key.privateKeyPem)
    .export({ type: 'pkcs1', format: 'pem' })
    .toString();
  const legacyEncrypted = createPrivateKey(key.privateKeyPem)
    .export({ type: 'pkcs1', format: 'pem', cipher: 'aes-256-cbc', passphrase: PASSWORD })
    .toString();

  const files: Record<keyof CertificateFixtures['paths'], string | Buffer> = {
    plain: key.privateKeyPem + leaf.certificatePem + ca.certificatePem,
    pkcs1: pkcs1 + leaf.certificatePem,
    encrypted: encryptPrivateKey(key.privateKeyPem, PASSWORD) + leaf.certificatePem,
    legacyEncrypted: legacyEncrypted + leaf.certificatePem,
    pfx: toPfx(leaf, PASSWORD, [ca.certificatePem]),
    pfxNoPassword: toPfx(leaf, ''),
    p12: toPfx(leaf, PASSWORD),
    pfxAsPemNamed: toPfx(leaf, PASSWORD),
    // The certificate first: the order in the file must not matter.
    mismatched: other.certificatePem + key.privateKeyPem,
    short: short.keys.privateKeyPem + short.certificatePem,
    expired: key.privateKeyPem + expired.certificatePem,
    expiring: key.privateKeyPem + expiring.certificatePem,
    notYetValid: key.privateKeyPem + notYetValid.certificatePem,
    ec: ecKey + leaf.certificatePem,
    keyOnly: key.privateKeyPem,
    certificateOnly: leaf.certificatePem,
    twoKeys: key.privateKeyPem + otherKey.privateKeyPem + leaf.certificatePem,
    garbage: Buffer.from('this is neither PEM nor DER\n'),
    derCertificate: new X509Certificate(leaf.certificatePem).raw,
    tokenFile: 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJl',
  };
  const names: Partial<Record<keyof CertificateFixtures['paths'], string>> = {
    pfx: 'client.pfx',
    pfxNoPassword: 'nopassword.pfx',
    p12: 'client.p12',
    pfxAsPemNamed: 'client-pfx.pem',
    garbage: 'garbage.crt',
    derCertificate: 'client.cer',
    tokenFile: 'azure-identity-token',
  };
  const paths = {} as CertificateFixtures['paths'];
  for (const [name, content] of Object.entries(files) as [keyof typeof files, string | Buffer][]) {
    const path = join(dir, names[name] ?? `${name}.pem`);
    await writeFile(path, content, { mode: 0o600 });
    paths[name] = path;
  }
  return {
    dir,
    key,
    leaf,
    ca,
    paths,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Settings that pass, with a client secret. */
export function validSettings(): {
  tenantId: string;
  clientId: string;
  clientSecret: string;
} {
  return { tenantId: TENANT_ID, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET };
}

/** Awaits a rejection and returns the ConfigurationError. */
export async function configurationError(promise: Promise<unknown>): Promise<ConfigurationError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigurationError);
    return error as ConfigurationError;
  }
  throw new Error('expected a ConfigurationError, but the promise resolved');
}

/**
 * Asserts a `CONFIG_INVALID` error listing a problem for `field` whose message
 * holds `fragment`, and that the error's message lists it too.
 */
export async function expectProblem(
  promise: Promise<unknown>,
  field: string,
  fragment: string | RegExp,
): Promise<ConfigurationError> {
  const error = await configurationError(promise);
  expect(error.code).toBe('CONFIG_INVALID');
  expect(error.exitCode).toBe(2);
  const matching = error.problems.filter(
    (problem) =>
      problem.field === field &&
      (typeof fragment === 'string'
        ? problem.message.includes(fragment)
        : fragment.test(problem.message)),
  );
  expect(matching, `problems: ${JSON.stringify(error.problems, null, 2)}`).not.toHaveLength(0);
  for (const problem of matching) expect(error.message).toContain(problem.message);
  return error;
}
