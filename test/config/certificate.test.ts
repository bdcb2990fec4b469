import { createPrivateKey, X509Certificate } from 'node:crypto';
import { chmod, copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CertificateResult, loadCertificate } from '../../src/config/certificate.js';
import type { CertificateCredential } from '../../src/config/types.js';
import { certificateThumbprint } from '../helpers/pki.js';
import {
  type CertificateFixtures,
  createCertificateFixtures,
  PASSWORD,
  WRONG_PASSWORD,
} from './support.js';

let fx: CertificateFixtures;
beforeAll(async () => {
  fx = await createCertificateFixtures();
});
afterAll(() => fx.cleanup());

function accepted(result: CertificateResult): {
  credential: CertificateCredential;
  warnings: string[];
} {
  if (!result.ok) throw new Error(`refused: ${JSON.stringify(result.problems)}`);
  return result;
}

function refused(result: CertificateResult, field: string, fragment: string): string {
  expect(result.ok).toBe(false);
  if (result.ok) return '';
  const problem = result.problems.find((p) => p.field === field && p.message.includes(fragment));
  expect(problem, JSON.stringify(result.problems, null, 2)).toBeDefined();
  return problem?.message ?? '';
}

function expectUsableKey(credential: CertificateCredential): void {
  const pem = credential.privateKey.reveal();
  expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
  const key = createPrivateKey(pem);
  expect(key.asymmetricKeyType).toBe('rsa');
  expect(new X509Certificate(credential.certificatePem).checkPrivateKey(key)).toBe(true);
}

describe('PEM files', () => {
  it('reads a PKCS#8 key with its certificate and chain', async () => {
    const { credential, warnings } = accepted(await loadCertificate({ path: fx.paths.plain }));
    expectUsableKey(credential);
    expect(warnings).toEqual([]);
    expect(credential.kind).toBe('certificate');
    expect(credential.path).toBe(fx.paths.plain);
    expect(credential.keyBits).toBe(2048);
    expect(credential.subject).toBe('CN=mailbridge-client');
    expect(credential.thumbprintSha256).toBe(
      certificateThumbprint(fx.leaf.certificatePem, 'sha256'),
    );
    expect(credential.thumbprintSha1).toBe(certificateThumbprint(fx.leaf.certificatePem, 'sha1'));
    expect(credential.thumbprintSha256).toMatch(/^[0-9A-F]{64}$/);
    expect(credential.thumbprintSha1).toMatch(/^[0-9A-F]{40}$/);
    expect(credential.chainPem).toHaveLength(2);
    expect(new X509Certificate(credential.chainPem[0] ?? '').subject).toBe('CN=mailbridge-client');
    expect(new X509Certificate(credential.chainPem[1] ?? '').subject).toBe(
      'CN=mailbridge config test CA',
    );
    expect(credential.notBefore.getTime()).toBeLessThan(Date.now());
    expect(credential.notAfter.getTime()).toBeGreaterThan(Date.now() + 300 * 86_400_000);
    expect(credential.sendCertificateChain).toBe(false);
  });

  it('reads a PKCS#1 (RSA PRIVATE KEY) key and outputs PKCS#8', async () => {
    const { credential } = accepted(
      await loadCertificate({ path: fx.paths.pkcs1, sendCertificateChain: true }),
    );
    expectUsableKey(credential);
    expect(credential.chainPem).toHaveLength(1);
    expect(credential.sendCertificateChain).toBe(true);
  });

  it('finds the leaf by its key whatever the order in the file', async () => {
    // plain.pem holds key, leaf, CA; the CA does not match the key, the leaf does.
    const { credential } = accepted(await loadCertificate({ path: fx.paths.plain }));
    expect(credential.certificatePem).toBe(new X509Certificate(fx.leaf.certificatePem).toString());
  });

  it('decrypts an ENCRYPTED PRIVATE KEY with the right password', async () => {
    const { credential } = accepted(
      await loadCertificate({ path: fx.paths.encrypted, password: PASSWORD }),
    );
    expectUsableKey(credential);
    expect(credential.privateKey.reveal()).not.toContain('ENCRYPTED');
  });

  it('decrypts a legacy Proc-Type: 4,ENCRYPTED key with the right password', async () => {
    const { credential } = accepted(
      await loadCertificate({ path: fx.paths.legacyEncrypted, password: PASSWORD }),
    );
    expectUsableKey(credential);
  });

  it('refuses an encrypted key with a wrong password, without echoing it', async () => {
    for (const path of [fx.paths.encrypted, fx.paths.legacyEncrypted]) {
      const message = refused(
        await loadCertificate({ path, password: WRONG_PASSWORD }),
        'certificatePassword',
        'does not decrypt the private key',
      );
      expect(message).toContain('it is wrong');
      expect(message).not.toContain(WRONG_PASSWORD);
    }
  });

  it('refuses an encrypted key without a password, naming the setting', async () => {
    const message = refused(
      await loadCertificate({ path: fx.paths.encrypted }),
      'certificatePassword',
      'is encrypted',
    );
    expect(message).toContain('AZURE_CLIENT_CERTIFICATE_PASSWORD');
  });

  it('ignores a password given for an unencrypted key', async () => {
    accepted(await loadCertificate({ path: fx.paths.plain, password: PASSWORD }));
  });
});

describe('PFX/P12 files', () => {
  it('reads a PFX with the right password, with its chain', async () => {
    const { credential } = accepted(
      await loadCertificate({ path: fx.paths.pfx, password: PASSWORD }),
    );
    expectUsableKey(credential);
    expect(credential.thumbprintSha256).toBe(certificateThumbprint(fx.leaf.certificatePem));
    expect(credential.chainPem).toHaveLength(2);
    expect(new X509Certificate(credential.chainPem[0] ?? '').subject).toBe('CN=mailbridge-client');
    expect(new X509Certificate(credential.chainPem[1] ?? '').subject).toBe(
      'CN=mailbridge config test CA',
    );
  });

  it('reads a .p12 file', async () => {
    expectUsableKey(
      accepted(await loadCertificate({ path: fx.paths.p12, password: PASSWORD })).credential,
    );
  });

  it('reads a PFX exported with an empty password when none is given', async () => {
    expectUsableKey(accepted(await loadCertificate({ path: fx.paths.pfxNoPassword })).credential);
  });

  it('detects a PFX by its content whatever its name', async () => {
    expectUsableKey(
      accepted(await loadCertificate({ path: fx.paths.pfxAsPemNamed, password: PASSWORD }))
        .credential,
    );
  });

  it('refuses a PFX with a wrong password, without echoing it', async () => {
    const message = refused(
      await loadCertificate({ path: fx.paths.pfx, password: WRONG_PASSWORD }),
      'certificatePassword',
      'does not open the PFX file',
    );
    expect(message).not.toContain(WRONG_PASSWORD);
  });

  it('refuses a password-protected PFX when no password is given', async () => {
    refused(
      await loadCertificate({ path: fx.paths.pfx }),
      'certificatePassword',
      'is protected by a password',
    );
  });
});

describe('refused certificates', () => {
  it('refuses a missing file', async () => {
    const path = join(fx.dir, 'missing.pem');
    const message = refused(await loadCertificate({ path }), 'certificatePath', 'Cannot read');
    expect(message).toContain(path);
    expect(message).toContain('ENOENT');
  });

  it.skipIf(process.getuid?.() === 0)('refuses an unreadable file', async () => {
    const path = join(fx.dir, 'unreadable.pem');
    await writeFile(path, 'x');
    await chmod(path, 0o000);
    refused(await loadCertificate({ path }), 'certificatePath', 'permission denied');
  });

  it('refuses a directory', async () => {
    refused(await loadCertificate({ path: fx.dir }), 'certificatePath', 'Cannot read');
  });

  it('refuses a PEM file without a private key', async () => {
    refused(
      await loadCertificate({ path: fx.paths.certificateOnly }),
      'certificatePath',
      'holds no private key',
    );
  });

  it('refuses a PEM file without a certificate', async () => {
    refused(
      await loadCertificate({ path: fx.paths.keyOnly }),
      'certificatePath',
      'holds no certificate',
    );
  });

  it('refuses a PEM file with two private keys', async () => {
    refused(await loadCertificate({ path: fx.paths.twoKeys }), 'certificatePath', '2 private keys');
  });

  it('refuses a file that is neither PEM nor PFX', async () => {
    refused(
      await loadCertificate({ path: fx.paths.garbage }),
      'certificatePath',
      'neither a PEM file nor a PFX/P12 file',
    );
  });

  it('refuses a DER certificate without its key', async () => {
    refused(
      await loadCertificate({ path: fx.paths.derCertificate }),
      'certificatePath',
      'a DER certificate alone has no private key',
    );
  });

  it('reads a PEM file named .pfx', async () => {
    const path = join(fx.dir, 'really-pem.pfx');
    await copyFile(fx.paths.plain, path);
    expectUsableKey(accepted(await loadCertificate({ path })).credential);
  });

  it('refuses a certificate that does not match the private key', async () => {
    const message = refused(
      await loadCertificate({ path: fx.paths.mismatched }),
      'certificatePath',
      'belongs to its private key',
    );
    expect(message).toContain('CN=someone-else');
  });

  it('refuses an RSA key under 2048 bits', async () => {
    const message = refused(
      await loadCertificate({ path: fx.paths.short }),
      'certificatePath',
      'has 1024 bits',
    );
    expect(message).toContain('at least 2048');
  });

  it('refuses a non-RSA key', async () => {
    const message = refused(
      await loadCertificate({ path: fx.paths.ec }),
      'certificatePath',
      'elliptic-curve (EC) key',
    );
    expect(message).toContain('needs an RSA key');
  });

  it('refuses an expired certificate', async () => {
    const message = refused(
      await loadCertificate({ path: fx.paths.expired }),
      'certificatePath',
      'expired on',
    );
    expect(message).toMatch(/expired on \d{4}-\d\d-\d\dT/);
    expect(message).toContain('upload it to the app registration');
  });

  it('refuses a certificate that is not valid yet', async () => {
    refused(
      await loadCertificate({ path: fx.paths.notYetValid }),
      'certificatePath',
      'is not valid before',
    );
  });

  it('checks validity against the given time', async () => {
    const result = await loadCertificate({
      path: fx.paths.plain,
      now: new Date(Date.now() + 2 * 365 * 86_400_000),
    });
    refused(result, 'certificatePath', 'expired on');
  });
});

describe('expiry warning', () => {
  it('warns when the certificate expires within 30 days, with the date and days left', async () => {
    const { credential, warnings } = accepted(await loadCertificate({ path: fx.paths.expiring }));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`expires on ${credential.notAfter.toISOString()}`);
    expect(warnings[0]).toContain('in 10 days');
    expect(warnings[0]).toContain(credential.thumbprintSha1);
  });

  it('does not warn for a certificate valid for a year', async () => {
    expect(accepted(await loadCertificate({ path: fx.paths.plain })).warnings).toEqual([]);
  });
});
