/**
 * Throwaway X.509 material for tests: a CA, server certificates for the local
 * services, and client certificates of every shape a user may bring (PEM,
 * encrypted PEM, PFX, short keys, expired, mismatched).
 */
import {
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  randomBytes,
  X509Certificate,
} from 'node:crypto';
import forge from 'node-forge';

export interface KeyPair {
  /** PKCS#8 PEM */
  privateKeyPem: string;
  publicKeyPem: string;
}

export interface Issued {
  keys: KeyPair;
  certificatePem: string;
}

export function generateRsaKeyPair(bits = 2048): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: bits,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

export interface CertificateOptions {
  commonName: string;
  keys?: KeyPair;
  keyBits?: number;
  /** Signs with this issuer; self-signed when absent. */
  issuer?: Issued;
  isCa?: boolean;
  /** DNS names and IP addresses for the subjectAltName extension. */
  dnsNames?: string[];
  ipAddresses?: string[];
  notBefore?: Date;
  notAfter?: Date;
}

export function issueCertificate(options: CertificateOptions): Issued {
  const keys = options.keys ?? generateRsaKeyPair(options.keyBits ?? 2048);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicKeyPem);
  cert.serialNumber = `01${randomBytes(12).toString('hex')}`;
  const now = Date.now();
  cert.validity.notBefore = options.notBefore ?? new Date(now - 60_000);
  cert.validity.notAfter = options.notAfter ?? new Date(now + 365 * 86_400_000);
  const subject = [{ name: 'commonName', value: options.commonName }];
  cert.setSubject(subject);
  const issuerCert = options.issuer
    ? forge.pki.certificateFromPem(options.issuer.certificatePem)
    : undefined;
  cert.setIssuer(issuerCert ? issuerCert.subject.attributes : subject);
  const extensions: object[] = [
    { name: 'basicConstraints', cA: options.isCa === true, critical: options.isCa === true },
    options.isCa
      ? { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true }
      : { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
    { name: 'subjectKeyIdentifier' },
  ];
  const altNames = [
    ...(options.dnsNames ?? []).map((value) => ({ type: 2, value })),
    ...(options.ipAddresses ?? []).map((ip) => ({ type: 7, ip })),
  ];
  if (altNames.length > 0) extensions.push({ name: 'subjectAltName', altNames });
  if (!options.isCa && altNames.length > 0) {
    extensions.push({ name: 'extKeyUsage', serverAuth: true, clientAuth: true });
  }
  cert.setExtensions(extensions);
  const signingKeyPem = options.issuer ? options.issuer.keys.privateKeyPem : keys.privateKeyPem;
  cert.sign(forge.pki.privateKeyFromPem(toPkcs1(signingKeyPem)), forge.md.sha256.create());
  return { keys, certificatePem: forge.pki.certificateToPem(cert) };
}

/** A test CA and a certificate for 127.0.0.1/localhost signed by it. */
export function createTestCa(commonName = 'mailbridge test CA'): Issued {
  return issueCertificate({ commonName, isCa: true, keyBits: 2048 });
}

let serverKeys: KeyPair | undefined;

/**
 * Every server of a test process shares one key pair (each certificate is
 * still its own): a 2048-bit RSA key costs a tenth of a second of CPU or more,
 * and a test file starts several servers.
 */
export function issueServerCertificate(ca: Issued, commonName = 'localhost'): Issued {
  serverKeys ??= generateRsaKeyPair();
  return issueCertificate({
    commonName,
    keys: serverKeys,
    issuer: ca,
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1', '::1'],
  });
}

/** PKCS#8 PEM encrypted with a password (AES-256-CBC), as `openssl pkcs8 -topk8` writes it. */
export function encryptPrivateKey(privateKeyPem: string, password: string): string {
  return createPrivateKey(privateKeyPem)
    .export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: password })
    .toString();
}

/** A PFX/P12 file holding the key and the certificate chain. */
export function toPfx(issued: Issued, password: string, chain: string[] = []): Buffer {
  const key = forge.pki.privateKeyFromPem(toPkcs1(issued.keys.privateKeyPem));
  const certs = [issued.certificatePem, ...chain].map((pem) => forge.pki.certificateFromPem(pem));
  const asn1 = forge.pkcs12.toPkcs12Asn1(key, certs, password, { algorithm: '3des' });
  return Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary');
}

/** forge reads PKCS#1 (`RSA PRIVATE KEY`) most reliably. */
function toPkcs1(privateKeyPem: string): string {
  return createPrivateKey(privateKeyPem).export({ type: 'pkcs1', format: 'pem' }).toString();
}

/**
 * Hex thumbprint of a certificate's DER bytes, as the Azure portal shows it
 * (uppercase, no separators): SHA-1 for `x5t`, SHA-256 for `x5t#S256`.
 */
export function certificateThumbprint(
  certificatePem: string,
  algorithm: 'sha1' | 'sha256' = 'sha256',
): string {
  const der = new X509Certificate(certificatePem).raw;
  return createHash(algorithm).update(der).digest('hex').toUpperCase();
}
