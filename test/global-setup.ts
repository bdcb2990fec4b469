/**
 * Runs once in the main vitest process before any worker is forked. Creates
 * the run's throwaway CA and exports it through the environment: vitest 4.1
 * builds each forked worker's environment from the main process's
 * `process.env` when it starts the tests (after global setup), and Node reads
 * NODE_EXTRA_CA_CERTS only at process start, so it must be set here, before
 * the fork, not inside a test. Child processes spawned by tests inherit it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCa } from './helpers/pki.js';
import { CA_CERT_FILE, CA_KEY_FILE, PRESET_CA_ENV, TEST_CA_DIR_ENV } from './helpers/test-ca.js';

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'mailbridge-test-ca-'));
  const ca = createTestCa(`mailbridge test CA ${new Date().toISOString()}`);
  const caPath = join(dir, CA_CERT_FILE);
  writeFileSync(caPath, ca.certificatePem, { mode: 0o644 });
  writeFileSync(join(dir, CA_KEY_FILE), ca.keys.privateKeyPem, { mode: 0o600 });

  const previous = {
    NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS,
    [TEST_CA_DIR_ENV]: process.env[TEST_CA_DIR_ENV],
    [PRESET_CA_ENV]: process.env[PRESET_CA_ENV],
  };
  if (previous.NODE_EXTRA_CA_CERTS !== undefined) {
    process.env[PRESET_CA_ENV] = previous.NODE_EXTRA_CA_CERTS;
  }
  process.env.NODE_EXTRA_CA_CERTS = caPath;
  process.env[TEST_CA_DIR_ENV] = dir;

  return () => {
    restoreEnv(previous);
    rmSync(dir, { recursive: true, force: true });
  };
}

/** Watch mode re-runs setup; leave the main process as we found it. */
function restoreEnv(values: Record<string, string | undefined>): void {
  for (const [name, value] of Object.entries(values)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
}
