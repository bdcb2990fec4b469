/**
 * The sandbox's own throwaway CA, kept under its folder so that the file a
 * user's shell points at (MAILBRIDGE_CA_FILE, NODE_EXTRA_CA_CERTS) stays valid
 * across restarts. Its key never leaves that folder (mode 0600).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTestCa, type Issued } from './pki.js';

export interface SandboxCa {
  ca: Issued;
  /** The CA certificate alone. */
  certificatePath: string;
  /**
   * The CA certificate after what NODE_EXTRA_CA_CERTS held when the sandbox
   * started (on some machines the CA that reaches the package registry):
   * pointing NODE_EXTRA_CA_CERTS here trusts both.
   */
  nodeExtraCaPath: string;
}

export function loadOrCreateSandboxCa(dir: string, presetExtraCa: string | undefined): SandboxCa {
  const folder = join(dir, 'ca');
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  const certificatePath = join(folder, 'ca.pem');
  const keyPath = join(folder, 'ca-key.pem');
  let ca: Issued;
  if (existsSync(certificatePath) && existsSync(keyPath)) {
    ca = {
      certificatePem: readFileSync(certificatePath, 'utf8'),
      keys: { privateKeyPem: readFileSync(keyPath, 'utf8'), publicKeyPem: '' },
    };
  } else {
    ca = createTestCa(`mailbridge sandbox CA ${new Date().toISOString()}`);
    writeFileSync(keyPath, ca.keys.privateKeyPem, { mode: 0o600 });
    writeFileSync(certificatePath, ca.certificatePem, { mode: 0o644 });
  }
  const nodeExtraCaPath = join(folder, 'node-extra-ca.pem');
  const preset =
    presetExtraCa && presetExtraCa !== nodeExtraCaPath && existsSync(presetExtraCa)
      ? readFileSync(presetExtraCa, 'utf8')
      : '';
  writeFileSync(nodeExtraCaPath, `${preset.trimEnd()}\n${ca.certificatePem}`.trimStart(), {
    mode: 0o644,
  });
  return { ca, certificatePath, nodeExtraCaPath };
}
