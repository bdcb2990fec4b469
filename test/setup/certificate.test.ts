/**
 * `mailbridge setup cert`: the files agree with each other (thumbprints
 * recomputed from the DER, key size, key matches certificate), the config
 * loader accepts the combined PEM, and the local token service issues a
 * token for an app registered with the certificate. Then every refusal.
 */
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import forge from 'node-forge';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenProvider } from '../../src/auth/token-provider.js';
import { setupCertCommand } from '../../src/cli/commands/setup-cert.js';
import { loadCertificate } from '../../src/config/certificate.js';
import { loadConfig } from '../../src/config/load.js';
import {
  CERTIFICATE_FILE_NAMES,
  generateCertificate,
  type KeyCredential,
  keyCredentialFor,
  writeCertificateFiles,
} from '../../src/setup/certificate.js';
import { runCommand } from '../helpers/run-command.js';
import { startTokenService, type TokenService } from '../helpers/token-service.js';

const DAY = 86_400_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function mode(path: string): Promise<number> {
  return stat(path).then((s) => s.mode & 0o777);
}

function sha(algorithm: 'sha1' | 'sha256', der: Buffer): string {
  return createHash(algorithm).update(der).digest('hex').toUpperCase();
}

let root: string;
let service: TokenService;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'mailbridge-setup-cert-'));
  service = await startTokenService();
});

afterAll(async () => {
  await service.close();
  await rm(root, { recursive: true, force: true });
});

describe('setup cert with the defaults', () => {
  let dir: string;
  let printed: Record<string, unknown>;
  let files: Record<keyof typeof CERTIFICATE_FILE_NAMES, string>;
  let der: Buffer;
  let credentials: KeyCredential[];

  beforeAll(async () => {
    dir = join(root, 'defaults');
    const run = await runCommand(setupCertCommand, ['--out-dir', dir, '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    printed = JSON.parse(run.stdout);
    files = printed.files as typeof files;
    der = await readFile(join(dir, 'mailbridge.cer'));
    credentials = JSON.parse(await readFile(join(dir, 'keyCredentials.json'), 'utf8'));
  });

  it('writes the five files, the key and the combined PEM with mode 0600', async () => {
    expect((await readdir(dir)).sort()).toEqual(
      [
        'keyCredentials.json',
        'mailbridge.cer',
        'mailbridge.crt',
        'mailbridge.key',
        'mailbridge.pem',
      ].sort(),
    );
    expect(files).toEqual({
      privateKey: join(dir, 'mailbridge.key'),
      certificatePem: join(dir, 'mailbridge.crt'),
      certificateDer: join(dir, 'mailbridge.cer'),
      combinedPem: join(dir, 'mailbridge.pem'),
      keyCredentials: join(dir, 'keyCredentials.json'),
    });
    expect(await mode(files.privateKey)).toBe(0o600);
    expect(await mode(files.combinedPem)).toBe(0o600);
    expect(await mode(files.certificatePem)).toBe(0o644);
    expect(await mode(files.certificateDer)).toBe(0o644);
    expect(await mode(files.keyCredentials)).toBe(0o644);
    expect(await mode(dir)).toBe(0o700);
  });

  it('writes the same certificate as PEM, as DER and in the combined file', async () => {
    const pem = await readFile(files.certificatePem, 'utf8');
    expect(pem).toMatch(/^-----BEGIN CERTIFICATE-----\n[\s\S]+\n-----END CERTIFICATE-----\n$/);
    expect(new X509Certificate(pem).raw.equals(der)).toBe(true);
    const combined = await readFile(files.combinedPem, 'utf8');
    const key = await readFile(files.privateKey, 'utf8');
    expect(combined).toBe(`${key}${pem}`);
    expect(key).toMatch(/^-----BEGIN PRIVATE KEY-----\n/); // PKCS#8, unencrypted
  });

  it('prints thumbprints that are the SHA-1 and SHA-256 of the DER', () => {
    expect(printed.thumbprintSha1).toBe(sha('sha1', der));
    expect(printed.thumbprintSha256).toBe(sha('sha256', der));
    expect(printed.thumbprintSha1).toMatch(/^[0-9A-F]{40}$/);
    expect(printed.thumbprintSha256).toMatch(/^[0-9A-F]{64}$/);
  });

  it('makes a 3072-bit RSA key that belongs to the certificate', async () => {
    const key = createPrivateKey(await readFile(files.privateKey, 'utf8'));
    expect(key.asymmetricKeyType).toBe('rsa');
    expect(key.asymmetricKeyDetails?.modulusLength).toBe(3072);
    expect(key.asymmetricKeyDetails?.publicExponent).toBe(65537n);
    const x509 = new X509Certificate(der);
    expect(x509.checkPrivateKey(key)).toBe(true);
    expect(printed.keyBits).toBe(3072);
  });

  it('is self-signed with SHA-256, CN=mailbridge, digitalSignature only, not a CA', () => {
    const x509 = new X509Certificate(der);
    expect(x509.subject).toBe('CN=mailbridge');
    expect(x509.issuer).toBe('CN=mailbridge');
    expect(x509.ca).toBe(false);
    expect(x509.verify(x509.publicKey)).toBe(true);
    const parsed = forge.pki.certificateFromAsn1(forge.asn1.fromDer(der.toString('binary')));
    expect(parsed.signatureOid).toBe(forge.pki.oids.sha256WithRSAEncryption);
    expect(parsed.version).toBe(2); // X.509 v3
    const keyUsage = parsed.getExtension('keyUsage') as Record<string, unknown>;
    expect(keyUsage).toMatchObject({ critical: true, digitalSignature: true });
    expect(keyUsage.keyCertSign).toBe(false);
    expect(parsed.getExtension('basicConstraints')).toMatchObject({ cA: false });
    // A positive serial: the first byte's high bit is clear.
    expect(Number.parseInt(x509.serialNumber.slice(0, 2), 16)).toBeLessThan(0x80);
    expect(x509.serialNumber).toMatch(/^[0-9A-F]{32}$/);
  });

  it('is valid from a few minutes ago for 365 days, as printed', () => {
    const x509 = new X509Certificate(der);
    const notBefore = new Date(x509.validFrom).getTime();
    const notAfter = new Date(x509.validTo).getTime();
    expect(notBefore).toBeLessThanOrEqual(Date.now());
    expect(notBefore).toBeGreaterThan(Date.now() - 10 * 60_000);
    expect(notAfter - notBefore).toBe(365 * DAY + 5 * 60_000);
    expect(new Date(printed.notAfter as string).getTime()).toBe(notAfter);
    expect(new Date(printed.notBefore as string).getTime()).toBe(notBefore);
  });

  it('writes keyCredentials.json in the Microsoft Graph keyCredential format, agreeing with the DER', () => {
    expect(credentials).toHaveLength(1);
    const [credential] = credentials;
    if (!credential) throw new Error('no key credential');
    expect(Object.keys(credential).sort()).toEqual([
      'customKeyIdentifier',
      'displayName',
      'endDateTime',
      'key',
      'keyId',
      'startDateTime',
      'type',
      'usage',
    ]);
    expect(credential.type).toBe('AsymmetricX509Cert');
    expect(credential.usage).toBe('Verify');
    expect(credential.displayName).toBe('CN=mailbridge');
    expect(credential.keyId).toMatch(UUID);
    expect(credential.keyId).toBe(printed.keyId);
    expect(Buffer.from(credential.key, 'base64').equals(der)).toBe(true);
    // customKeyIdentifier: base64 of the 20 bytes of the SHA-1 thumbprint.
    const identifier = Buffer.from(credential.customKeyIdentifier, 'base64');
    expect(identifier).toHaveLength(20);
    expect(identifier.toString('hex').toUpperCase()).toBe(sha('sha1', der));
    const x509 = new X509Certificate(der);
    expect(credential.startDateTime).toBe(
      new Date(x509.validFrom).toISOString().replace('.000', ''),
    );
    expect(credential.endDateTime).toBe(new Date(x509.validTo).toISOString().replace('.000', ''));
    expect(credential.endDateTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  it('passes the checks of the certificate loader (key size, key match, validity)', async () => {
    const result = await loadCertificate({ path: files.combinedPem });
    if (!result.ok) throw new Error(JSON.stringify(result.problems));
    expect(result.warnings).toEqual([]);
    expect(result.credential.keyBits).toBe(3072);
    expect(result.credential.thumbprintSha1).toBe(sha('sha1', der));
    expect(result.credential.thumbprintSha256).toBe(sha('sha256', der));
    expect(result.credential.subject).toBe('CN=mailbridge');
  });

  it('works as AZURE_CLIENT_CERTIFICATE_PATH against the token service', async () => {
    const app = service.registerApp({
      certificates: [await readFile(files.certificatePem, 'utf8')],
      roles: { 'https://outlook.office365.com': ['IMAP.AccessAsApp'] },
    });
    const config = await loadConfig({
      env: {
        AZURE_TENANT_ID: app.tenantId,
        AZURE_CLIENT_ID: app.clientId,
        AZURE_AUTHORITY_HOST: service.url,
        AZURE_CLIENT_CERTIFICATE_PATH: files.combinedPem,
      },
    });
    const token = await createTokenProvider(config).getToken();
    const claims = service.verifyAccessToken(token.accessToken);
    expect(claims.appid).toBe(app.clientId);
    expect(claims.appidacr).toBe('2'); // certificate
    expect(claims.roles).toEqual(['IMAP.AccessAsApp']);
    expect(service.requests.at(-1)?.authMethod).toBe('certificate');
  });

  it('is refused by the token service for an app registered with another certificate', async () => {
    const other = generateCertificate({ keyBits: 2048 });
    const app = service.registerApp({ certificates: [other.certificatePem] });
    const config = await loadConfig({
      env: {
        AZURE_TENANT_ID: app.tenantId,
        AZURE_CLIENT_ID: app.clientId,
        AZURE_AUTHORITY_HOST: service.url,
        AZURE_CLIENT_CERTIFICATE_PATH: files.combinedPem,
      },
    });
    await expect(createTokenProvider(config).getToken()).rejects.toMatchObject({ exitCode: 3 });
  });
});

describe('setup cert output and options', () => {
  it('prints the files, both thumbprints and the expiry', async () => {
    const dir = join(root, 'text');
    const run = await runCommand(setupCertCommand, [
      '--out-dir',
      dir,
      '--key-size',
      '2048',
      '--days',
      '30',
      '--subject',
      'CN=archive-bot',
    ]);
    expect(run.code).toBe(0);
    const der = await readFile(join(dir, 'mailbridge.cer'));
    const x509 = new X509Certificate(der);
    expect(x509.subject).toBe('CN=archive-bot');
    expect(run.stdout).toContain(`Thumbprint (SHA-1):   ${sha('sha1', der)}`);
    expect(run.stdout).toContain(`Thumbprint (SHA-256): ${sha('sha256', der)}`);
    expect(run.stdout).toContain(`until ${new Date(x509.validTo).toISOString()}`);
    expect(run.stdout).toContain('RSA 2048 bits');
    expect(run.stdout).toContain(join(dir, 'mailbridge.pem'));
    expect(run.stdout).not.toContain('PRIVATE KEY');
    const key = await readFile(join(dir, 'mailbridge.key'), 'utf8');
    const body = key.split('\n')[5] ?? '';
    expect(body.length).toBeGreaterThan(40);
    expect(run.stdout + run.stderr).not.toContain(body);
  });

  it('keeps a non-ASCII common name as UTF-8', () => {
    const generated = generateCertificate({ subject: 'Postfach-Brücke_01@contoso', keyBits: 2048 });
    expect(new X509Certificate(generated.certificateDer).subject).toBe(
      'CN=Postfach-Brücke_01@contoso',
    );
    expect(generated.keyCredential.displayName).toBe('CN=Postfach-Brücke_01@contoso');
  });

  it('warns about lifetimes over two years', async () => {
    const run = await runCommand(setupCertCommand, [
      '--out-dir',
      join(root, 'long'),
      '--key-size',
      '2048',
      '--days',
      '1000',
    ]);
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/^mailbridge: warning: The certificate is valid for 1000 days/);
  });

  it('builds a keyCredential for any certificate DER', () => {
    const generated = generateCertificate({ keyBits: 2048 });
    const keyId = '6f0d5e2a-3b1c-4d7e-9f80-112233445566';
    const credential = keyCredentialFor(generated.certificateDer, { keyId });
    expect(credential).toEqual({ ...generated.keyCredential, keyId });
  });

  it('never prints or serialises the private key', () => {
    const generated = generateCertificate({ keyBits: 2048 });
    const shown = `${JSON.stringify(generated)} ${String(generated.privateKey)}`;
    expect(shown).not.toContain('PRIVATE KEY');
    expect(generated.privateKey.reveal()).toContain('BEGIN PRIVATE KEY');
  });
});

describe('setup cert refusals', () => {
  it('refuses to overwrite existing files (exit 2, SETUP_FILE_EXISTS) and changes nothing', async () => {
    const dir = join(root, 'twice');
    expect(
      (await runCommand(setupCertCommand, ['--out-dir', dir, '--key-size', '2048'])).code,
    ).toBe(0);
    const before = await Promise.all(
      Object.values(CERTIFICATE_FILE_NAMES).map((name) => readFile(join(dir, name))),
    );
    const run = await runCommand(setupCertCommand, ['--out-dir', dir, '--key-size', '2048']);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('mailbridge: error SETUP_FILE_EXISTS: Refusing to overwrite');
    expect(run.stderr).toContain(join(dir, 'mailbridge.key'));
    expect(run.stderr).toContain('--force');
    const after = await Promise.all(
      Object.values(CERTIFICATE_FILE_NAMES).map((name) => readFile(join(dir, name))),
    );
    expect(after).toEqual(before);
    expect((await readdir(dir)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses when any one of the files exists, and writes none of the others', async () => {
    const dir = join(root, 'one-exists');
    await mkdir(dir);
    await writeFile(join(dir, 'keyCredentials.json'), '[]\n');
    const run = await runCommand(setupCertCommand, ['--out-dir', dir, '--json']);
    expect(run.code).toBe(2);
    expect(JSON.parse(run.stdout)).toMatchObject({
      ok: false,
      error: { code: 'SETUP_FILE_EXISTS', exitCode: 2 },
    });
    expect(await readdir(dir)).toEqual(['keyCredentials.json']);
  });

  it('does not follow a symbolic link planted where the key goes', async () => {
    const dir = join(root, 'symlink');
    await mkdir(dir);
    const target = join(root, 'symlink-target');
    await writeFile(target, 'not a key\n');
    await symlink(target, join(dir, 'mailbridge.key'));
    const refused = await runCommand(setupCertCommand, ['--out-dir', dir, '--key-size', '2048']);
    expect(refused.code).toBe(2);
    const forced = await runCommand(setupCertCommand, [
      '--out-dir',
      dir,
      '--key-size',
      '2048',
      '--force',
    ]);
    expect(forced.code).toBe(0);
    expect(await readFile(target, 'utf8')).toBe('not a key\n');
    expect(await readFile(join(dir, 'mailbridge.key'), 'utf8')).toContain('BEGIN PRIVATE KEY');
    expect(await mode(join(dir, 'mailbridge.key'))).toBe(0o600);
  });

  it('replaces the files with --force, with the right modes', async () => {
    const dir = join(root, 'force');
    await mkdir(dir);
    await writeFile(join(dir, 'mailbridge.key'), 'old\n', { mode: 0o644 });
    await writeFile(join(dir, 'mailbridge.pem'), 'old\n', { mode: 0o666 });
    const run = await runCommand(setupCertCommand, [
      '--out-dir',
      dir,
      '--key-size',
      '2048',
      '--force',
      '--json',
    ]);
    expect(run.code).toBe(0);
    expect(await mode(join(dir, 'mailbridge.key'))).toBe(0o600);
    expect(await mode(join(dir, 'mailbridge.pem'))).toBe(0o600);
    const loaded = await loadCertificate({ path: join(dir, 'mailbridge.pem') });
    expect(loaded.ok).toBe(true);
  });

  it.each([
    [
      ['--key-size', '1024'],
      'SETUP_KEY_SIZE',
      'An RSA key of 1024 bits is too weak: Entra ID requires at least 2048',
    ],
    [['--key-size', '512'], 'SETUP_KEY_SIZE', 'too weak'],
    [['--key-size', '3000'], 'SETUP_KEY_SIZE', 'a multiple of 1024 from 2048 to 8192, not 3000'],
    [['--key-size', '16384'], 'SETUP_KEY_SIZE', 'not 16384'],
    [['--key-size', 'big'], 'SETUP_KEY_SIZE', "--key-size must be a whole number, not 'big'"],
    [['--days', '0'], 'SETUP_DAYS', 'from 1 to 3650, not 0'],
    [['--days', '3651'], 'SETUP_DAYS', 'not 3651'],
    [['--days', '1.5'], 'SETUP_DAYS', "--days must be a whole number, not '1.5'"],
    [['--days=-5'], 'SETUP_DAYS', "not '-5'"],
    [['--subject', 'CN='], 'SETUP_SUBJECT', 'is empty'],
    [['--subject', 'two\nlines'], 'SETUP_SUBJECT', 'control character U+000A'],
    [['--subject', 'x'.repeat(65)], 'SETUP_SUBJECT', 'longer than 64'],
  ])('refuses %j with exit 2 (%s) and writes nothing', async (flags, code, message) => {
    const dir = join(root, `refused-${code}-${flags.join('').length}-${Math.random()}`);
    const run = await runCommand(setupCertCommand, ['--out-dir', dir, ...flags]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`mailbridge: error ${code}: `);
    expect(run.stderr).toContain(message);
    await expect(stat(dir)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('requires --out-dir', async () => {
    const run = await runCommand(setupCertCommand, []);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('mailbridge: error USAGE: --out-dir DIR is required');
  });

  it('reports a directory it cannot write to (exit 1, SETUP_WRITE_FAILED)', async () => {
    const file = join(root, 'a-file');
    await writeFile(file, '');
    const generated = generateCertificate({ keyBits: 2048 });
    await expect(
      writeCertificateFiles(generated, { outDir: join(file, 'sub') }),
    ).rejects.toMatchObject({ code: 'SETUP_WRITE_FAILED', exitCode: 1 });
  });
});
