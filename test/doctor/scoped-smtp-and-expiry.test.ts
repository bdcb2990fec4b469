/**
 * `mailbridge doctor --scoped-smtp` and the credential's end date, against the
 * real test Dovecot and Postfix: the tenant-wide SMTP.SendAsApp that defeats
 * an Exchange scope, the advice for a refusal under a scoped grant, and a
 * certificate that expires in 10 days (also in `token --json`). SMTP
 * submission is smtp-server in this process, refusing as Exchange does (535
 * 5.7.3 without SMTP.SendAsApp): nothing here is about Postfix. One run is a
 * child process; the others go through the CLI's entry in this process.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appEnvironment } from '../helpers/app-env.js';
import {
  EXCHANGE_AUDIENCE,
  IMAP_ROLE,
  type MailServers,
  SMTP_ROLE,
  startMailServers,
} from '../helpers/mail-servers.js';
import { issueCertificate } from '../helpers/pki.js';
import { runCli } from '../helpers/run-cli.js';
import { runCliInProcess } from '../helpers/run-cli-in-process.js';
import { startTokenService, type TokenService } from '../helpers/token-service.js';

const MAILBOX = 'shared@contoso.example';
const DAY = 86_400_000;

interface Report {
  ok: boolean;
  steps: { name: string; status: string; code?: string; fix?: string; warning?: string }[];
}

let service: TokenService;
let servers: MailServers;
let dir: string;

beforeAll(async () => {
  service = await startTokenService();
  servers = await startMailServers({ tokenService: service, submission: 'node' });
  dir = await mkdtemp(join(tmpdir(), 'mailbridge-doctor-'));
}, 60_000);

afterAll(async () => {
  await servers?.stop();
  await service?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function doctor(
  env: Record<string, string>,
  extra: string[],
): Promise<Report & { code: number | null; stdout: string }> {
  const { code, stdout } = await runCliInProcess(
    ['doctor', '--mailbox', MAILBOX, '--json', ...extra],
    env,
  );
  return { ...(JSON.parse(stdout) as Report), code, stdout };
}

describe('doctor --scoped-smtp', () => {
  it('warns that a token carrying the tenant-wide SMTP.SendAsApp defeats the scope', async () => {
    const app = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE, SMTP_ROLE] } });
    await servers.grantMailbox(app.clientId, MAILBOX);
    const env = appEnvironment(service, app, { imap: servers.imap, smtp: servers.smtp });
    const scoped = await doctor(env, ['--smtp', '--scoped-smtp']);
    expect(scoped.ok).toBe(true);
    const claims = scoped.steps.find((s) => s.name === 'token claims');
    expect(claims?.status).toBe('passed');
    expect(claims?.warning).toContain('tenant-wide');
    expect(claims?.warning).toContain('limits nothing');
    // Without --scoped-smtp the same role is what SMTP needs: no warning.
    const plain = await doctor(env, ['--smtp']);
    expect(plain.steps.find((s) => s.name === 'token claims')?.warning).toBeUndefined();
    // The text form prints it on its own line.
    const text = await runCli(['doctor', '--mailbox', MAILBOX, '--smtp', '--scoped-smtp'], env, {
      timeoutMs: 40_000,
    });
    expect(text.stdout).toMatch(/\n {7}warning: The token carries SMTP\.SendAsApp/);
  }, 90_000);

  it('does not ask for SMTP.SendAsApp in the token, and says a refusal may be the 30 minutes to 2 hours a scope takes', async () => {
    const app = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE] } });
    const env = appEnvironment(service, app, { imap: servers.imap, smtp: servers.smtp });
    const scoped = await doctor(env, ['--smtp', '--scoped-smtp']);
    expect(scoped.steps.find((s) => s.name === 'token claims')?.status).toBe('passed');
    const auth = scoped.steps.find((s) => s.name === 'smtp auth');
    expect(auth?.status).toBe('failed');
    expect(auth?.fix).toContain('30 minutes to 2 hours');
    expect(auth?.fix).toContain('Test-ServicePrincipalAuthorization');
    expect(scoped.code).toBe(3);
    // Without --scoped-smtp the missing role fails the claims step, as before.
    const plain = await doctor(env, ['--smtp']);
    expect(plain.steps.find((s) => s.name === 'token claims')?.code).toBe('TOKEN_ROLE_MISSING');
  }, 90_000);
});

describe('a certificate credential that expires in 10 days', () => {
  let env: Record<string, string>;
  let notAfter: Date;

  beforeAll(async () => {
    notAfter = new Date(Math.floor((Date.now() + 10 * DAY) / 1000) * 1000);
    const cert = issueCertificate({ commonName: 'expiring', notAfter });
    const app = service.registerApp({
      certificates: [cert.certificatePem],
      roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE, SMTP_ROLE] },
    });
    await servers.grantMailbox(app.clientId, MAILBOX);
    const path = join(dir, 'expiring.pem');
    await writeFile(path, `${cert.keys.privateKeyPem}${cert.certificatePem}`, { mode: 0o600 });
    const { AZURE_CLIENT_SECRET: _secret, ...rest } = appEnvironment(service, app, {
      imap: servers.imap,
      smtp: servers.smtp,
    });
    env = { ...rest, AZURE_CLIENT_CERTIFICATE_PATH: path };
  });

  it('token --json gives its end date as credentialExpiresOn', async () => {
    const { code, stdout } = await runCliInProcess(['token', '--json'], env);
    expect(code).toBe(0);
    expect(JSON.parse(stdout).credentialExpiresOn).toBe(notAfter.toISOString());
  });

  it('doctor passes with a warning that names the days left and what to do', async () => {
    const report = await doctor(env, ['--imap']);
    expect(report.ok).toBe(true);
    const configuration = report.steps.find((s) => s.name === 'configuration');
    expect(configuration?.warning).toMatch(/expires in 1[01] days/);
    expect(configuration?.warning).toContain(notAfter.toISOString());
    expect(configuration?.warning).toContain('mailbridge setup cert');
    expect(report.code).toBe(0);
  }, 60_000);

  it('a secret has no credentialExpiresOn: its end date is known to Entra only', async () => {
    const app = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE] } });
    const { stdout } = await runCliInProcess(['token', '--json'], appEnvironment(service, app));
    expect(JSON.parse(stdout)).not.toHaveProperty('credentialExpiresOn');
  });
});
