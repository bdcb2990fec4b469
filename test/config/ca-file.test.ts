/**
 * caFile (MAILBRIDGE_CA_FILE, --ca-file): a CA to trust besides Node's
 * default ones, for a site that cannot set NODE_EXTRA_CA_CERTS. The children
 * here run WITHOUT NODE_EXTRA_CA_CERTS naming the test CA, so the token
 * service is trusted only through caFile.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trustOptions } from '../../src/util/tls.js';
import { appEnvironment } from '../helpers/app-env.js';
import { createTestCa } from '../helpers/pki.js';
import { runCli } from '../helpers/run-cli.js';
import { testCaPath } from '../helpers/test-ca.js';
import { startTokenService, type TokenService } from '../helpers/token-service.js';

let service: TokenService;
let dir: string;
let env: Record<string, string>;
/** A CA that signed nothing here. */
let otherCaPath: string;

beforeAll(async () => {
  service = await startTokenService();
  dir = await mkdtemp(join(tmpdir(), 'mailbridge-ca-file-'));
  const app = service.registerApp();
  env = {
    ...appEnvironment(service, app),
    // Node's own way of trusting the test CA is switched off for these children.
    NODE_EXTRA_CA_CERTS: '',
  };
  otherCaPath = join(dir, 'other-ca.pem');
  await writeFile(otherCaPath, createTestCa('another private CA').certificatePem);
});

afterAll(async () => {
  await service.close();
  await rm(dir, { recursive: true, force: true });
});

describe('caFile for the token requests', () => {
  it('without it (and without NODE_EXTRA_CA_CERTS) the token service is not trusted', async () => {
    const { code, stderr } = await runCli(['token'], env);
    expect(code).toBe(4);
    expect(stderr).toContain('TLS_CERTIFICATE_UNTRUSTED');
    expect(stderr).toContain('caFile (MAILBRIDGE_CA_FILE, --ca-file)');
  });

  it('trusts the CA named in the config file, a path relative to the file', async () => {
    await writeFile(join(dir, 'ca.pem'), await readFile(testCaPath()));
    const file = join(dir, 'mailbridge.yaml');
    await writeFile(file, 'caFile: ca.pem\n');
    const { code, stdout, stderr } = await runCli(['token', '--config', file], env);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toContain('Token acquired');
  });

  it('takes MAILBRIDGE_CA_FILE and --ca-file as well', async () => {
    const fromEnv = await runCli(['token'], { ...env, MAILBRIDGE_CA_FILE: testCaPath() });
    expect(fromEnv.code).toBe(0);
    const fromFlag = await runCli(['token', '--ca-file', testCaPath()], env);
    expect(fromFlag.code).toBe(0);
  });

  it('adds to NODE_EXTRA_CA_CERTS instead of replacing it', async () => {
    const { code, stderr } = await runCli(['token', '--ca-file', otherCaPath], {
      ...env,
      NODE_EXTRA_CA_CERTS: testCaPath(),
    });
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });

  it("adds to Node's bundled CAs instead of replacing them", () => {
    const extra = ['-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n'];
    const { ca } = trustOptions(extra);
    expect(ca).toEqual(expect.arrayContaining([...rootCertificates, ...extra]));
    expect(trustOptions(undefined)).toEqual({});
  });
});

describe('refused caFile values', () => {
  it('a missing file is a configuration problem naming the setting, exit 2', async () => {
    const { code, stderr } = await runCli(['token', '--ca-file', join(dir, 'nope.pem')], env);
    expect(code).toBe(2);
    expect(stderr).toContain('caFile');
    expect(stderr).toContain('no such file (ENOENT)');
  });

  it('a file without a PEM certificate is refused with the conversion to use', async () => {
    const der = join(dir, 'ca.cer');
    await writeFile(der, Buffer.from([0x30, 0x82, 0x01, 0x0a]));
    const { code, stderr } = await runCli(['token'], { ...env, MAILBRIDGE_CA_FILE: der });
    expect(code).toBe(2);
    expect(stderr).toContain('caFile (MAILBRIDGE_CA_FILE)');
    expect(stderr).toContain('holds no PEM certificate');
    expect(stderr).toContain('openssl x509 -inform der');
  });
});
