/**
 * A self-signed certificate credential for the app registration, made here so
 * that nobody needs OpenSSL or a Windows certificate store: an RSA key from
 * Node's crypto, an X.509 v3 certificate assembled with node-forge and signed
 * with Node's crypto (forge never sees the private key), and the files Entra
 * ID and `certificatePath` want.
 *
 * Entra ID only checks that the assertion's signature verifies with a
 * registered certificate's public key and that the certificate is within its
 * validity: no chain, no CA, no extended key usage is required.
 */
import {
  createHash,
  generateKeyPairSync,
  randomBytes,
  randomUUID,
  sign,
  X509Certificate,
} from 'node:crypto';
import { constants } from 'node:fs';
import { link, lstat, mkdir, open, readFile, rename, rm, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import forge from 'node-forge';
import { MIN_RSA_KEY_BITS } from '../config/certificate.js';
import { describeFsError } from '../config/file.js';
import { Secret } from '../config/secret.js';
import { ConfigurationError, MailbridgeError } from '../errors.js';
import { findUnsafeCharacter } from './shell-quote.js';

export const DEFAULT_CERTIFICATE_SUBJECT = 'mailbridge';
export const DEFAULT_CERTIFICATE_DAYS = 365;
/** Ten years: Entra ID takes it, but see LONG_LIVED_CERTIFICATE_DAYS. */
export const MAX_CERTIFICATE_DAYS = 3650;
/** Longer lifetimes get a warning: a leaked key stays usable that long, and tenant policies may cap it. */
export const LONG_LIVED_CERTIFICATE_DAYS = 730;
export const DEFAULT_RSA_KEY_BITS = 3072;
/** Larger keys take minutes to generate and slow every token request. */
export const MAX_RSA_KEY_BITS = 8192;
/** X.520 upper bound for a common name. */
export const MAX_COMMON_NAME_LENGTH = 64;
/** The start of validity is set this far back, for clocks a little behind ours. */
const CLOCK_SKEW_MS = 5 * 60_000;
const DAY_MS = 86_400_000;

/** Part of forge's public API that @types/node-forge leaves out. */
type ForgePkiInternals = typeof forge.pki & {
  getTBSCertificate(certificate: forge.pki.Certificate): forge.asn1.Asn1;
};

/** File names written into `--out-dir`. */
export const CERTIFICATE_FILE_NAMES = {
  /** PKCS#8 PEM private key, mode 0600. */
  privateKey: 'mailbridge.key',
  /** The certificate as PEM. */
  certificatePem: 'mailbridge.crt',
  /** The certificate as DER (binary), as Windows exports `.cer`. */
  certificateDer: 'mailbridge.cer',
  /** Private key then certificate, mode 0600: the `AZURE_CLIENT_CERTIFICATE_PATH` file. */
  combinedPem: 'mailbridge.pem',
  /** Microsoft Graph `keyCredential` list for the app manifest or `Update-MgApplication`. */
  keyCredentials: 'keyCredentials.json',
} as const;
export type CertificateFileKind = keyof typeof CERTIFICATE_FILE_NAMES;

const FILE_MODES: Record<CertificateFileKind, number> = {
  privateKey: 0o600,
  certificatePem: 0o644,
  certificateDer: 0o644,
  combinedPem: 0o600,
  keyCredentials: 0o644,
};

/**
 * Microsoft Graph `keyCredential` (the format of the Entra admin center's
 * manifest since January 2025, of `PATCH /applications/{id}` and of
 * `Update-MgApplication -KeyCredentials`). The retired Azure AD Graph
 * manifest called `key` `value` and the dates `startDate`/`endDate`.
 */
export interface KeyCredential {
  /** Base64 of the 20 bytes of the SHA-1 thumbprint: what Entra fills in when it is left out. */
  customKeyIdentifier: string;
  /** The subject, as the portal shows it: `CN=mailbridge`. */
  displayName: string;
  /** The certificate's notAfter, ISO 8601 UTC. */
  endDateTime: string;
  /** Base64 of the certificate's DER bytes (the public part only). */
  key: string;
  /** A new UUID. */
  keyId: string;
  /** The certificate's notBefore, ISO 8601 UTC. */
  startDateTime: string;
  type: 'AsymmetricX509Cert';
  usage: 'Verify';
}

export interface GenerateCertificateOptions {
  /** Common name of the subject (and issuer: the certificate is self-signed). A leading `CN=` is dropped. @default 'mailbridge' */
  subject?: string;
  /** Days of validity from now. @default 365 */
  days?: number;
  /** RSA modulus length, 2048 to 8192, a multiple of 1024. @default 3072 */
  keyBits?: number;
  /** The time validity starts from. @default new Date() */
  now?: Date;
}

export interface GeneratedCertificate {
  /** PKCS#8 PEM, unencrypted: it is written with mode 0600 and never printed. */
  privateKey: Secret;
  certificatePem: string;
  certificateDer: Buffer;
  /** `CN=...` */
  subject: string;
  keyBits: number;
  /** Hex, as OpenSSL prints it. */
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  /** Uppercase hex without separators, as the Entra admin center shows it. */
  thumbprintSha1: string;
  thumbprintSha256: string;
  keyCredential: KeyCredential;
  /** Things the user should know, e.g. a lifetime over two years. */
  warnings: string[];
}

/**
 * Makes a key pair and a self-signed certificate: SHA-256 with RSA,
 * keyUsage digitalSignature (critical), basicConstraints CA:false, a subject
 * key identifier, and a random positive 128-bit serial number.
 *
 * @throws ConfigurationError `SETUP_KEY_SIZE`, `SETUP_DAYS` or `SETUP_SUBJECT`
 */
export function generateCertificate(
  options: GenerateCertificateOptions = {},
): GeneratedCertificate {
  const commonName = checkCommonName(options.subject ?? DEFAULT_CERTIFICATE_SUBJECT);
  const days = checkDays(options.days ?? DEFAULT_CERTIFICATE_DAYS);
  const keyBits = checkKeyBits(options.keyBits ?? DEFAULT_RSA_KEY_BITS);

  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: keyBits });
  // X.509 times have whole seconds; keep the Dates equal to what the certificate says.
  const start = Math.floor((options.now ?? new Date()).getTime() / 1000) * 1000;
  const notBefore = new Date(start - CLOCK_SKEW_MS);
  const notAfter = new Date(start + days * DAY_MS);

  const certificate = forge.pki.createCertificate();
  certificate.publicKey = forge.pki.publicKeyFromPem(
    publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  );
  certificate.serialNumber = randomSerialNumber();
  certificate.validity.notBefore = notBefore;
  certificate.validity.notAfter = notAfter;
  // UTF8String: PrintableString cannot hold `_`, `@` or anything beyond ASCII letters and digits.
  // (@types/node-forge types valueTagClass as an asn1.Class; forge reads it as an asn1.Type.)
  const name = [
    { name: 'commonName', value: commonName, valueTagClass: forge.asn1.Type.UTF8 },
  ] as unknown as forge.pki.CertificateField[];
  certificate.setSubject(name);
  certificate.setIssuer(name);
  certificate.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', critical: true, digitalSignature: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  const algorithm = forge.pki.oids.sha256WithRSAEncryption ?? '1.2.840.113549.1.1.11';
  certificate.siginfo.algorithmOid = algorithm;
  certificate.signatureOid = algorithm;
  const tbs = (forge.pki as ForgePkiInternals).getTBSCertificate(certificate);
  const tbsDer = Buffer.from(forge.asn1.toDer(tbs).getBytes(), 'binary');
  // RSASSA-PKCS1-v1_5 with SHA-256, the default padding of crypto.sign for RSA keys.
  certificate.signature = sign('sha256', tbsDer, privateKey).toString('binary');
  (certificate as forge.pki.Certificate & { tbsCertificate: forge.asn1.Asn1 }).tbsCertificate = tbs;
  const certificateDer = Buffer.from(
    forge.asn1.toDer(forge.pki.certificateToAsn1(certificate)).getBytes(),
    'binary',
  );

  const x509 = new X509Certificate(certificateDer);
  if (!x509.checkPrivateKey(privateKey) || !x509.verify(x509.publicKey)) {
    // Cannot happen unless forge or OpenSSL changes underneath us; never write such a pair.
    throw new MailbridgeError({
      code: 'SETUP_CERTIFICATE_BROKEN',
      message: 'The generated certificate does not verify with its own key',
      remedy: 'This is a bug; please report it with your Node.js and node-forge versions.',
    });
  }
  const thumbprintSha1 = createHash('sha1').update(certificateDer).digest('hex').toUpperCase();
  const thumbprintSha256 = createHash('sha256').update(certificateDer).digest('hex').toUpperCase();
  const subject = `CN=${commonName}`;

  const warnings: string[] = [];
  if (days > LONG_LIVED_CERTIFICATE_DAYS) {
    warnings.push(
      `The certificate is valid for ${days} days (more than two years). Entra ID accepts it, but a tenant's app management policy may refuse long-lived credentials, and a copied key stays usable that long. Prefer a year or two and plan the renewal.`,
    );
  }

  return {
    privateKey: new Secret(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()),
    certificatePem: x509.toString(),
    certificateDer,
    subject,
    keyBits,
    serialNumber: x509.serialNumber,
    notBefore,
    notAfter,
    thumbprintSha1,
    thumbprintSha256,
    keyCredential: keyCredentialFor(certificateDer, { displayName: subject }),
    warnings,
  };
}

/**
 * The Microsoft Graph `keyCredential` for a certificate (DER bytes), with a
 * new `keyId` unless one is given.
 */
export function keyCredentialFor(
  certificateDer: Buffer,
  options: { keyId?: string; displayName?: string } = {},
): KeyCredential {
  const x509 = new X509Certificate(certificateDer);
  return {
    customKeyIdentifier: createHash('sha1').update(certificateDer).digest('base64'),
    displayName: options.displayName ?? oneLine(x509.subject),
    endDateTime: isoSeconds(new Date(x509.validTo)),
    key: certificateDer.toString('base64'),
    keyId: options.keyId ?? randomUUID(),
    startDateTime: isoSeconds(new Date(x509.validFrom)),
    type: 'AsymmetricX509Cert',
    usage: 'Verify',
  };
}

export interface WriteCertificateFilesOptions {
  /** Created (mode 0700) when missing. */
  outDir: string;
  /** Replace existing files. @default false */
  force?: boolean;
}

export type CertificateFilePaths = Record<CertificateFileKind, string>;

/**
 * Writes the five files. Each is written under a temporary name in the same
 * directory with its final mode, synced, then moved into place: a crash never
 * leaves a half-written key, and a key file is never readable by others, not
 * even for a moment. Without `force`, an existing file of any of the five
 * names stops everything before anything is written, and each file is put in
 * place with link(2), which refuses to replace a file created meanwhile.
 *
 * @throws ConfigurationError `SETUP_FILE_EXISTS` (exit 2)
 * @throws MailbridgeError `SETUP_WRITE_FAILED`
 */
export async function writeCertificateFiles(
  generated: GeneratedCertificate,
  options: WriteCertificateFilesOptions,
): Promise<CertificateFilePaths> {
  const dir = resolve(options.outDir);
  const paths = Object.fromEntries(
    Object.entries(CERTIFICATE_FILE_NAMES).map(([kind, name]) => [kind, join(dir, name)]),
  ) as CertificateFilePaths;
  const kinds = Object.keys(CERTIFICATE_FILE_NAMES) as CertificateFileKind[];

  if (!options.force) {
    const existing: string[] = [];
    for (const kind of kinds) {
      if (await exists(paths[kind])) existing.push(paths[kind]);
    }
    if (existing.length > 0) throw fileExists(existing);
  }

  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw writeFailed(dir, error);
  }

  const contents: Record<CertificateFileKind, string | Buffer> = {
    privateKey: generated.privateKey.reveal(),
    certificatePem: generated.certificatePem,
    certificateDer: generated.certificateDer,
    combinedPem: `${generated.privateKey.reveal()}${generated.certificatePem}`,
    keyCredentials: `${JSON.stringify([generated.keyCredential], null, 2)}\n`,
  };

  const suffix = `.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const temporary = (kind: CertificateFileKind) => `${paths[kind]}${suffix}`;
  const placed: string[] = [];
  try {
    for (const kind of kinds) {
      await writePrivately(temporary(kind), contents[kind], FILE_MODES[kind]);
    }
    for (const kind of kinds) {
      await place(temporary(kind), paths[kind], options.force === true);
      placed.push(paths[kind]);
    }
  } catch (error) {
    await Promise.all(kinds.map((kind) => rm(temporary(kind), { force: true })));
    // Without --force every placed file is ours: take them back so no half set is left.
    if (!options.force) await Promise.all(placed.map((path) => rm(path, { force: true })));
    if (error instanceof MailbridgeError) throw error;
    const path = (error as { path?: string }).path ?? dir;
    throw writeFailed(path.endsWith(suffix) ? path.slice(0, -suffix.length) : path, error);
  }
  return paths;
}

/**
 * Reads a certificate to upload: PEM (the first certificate in the file) or
 * DER. A file holding a private key is refused: the key never leaves this
 * machine, and the upload needs the public part only.
 *
 * @throws ConfigurationError `SETUP_CERT_UNREADABLE`, `SETUP_CERT_HAS_PRIVATE_KEY` or `SETUP_CERT_INVALID`
 */
export async function readPublicCertificate(path: string): Promise<X509Certificate> {
  const absolute = resolve(path);
  let content: Buffer;
  try {
    content = await readFile(absolute);
  } catch (error) {
    throw new ConfigurationError({
      code: 'SETUP_CERT_UNREADABLE',
      message: `Cannot read the certificate file ${absolute}: ${describeFsError(error)}`,
      remedy: 'Check the path, or make one with `mailbridge setup cert --out-dir DIR`.',
    });
  }
  const text = content.toString('latin1');
  if (/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text)) {
    throw new ConfigurationError({
      code: 'SETUP_CERT_HAS_PRIVATE_KEY',
      message: `${absolute} holds a private key`,
      remedy: `Give the certificate alone (${CERTIFICATE_FILE_NAMES.certificatePem} or ${CERTIFICATE_FILE_NAMES.certificateDer}): the private key stays on this machine.`,
    });
  }
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/.exec(text);
  try {
    return new X509Certificate(pem ? pem[0] : content);
  } catch {
    throw new ConfigurationError({
      code: 'SETUP_CERT_INVALID',
      message: `${absolute} is not an X.509 certificate (PEM or DER)`,
      remedy: `Give a certificate file such as ${CERTIFICATE_FILE_NAMES.certificatePem} from \`mailbridge setup cert\`.`,
    });
  }
}

/** The common name, without a leading `CN=`. */
export function checkCommonName(value: string): string {
  const name = value.replace(/^\s*CN\s*=\s*/i, '').trim();
  const unsafe = findUnsafeCharacter(name);
  const problem =
    name === ''
      ? 'is empty'
      : unsafe
        ? `holds the control character ${unsafe}`
        : [...name].length > MAX_COMMON_NAME_LENGTH
          ? `is longer than ${MAX_COMMON_NAME_LENGTH} characters`
          : undefined;
  if (problem) {
    throw new ConfigurationError({
      code: 'SETUP_SUBJECT',
      message: `The subject common name ${problem}`,
      remedy: `Give a short name such as --subject mailbridge-archive (at most ${MAX_COMMON_NAME_LENGTH} characters).`,
    });
  }
  return name;
}

export function checkDays(days: number): number {
  if (!Number.isInteger(days) || days < 1 || days > MAX_CERTIFICATE_DAYS) {
    throw new ConfigurationError({
      code: 'SETUP_DAYS',
      message: `The validity must be a whole number of days from 1 to ${MAX_CERTIFICATE_DAYS}, not ${days}`,
      remedy: `Use for example --days ${DEFAULT_CERTIFICATE_DAYS}.`,
    });
  }
  return days;
}

export function checkKeyBits(bits: number): number {
  if (!Number.isInteger(bits) || bits < MIN_RSA_KEY_BITS) {
    throw new ConfigurationError({
      code: 'SETUP_KEY_SIZE',
      message: `An RSA key of ${bits} bits is too weak: Entra ID requires at least ${MIN_RSA_KEY_BITS}`,
      remedy: `Use --key-size ${DEFAULT_RSA_KEY_BITS} (the default) or 4096.`,
    });
  }
  if (bits > MAX_RSA_KEY_BITS || bits % 1024 !== 0) {
    throw new ConfigurationError({
      code: 'SETUP_KEY_SIZE',
      message: `The RSA key size must be a multiple of 1024 from ${MIN_RSA_KEY_BITS} to ${MAX_RSA_KEY_BITS}, not ${bits}`,
      remedy: `Use --key-size ${DEFAULT_RSA_KEY_BITS} (the default) or 4096.`,
    });
  }
  return bits;
}

/** 16 random bytes, the first in 0x01..0x7f: positive and minimally encoded in DER. */
function randomSerialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) % 0x7f) + 1;
  return bytes.toString('hex');
}

async function writePrivately(path: string, content: string | Buffer, mode: number): Promise<void> {
  // O_EXCL: never follow a link planted under the temporary name.
  const handle = await open(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0),
    mode,
  );
  try {
    await handle.chmod(mode); // the umask may have taken bits away from a 0644 file
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function place(temporary: string, target: string, replace: boolean): Promise<void> {
  if (replace) {
    await rename(temporary, target);
    return;
  }
  try {
    await link(temporary, target);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw fileExists([target]);
    // File systems without hard links: the existence check above is all we have.
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') {
      throw error;
    }
    if (await exists(target)) throw fileExists([target]);
    await rename(temporary, target);
    return;
  }
  await unlink(temporary);
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw writeFailed(path, error);
  }
}

function fileExists(paths: string[]): ConfigurationError {
  return new ConfigurationError({
    code: 'SETUP_FILE_EXISTS',
    message: `Refusing to overwrite ${paths.join(', ')}`,
    remedy:
      'Choose another --out-dir, or add --force to replace the files (the old key is lost: remove its certificate from the app registration too).',
  });
}

function writeFailed(path: string, error: unknown): MailbridgeError {
  return new MailbridgeError({
    code: 'SETUP_WRITE_FAILED',
    message: `Cannot write ${path}: ${describeFsError(error)}`,
    remedy:
      'Check that the directory exists or can be created, and that this user may write to it.',
    cause: error,
  });
}

/** `2026-01-31T12:00:00Z`: certificate times have whole seconds. */
function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Node gives subjects one attribute per line. */
function oneLine(subject: string): string {
  return subject.split('\n').filter(Boolean).join(', ');
}
