/**
 * The one throwaway CA of a test run, created by test/global-setup.ts. Test
 * servers get their certificates from it; clients trust it only through
 * NODE_EXTRA_CA_CERTS, exactly as a user behind a private CA would.
 */
import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Issued } from './pki.js';

/** Test-only: read by test helpers, never by the product. */
export const TEST_CA_DIR_ENV = 'MAILBRIDGE_TEST_CA_DIR';
/**
 * NODE_EXTRA_CA_CERTS as the machine had it before the test CA replaced it:
 * what a child that reaches the package registry (npm) needs.
 */
export const PRESET_CA_ENV = 'MAILBRIDGE_TEST_PRESET_NODE_EXTRA_CA_CERTS';
export const CA_CERT_FILE = 'ca.pem';
export const CA_KEY_FILE = 'ca-key.pem';

export function testCaDir(): string {
  const dir = process.env[TEST_CA_DIR_ENV];
  if (!dir) {
    throw new Error(
      `${TEST_CA_DIR_ENV} is not set: the test CA is created by test/global-setup.ts, ` +
        'so run tests through vitest with vitest.config.ts (npx vitest), not the test file alone.',
    );
  }
  return dir;
}

/** Path of the CA certificate PEM (what NODE_EXTRA_CA_CERTS points at). */
export function testCaPath(): string {
  return join(testCaDir(), CA_CERT_FILE);
}

let cached: Issued | undefined;

export function loadTestCa(): Issued {
  if (cached) return cached;
  const dir = testCaDir();
  const certificatePem = readFileSync(join(dir, CA_CERT_FILE), 'utf8');
  const privateKeyPem = readFileSync(join(dir, CA_KEY_FILE), 'utf8');
  const publicKeyPem = createPublicKey(privateKeyPem).export({ type: 'spki', format: 'pem' });
  cached = { certificatePem, keys: { privateKeyPem, publicKeyPem: publicKeyPem.toString() } };
  return cached;
}
