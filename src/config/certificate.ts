/**
 * Reads a client certificate the way users bring it: a PEM file holding the
 * key (PKCS#8, PKCS#1, encrypted or not) and the certificate with an optional
 * chain, or a PFX/P12 file. Everything is checked here, at load, because
 * Entra's answers to a bad assertion (AADSTS700027 "signature verification
 * failed", AADSTS700024 "assertion is not within its valid time range") do
 * not say which file or which certificate was wrong.
 *
 * The password only decrypts, in memory; it is never kept or printed.
 */
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type forge from 'node-forge';
import type { ConfigProblem } from '../errors.js';
import { describeFsError } from './file.js';
import { Secret } from './secret.js';
import type { CertificateCredential } from './types.js';

/** msal-node signs client assertions with PS256/RS256, and Entra wants 2048 bits or more. */
export const MIN_RSA_KEY_BITS = 2048;
/** A certificate expiring within this many days gives a warning. */
export const CERTIFICATE_EXPIRY_WARNING_DAYS = 30;

const DAY_MS = 86_400_000;
const PASSWORD_HINT = 'certificatePassword (AZURE_CLIENT_CERTIFICATE_PASSWORD)';

export interface LoadCertificateOptions {
  /** PEM or PFX/P12 file; a relative path is resolved against the working directory. */
  path: string;
  /** Decrypts an encrypted PEM key or the PFX. Used here only, never kept. */
  password?: string;
  sendCertificateChain?: boolean;
  /** The time to check validity against. @default new Date() */
  now?: Date;
}

export type CertificateResult =
  | { ok: true; credential: CertificateCredential; warnings: string[] }
  | { ok: false; problems: ConfigProblem[] };

/**
 * Reads, decrypts and checks a certificate credential. Returns the problems
 * instead of throwing, so that `validateSettings` reports them together with
 * every other problem of the configuration.
 */
export async function loadCertificate(options: LoadCertificateOptions): Promise<CertificateResult> {
  const path = resolve(options.path);
  let content: Buffer;
  try {
    content = await readFile(path);
  } catch (error) {
    return refuse(
      'certificatePath',
      `Cannot read the certificate file ${path}: ${describeFsError(error)}. Check the path and that this user may read the file.`,
    );
  }

  // By content, not by name: a PEM file named .pfx (or a PFX named .pem) is common.
  const material = /-----BEGIN [A-Z0-9 ]+-----/.test(content.toString('latin1'))
    ? readPem(content.toString('utf8'), path, options.password)
    : await readPfx(content, path, options.password);
  if ('problems' in material) return { ok: false, problems: material.problems };

  return check(material, path, options);
}

interface Material {
  keys: KeyObject[];
  certificates: X509Certificate[];
}

type Read = Material | { problems: ConfigProblem[] };

function readPem(text: string, path: string, password: string | undefined): Read {
  const blocks = [...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g)];
  const keyBlocks = blocks.filter((block) => block[1]?.endsWith('PRIVATE KEY'));
  const certificateBlocks = blocks.filter((block) => block[1] === 'CERTIFICATE');
  const problems: ConfigProblem[] = [];

  if (keyBlocks.length === 0) {
    problems.push({
      field: 'certificatePath',
      message: `${path} holds no private key. Put the private key and the certificate in one PEM file (for example \`cat key.pem cert.pem > client.pem\`), or use a PFX file.`,
    });
  } else if (keyBlocks.length > 1) {
    problems.push({
      field: 'certificatePath',
      message: `${path} holds ${keyBlocks.length} private keys. Keep only the key of the certificate registered on the app.`,
    });
  }
  if (certificateBlocks.length === 0) {
    problems.push({
      field: 'certificatePath',
      message: `${path} holds no certificate. Add the certificate uploaded to the app registration (PEM, "BEGIN CERTIFICATE") to the file after the private key.`,
    });
  }

  const keys: KeyObject[] = [];
  const keyBlock = keyBlocks.length === 1 ? keyBlocks[0] : undefined;
  if (keyBlock) {
    const pem = keyBlock[0];
    const encrypted =
      keyBlock[1] === 'ENCRYPTED PRIVATE KEY' || /Proc-Type:\s*4,ENCRYPTED/.test(pem);
    if (encrypted && password === undefined) {
      problems.push({
        field: 'certificatePassword',
        message: `The private key in ${path} is encrypted. Set ${PASSWORD_HINT} to its password.`,
      });
    } else {
      try {
        keys.push(
          createPrivateKey(
            encrypted
              ? { key: pem, format: 'pem', passphrase: password }
              : { key: pem, format: 'pem' },
          ),
        );
      } catch (error) {
        problems.push(
          encrypted
            ? {
                field: 'certificatePassword',
                message: `The password in certificatePassword does not decrypt the private key in ${path}: it is wrong. Check ${PASSWORD_HINT}.`,
              }
            : {
                field: 'certificatePath',
                message: `The private key in ${path} cannot be read (${opensslReason(error)}). Export it again as PKCS#8 PEM ("BEGIN PRIVATE KEY").`,
              },
        );
      }
    }
  }

  const certificates: X509Certificate[] = [];
  for (const [index, block] of certificateBlocks.entries()) {
    try {
      certificates.push(new X509Certificate(block[0]));
    } catch {
      problems.push({
        field: 'certificatePath',
        message: `Certificate number ${index + 1} in ${path} cannot be parsed. Export it again as PEM.`,
      });
    }
  }
  return problems.length > 0 ? { problems } : { keys, certificates };
}

/**
 * node-forge is loaded only for a PFX file: most runs use a PEM file or a
 * secret, and the library costs about 11 MB of memory loaded.
 */
async function readPfx(content: Buffer, path: string, password: string | undefined): Promise<Read> {
  const { default: forge } = await import('node-forge');
  const neither = refuse(
    'certificatePath',
    `${path} is neither a PEM file nor a PFX/P12 file (a DER certificate alone has no private key). Use a PEM file holding the private key and the certificate, or a PFX file.`,
  );
  let asn1: forge.asn1.Asn1;
  try {
    asn1 = forge.asn1.fromDer(content.toString('binary'));
  } catch {
    return neither;
  }

  let p12: forge.pkcs12.Pkcs12Pfx | undefined;
  // Files exported "without a password" use either an empty password or none at all.
  const attempts: (string | undefined)[] = password === undefined ? ['', undefined] : [password];
  let failure: unknown;
  for (const attempt of attempts) {
    try {
      p12 = forge.pkcs12.pkcs12FromAsn1(asn1, attempt as string);
      break;
    } catch (error) {
      failure = error;
    }
  }
  if (!p12) {
    const reason = failure instanceof Error ? failure.message : '';
    if (/not an? PKCS#12 PFX/i.test(reason)) return neither;
    if (/password/i.test(reason)) {
      return refuse(
        'certificatePassword',
        password === undefined
          ? `The PFX file ${path} is protected by a password. Set ${PASSWORD_HINT}.`
          : `The password in certificatePassword does not open the PFX file ${path}: it is wrong. Check ${PASSWORD_HINT}.`,
      );
    }
    return refuse(
      'certificatePath',
      `The PFX file ${path} cannot be read (${reason || 'unknown format'}). Convert it to PEM with \`openssl pkcs12 -in file.pfx -out client.pem -nodes\` (then protect that file) or export it again.`,
    );
  }

  const problems: ConfigProblem[] = [];
  const keys: KeyObject[] = [];
  const keyBags = [
    ...(p12.getBags({ bagType: forge.pki.oids.pkcs8ShroudedKeyBag })[
      forge.pki.oids.pkcs8ShroudedKeyBag ?? ''
    ] ?? []),
    ...(p12.getBags({ bagType: forge.pki.oids.keyBag })[forge.pki.oids.keyBag ?? ''] ?? []),
  ];
  for (const bag of keyBags) {
    try {
      // forge decodes RSA keys only; others come back as raw PrivateKeyInfo.
      keys.push(
        bag.key
          ? createPrivateKey(forge.pki.privateKeyToPem(bag.key))
          : createPrivateKey({ key: derOf(forge, bag.asn1), format: 'der', type: 'pkcs8' }),
      );
    } catch (error) {
      problems.push({
        field: 'certificatePath',
        message: `The private key in ${path} cannot be read (${opensslReason(error)}). Export the PFX again.`,
      });
    }
  }
  if (keyBags.length === 0) {
    problems.push({
      field: 'certificatePath',
      message: `The PFX file ${path} holds no private key. Export it again with the private key ("Yes, export the private key").`,
    });
  } else if (keyBags.length > 1) {
    problems.push({
      field: 'certificatePath',
      message: `The PFX file ${path} holds ${keyBags.length} private keys. Export only the certificate registered on the app, with its key.`,
    });
  }

  const certificates: X509Certificate[] = [];
  const certificateBags =
    p12.getBags({ bagType: forge.pki.oids.certBag })[forge.pki.oids.certBag ?? ''] ?? [];
  for (const bag of certificateBags) {
    try {
      const der = bag.cert
        ? derOf(forge, forge.pki.certificateToAsn1(bag.cert))
        : derOf(forge, bag.asn1 as forge.asn1.Asn1);
      certificates.push(new X509Certificate(der));
    } catch {
      problems.push({
        field: 'certificatePath',
        message: `A certificate in the PFX file ${path} cannot be parsed. Export it again.`,
      });
    }
  }
  if (certificateBags.length === 0) {
    problems.push({
      field: 'certificatePath',
      message: `The PFX file ${path} holds no certificate. Export it again with the certificate.`,
    });
  }
  return problems.length > 0 ? { problems } : { keys, certificates };
}

function check(
  material: Material,
  path: string,
  options: LoadCertificateOptions,
): CertificateResult {
  const [key] = material.keys;
  if (!key) return refuse('certificatePath', `${path} holds no usable private key.`);

  if (key.asymmetricKeyType !== 'rsa') {
    return refuse(
      'certificatePath',
      `The private key in ${path} is ${describeKeyType(key)}, but the client assertion is signed with RS256/PS256, which needs an RSA key. Create an RSA certificate of ${MIN_RSA_KEY_BITS} bits or more.`,
    );
  }
  const problems: ConfigProblem[] = [];
  const keyBits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (keyBits < MIN_RSA_KEY_BITS) {
    problems.push({
      field: 'certificatePath',
      message: `The RSA key in ${path} has ${keyBits} bits; Entra ID requires at least ${MIN_RSA_KEY_BITS}. Create a new certificate with a ${MIN_RSA_KEY_BITS}-bit (or larger) key.`,
    });
  }

  const leaf = material.certificates.find((certificate) => matches(certificate, key));
  if (!leaf) {
    const subjects = material.certificates.map((c) => oneLine(c.subject)).join('; ');
    problems.push({
      field: 'certificatePath',
      message: `No certificate in ${path} belongs to its private key (certificates found: ${subjects}). Put the key and the certificate made from it in the same file.`,
    });
    return { ok: false, problems };
  }

  const now = options.now ?? new Date();
  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  const thumbprintSha1 = leaf.fingerprint.replaceAll(':', '').toUpperCase();
  const thumbprintSha256 = leaf.fingerprint256.replaceAll(':', '').toUpperCase();
  const named = `The certificate in ${path} (thumbprint ${thumbprintSha1})`;
  const replace =
    'Create a new certificate, upload it to the app registration (Certificates & secrets) and point certificatePath at it.';
  if (notAfter.getTime() <= now.getTime()) {
    problems.push({
      field: 'certificatePath',
      message: `${named} expired on ${notAfter.toISOString()}. ${replace}`,
    });
  } else if (notBefore.getTime() > now.getTime()) {
    problems.push({
      field: 'certificatePath',
      message: `${named} is not valid before ${notBefore.toISOString()}. Check the system clock, or wait until then.`,
    });
  }
  if (problems.length > 0) return { ok: false, problems };

  const warnings: string[] = [];
  const daysLeft = Math.ceil((notAfter.getTime() - now.getTime()) / DAY_MS);
  if (daysLeft <= CERTIFICATE_EXPIRY_WARNING_DAYS) {
    warnings.push(
      `${named} expires on ${notAfter.toISOString()}, in ${daysLeft} day${daysLeft === 1 ? '' : 's'}. ${replace}`,
    );
  }

  const others = material.certificates.filter((certificate) => certificate !== leaf);
  const credential: CertificateCredential = {
    kind: 'certificate',
    path,
    privateKey: new Secret(key.export({ type: 'pkcs8', format: 'pem' }).toString()),
    certificatePem: leaf.toString(),
    chainPem: [leaf, ...others].map((certificate) => certificate.toString()),
    thumbprintSha256,
    thumbprintSha1,
    subject: oneLine(leaf.subject),
    notBefore,
    notAfter,
    keyBits,
    sendCertificateChain: options.sendCertificateChain ?? false,
  };
  return { ok: true, credential, warnings };
}

function matches(certificate: X509Certificate, key: KeyObject): boolean {
  try {
    return certificate.checkPrivateKey(key);
  } catch {
    return false;
  }
}

function describeKeyType(key: KeyObject): string {
  switch (key.asymmetricKeyType) {
    case 'ec':
      return 'an elliptic-curve (EC) key';
    case 'rsa-pss':
      return 'an RSA-PSS-only key';
    case 'ed25519':
    case 'ed448':
      return `an ${key.asymmetricKeyType.toUpperCase()} key`;
    default:
      return `a ${key.asymmetricKeyType ?? 'unknown'} key`;
  }
}

/** Node gives subjects one attribute per line. */
function oneLine(subject: string): string {
  return subject.split('\n').filter(Boolean).join(', ');
}

function derOf(forge: typeof import('node-forge'), asn1: forge.asn1.Asn1): Buffer {
  return Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary');
}

/** OpenSSL's reason, e.g. `unsupported`; it names algorithms, never key material. */
function opensslReason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('::').pop() || 'unknown format';
}

function refuse(field: string, message: string): { ok: false; problems: ConfigProblem[] } {
  return { ok: false, problems: [{ field, message }] };
}
