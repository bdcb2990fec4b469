/**
 * `mailbridge token`, `xoauth2`, help and exit codes, run as a child process
 * against the local token service.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { issueCertificate } from '../helpers/pki.js';
import { runCli } from '../helpers/run-cli.js';
import { runCliInProcess } from '../helpers/run-cli-in-process.js';
import { startTokenService, type TokenService } from '../helpers/token-service.js';

const EXCHANGE = 'https://outlook.office365.com';
const DAY = 86_400_000;

let service: TokenService;
let dir: string;
let env: Record<string, string>;
let clientId: string;

beforeAll(async () => {
  service = await startTokenService();
  dir = await mkdtemp(join(tmpdir(), 'mailbridge-cli-'));
  const app = service.registerApp({
    roles: { [EXCHANGE]: ['IMAP.AccessAsApp', 'SMTP.SendAsApp'] },
  });
  clientId = app.clientId;
  env = {
    AZURE_TENANT_ID: app.tenantId,
    AZURE_CLIENT_ID: app.clientId,
    AZURE_CLIENT_SECRET: app.secret ?? '',
    AZURE_AUTHORITY_HOST: service.url,
  };
});

afterAll(async () => {
  await service.close();
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  service.clearFaults();
});

describe('help and usage', () => {
  it('prints the version', async () => {
    const { code, stdout } = await runCli(['--version']);
    expect(code).toBe(0);
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('lists the commands with --help and exits 0; with no arguments exits 2', async () => {
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('token');
    expect(help.stdout).toContain('xoauth2');
    expect((await runCli([])).code).toBe(2);
  });

  it('documents flags and environment in each command help', async () => {
    const { code, stdout } = await runCliInProcess(['token', '--help']);
    expect(code).toBe(0);
    for (const text of [
      '--json',
      '--show-token',
      '--config',
      'AZURE_CLIENT_SECRET',
      'MAILBRIDGE_CLOUD',
    ]) {
      expect(stdout).toContain(text);
    }
  });

  it('refuses an unknown command or flag with exit 2', async () => {
    const unknown = await runCliInProcess(['tokn']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'tokn'");
    const flag = await runCliInProcess(['token', '--jsn']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('USAGE');
  });

  it('refuses a secret on the command line without echoing it', async () => {
    const { code, stderr, stdout } = await runCliInProcess([
      'token',
      '--client-secret',
      'Cmd~Line~Secret~123',
    ]);
    expect(code).toBe(2);
    expect(stderr).toContain('AZURE_CLIENT_SECRET');
    expect(stderr + stdout).not.toContain('Cmd~Line~Secret~123');
  });
});

describe('mailbridge token', () => {
  it('prints tenant, app id, roles and expiry', async () => {
    const { code, stdout, stderr } = await runCli(['token'], env);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toContain(service.tenantId);
    expect(stdout).toContain(clientId);
    expect(stdout).toContain('IMAP.AccessAsApp, SMTP.SendAsApp');
    expect(stdout).toMatch(/expires: +\d{4}-\d\d-\d\dT/);
  });

  it('--json prints exactly the documented fields', async () => {
    const { code, stdout } = await runCli(['token', '--json'], env);
    expect(code).toBe(0);
    const parsed = JSON.parse(stdout) as Record<string, unknown>;
    expect(Object.keys(parsed).sort()).toEqual([
      'appId',
      'expiresOn',
      'roles',
      'scope',
      'tenantId',
    ]);
    expect(parsed.roles).toEqual(['IMAP.AccessAsApp', 'SMTP.SendAsApp']);
    expect(parsed.scope).toBe(`${EXCHANGE}/.default`);
    expect(Date.parse(parsed.expiresOn as string)).toBeGreaterThan(Date.now());
  });

  it('--show-token prints the token alone', async () => {
    const { code, stdout } = await runCli(['token', '--show-token'], env);
    expect(code).toBe(0);
    const lines = stdout.split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toBe('');
    expect(service.verifyAccessToken(lines[0] ?? '').appid).toBe(clientId);
  });

  it('shows no roles as such', async () => {
    const app = service.registerApp();
    const { code, stdout } = await runCli(['token'], {
      ...env,
      AZURE_CLIENT_ID: app.clientId,
      AZURE_CLIENT_SECRET: app.secret ?? '',
    });
    expect(code).toBe(0);
    expect(stdout).toContain('(none: no application permissions granted)');
  });

  it('flags win over the environment, which wins over the config file', async () => {
    const file = join(dir, 'mailbridge.yaml');
    await writeFile(
      file,
      [
        `tenantId: 00000000-1111-4222-8333-444444444444`,
        `clientId: ${clientId}`,
        `authorityHost: ${service.url}`,
      ].join('\n'),
    );
    const fromFile = await runCli(['token', '--json', '--config', file], {
      AZURE_CLIENT_SECRET: env.AZURE_CLIENT_SECRET ?? '',
    });
    expect(fromFile.code).toBe(2); // the file's tenant does not exist
    const flagged = await runCli(
      ['token', '--json', '--config', file, '--tenant-id', service.tenantId],
      {
        AZURE_CLIENT_SECRET: env.AZURE_CLIENT_SECRET ?? '',
        AZURE_TENANT_ID: '00000000-5555-4666-8777-888888888888',
      },
    );
    expect(flagged.code).toBe(0);
    expect(JSON.parse(flagged.stdout).tenantId).toBe(service.tenantId);
  });

  it('warns on stderr when the certificate expires within 30 days, and still works', async () => {
    const cert = issueCertificate({
      commonName: 'expiring',
      notAfter: new Date(Date.now() + 10 * DAY),
    });
    const app = service.registerApp({ certificates: [cert.certificatePem] });
    const path = join(dir, 'expiring.pem');
    await writeFile(path, `${cert.keys.privateKeyPem}${cert.certificatePem}`);
    const { code, stderr } = await runCli(['token', '--json'], {
      AZURE_TENANT_ID: app.tenantId,
      AZURE_CLIENT_ID: app.clientId,
      AZURE_CLIENT_CERTIFICATE_PATH: path,
      AZURE_AUTHORITY_HOST: service.url,
    });
    expect(code).toBe(0);
    expect(stderr).toMatch(/warning: .*expires/i);
    expect(stderr).toContain(new Date(Date.now() + 10 * DAY).toISOString().slice(0, 10));
  });
});

describe('exit codes', () => {
  it('3 with the code and remedy when the secret is wrong', async () => {
    const { code, stderr } = await runCli(['token'], {
      ...env,
      AZURE_CLIENT_SECRET: 'Wrong~Secret',
    });
    expect(code).toBe(3);
    expect(stderr).toContain('SECRET_INVALID');
    expect(stderr).toContain('AADSTS7000215');
    expect(stderr).toMatch(/trace id: [0-9a-f-]{36}/i);
    expect(stderr).not.toMatch(/\n\s+at /); // no stack trace without --debug
  });

  it('prints a JSON error on stdout with --json', async () => {
    const { code, stdout } = await runCli(['token', '--json'], {
      ...env,
      AZURE_CLIENT_SECRET: 'Wrong~Secret',
    });
    expect(code).toBe(3);
    const parsed = JSON.parse(stdout) as { ok: boolean; error: { code: string; remedy: string } };
    expect(parsed.ok).toBe(false);
    expect(parsed.error.code).toBe('SECRET_INVALID');
    expect(parsed.error.remedy).toBeTruthy();
  });

  it('2 for a configuration problem, naming every field', async () => {
    const { code, stderr } = await runCliInProcess(['token'], {
      AZURE_TENANT_ID: 'common',
      MAILBRIDGE_SCOPE: 'https://graph.microsoft.com/.default',
    });
    expect(code).toBe(2);
    expect(stderr).toContain('CONFIG_INVALID');
    expect(stderr).toContain('tenantId');
    expect(stderr).toContain('clientId');
    expect(stderr).toContain('credential');
    expect(stderr).toMatch(/scope: .*Graph/);
  });

  it('2 for an unknown tenant', async () => {
    const { code, stderr } = await runCli(['token'], {
      ...env,
      AZURE_TENANT_ID: '99999999-8888-4777-8666-555555555555',
    });
    expect(code).toBe(2);
    expect(stderr).toContain('TENANT_NOT_FOUND');
  });

  it('4 when the authority cannot be reached', async () => {
    const { code, stderr } = await runCli(['token'], {
      ...env,
      AZURE_AUTHORITY_HOST: 'https://127.0.0.1:9',
    });
    expect(code).toBe(4);
    expect(stderr).toContain('AUTHORITY_UNREACHABLE');
  });

  it('4 when Entra keeps failing', async () => {
    service.failNext(20, { status: 503 });
    const { code, stderr } = await runCli(['token'], env, { timeoutMs: 90_000 });
    expect(code).toBe(4);
    expect(stderr).toContain('ENTRA_UNAVAILABLE');
  }, 90_000);
});

describe('mailbridge xoauth2', () => {
  it('prints the XOAUTH2 string for the mailbox', async () => {
    const { code, stdout } = await runCli(['xoauth2', '--user', 'archive@contoso.example'], env);
    expect(code).toBe(0);
    const decoded = Buffer.from(stdout.trim(), 'base64').toString('utf8');
    const fields = decoded.split('\u0001');
    expect(fields[0]).toBe('user=archive@contoso.example');
    expect(fields.slice(2)).toEqual(['', '']);
    expect(fields[1]?.startsWith('auth=Bearer ')).toBe(true);
    expect(service.verifyAccessToken(fields[1]?.slice('auth=Bearer '.length) ?? '').appid).toBe(
      clientId,
    );
  });

  it('refuses a missing or unsafe user with exit 2', async () => {
    expect((await runCliInProcess(['xoauth2'], env)).code).toBe(2);
    const injected = await runCliInProcess(['xoauth2', '--user', 'a@b.example\u0001auth=x'], env);
    expect(injected.code).toBe(2);
    // Refused as a flag value before any SASL string is built (the library's own check is SASL_INVALID_INPUT).
    expect(injected.stderr).toContain(
      "USAGE: --user 'a@b.example\\x01auth=x' is not a mail address",
    );
  });
});
