/**
 * Reads the caFile setting: PEM CA certificates to trust besides Node's
 * default ones. Node has no way to add to its default store after start-up
 * (NODE_EXTRA_CA_CERTS is read once, at process start) and a TLS `ca` option
 * replaces the store, so the certificates are read here and listed together
 * with the default ones where connections are made (util/tls.ts).
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { describeFsError } from './file.js';

/** A CA bundle is a few hundred KB at most (the whole Mozilla store is about 220 KB). */
const MAX_CA_FILE_BYTES = 4 * 1024 * 1024;

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export type CaFileResult = { certificates: string[] } | { problem: string };

/** The certificates of a PEM file, each checked to parse; a problem sentence otherwise. */
export async function readCaFile(path: string): Promise<CaFileResult> {
  let text: string;
  try {
    const data = await readFile(path);
    if (data.length > MAX_CA_FILE_BYTES) {
      return { problem: `it is ${data.length} bytes long, too large for a CA bundle` };
    }
    text = data.toString('utf8');
  } catch (error) {
    return { problem: `it cannot be read: ${describeFsError(error)}` };
  }
  const certificates = text.match(PEM_CERTIFICATE) ?? [];
  if (certificates.length === 0) {
    return {
      problem:
        'it holds no PEM certificate (-----BEGIN CERTIFICATE-----); convert a DER file with `openssl x509 -inform der -in ca.cer -out ca.pem`',
    };
  }
  for (const [index, pem] of certificates.entries()) {
    try {
      new X509Certificate(pem);
    } catch {
      return { problem: `its certificate number ${index + 1} cannot be parsed` };
    }
  }
  return { certificates };
}

/**
 * The certificates of NODE_EXTRA_CA_CERTS, which a `ca` option would drop;
 * none when it cannot be read (Node itself warned about that at start-up).
 */
export async function readNodeExtraCaCerts(path: string | undefined): Promise<string[]> {
  if (!path) return [];
  const result = await readCaFile(path);
  return 'certificates' in result ? result.certificates : [];
}
