/**
 * `mailbridge doctor` against the real test Dovecot and SMTP submission
 * (smtp-server in this process: nothing here is about Postfix): its advice
 * when Exchange's side refuses a login that the token's claims allow, and the
 * caFile setting on the IMAP and SMTP connections. The caFile runs are child
 * processes (Node reads NODE_EXTRA_CA_CERTS at start); the advice runs go
 * through the CLI's entry in this process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appEnvironment } from '../helpers/app-env.js';
import { type ImapFaultProxy, startImapFaultProxy } from '../helpers/imap-fault-proxy.js';
import {
  EXCHANGE_AUDIENCE,
  IMAP_ROLE,
  type MailServers,
  SMTP_ROLE,
  startMailServers,
} from '../helpers/mail-servers.js';
import { runCli } from '../helpers/run-cli.js';
import { runCliInProcess } from '../helpers/run-cli-in-process.js';
import { testCaPath } from '../helpers/test-ca.js';
import {
  type RegisteredApp,
  startTokenService,
  type TokenService,
} from '../helpers/token-service.js';

const GRANTED = 'shared@contoso.example';
const NOT_GRANTED = 'ceo@contoso.example';

let service: TokenService;
let servers: MailServers;
let app: RegisteredApp;
let env: Record<string, string>;

beforeAll(async () => {
  service = await startTokenService();
  servers = await startMailServers({ tokenService: service, submission: 'node' });
  app = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE, SMTP_ROLE] } });
  await servers.grantMailbox(app.clientId, GRANTED);
  env = appEnvironment(service, app, { imap: servers.imap, smtp: servers.smtp });
}, 60_000);

afterAll(async () => {
  await servers?.stop();
  await service?.close();
});

describe('a refused IMAP login after the claims passed', () => {
  it('leads with the Exchange side and prints the setup command once, with the values doctor knows', async () => {
    const { code, stdout } = await runCliInProcess(
      ['doctor', '--mailbox', NOT_GRANTED, '--imap'],
      env,
    );
    expect(code).toBe(3);
    expect(stdout).toMatch(/\[ok\] +token claims +aud https:\/\/outlook\.office365\.com/);
    expect(stdout).toMatch(/\[FAIL\] imap authenticate +IMAP_AUTH_FAILED: Exchange Online refused/);
    const causes = /Likely causes: \(1\) ([^;]+);/.exec(stdout)?.[1] ?? '';
    expect(causes).toContain(`Exchange has no service principal for app ${app.clientId}`);
    expect(stdout).not.toContain('Microsoft Graph');
    expect(stdout).toContain(`no FullAccess on ${NOT_GRANTED}`);
    const command = `mailbridge setup exchange --tenant ${app.tenantId} --app-id ${app.clientId} --object-id ${app.servicePrincipalId} --mailbox ${NOT_GRANTED} --out setup-exchange.ps1`;
    expect(stdout).toContain(command);
    expect(stdout).toContain("The object id is the token's oid claim");
    // The advice once, on the fix: line, not again at the end of the detail.
    expect(stdout.split('Write the Exchange setup script').length - 1).toBe(1);
    expect(stdout).toMatch(/\n {7}fix: Write the Exchange setup script/);
  });

  it('--json carries the same advice once, in fix', async () => {
    const { code, stdout } = await runCliInProcess(
      ['doctor', '--mailbox', NOT_GRANTED, '--imap', '--json'],
      env,
    );
    expect(code).toBe(3);
    const report = JSON.parse(stdout) as {
      steps: { name: string; detail?: string; fix?: string }[];
    };
    const failed = report.steps.find((step) => step.name === 'imap authenticate');
    expect(failed?.fix).toContain('mailbridge setup exchange');
    expect(failed?.detail).not.toContain('mailbridge setup exchange');
  });
});

describe('"authenticated but not connected" after the login passed', () => {
  let proxy: ImapFaultProxy;
  beforeAll(async () => {
    proxy = await startImapFaultProxy(servers.imap);
  });
  afterAll(async () => {
    await proxy?.close();
  });

  it('leads with what the earlier steps left: FullAccess on this mailbox, then time, other connections, IMAP off', async () => {
    proxy.refuseNext(1, 'BAD User is authenticated but not connected.', /\bLIST\b/i);
    const { code, stdout } = await runCliInProcess(['doctor', '--mailbox', GRANTED, '--imap'], {
      ...env,
      MAILBRIDGE_IMAP_PORT: String(proxy.port),
    });
    expect(code).toBe(3);
    expect(stdout).toMatch(/\[ok\] +imap authenticate/);
    expect(stdout).toMatch(
      /\[FAIL\] imap list and select +IMAP_NOT_CONNECTED: Exchange Online accepted the IMAP login of app/,
    );
    const causes = /Likely causes: (.*)\./.exec(stdout)?.[1] ?? '';
    const order = [
      `no FullAccess on ${GRANTED}`,
      'younger than about 30 minutes',
      'other programs hold too many IMAP connections',
      'IMAP is disabled',
    ].map((text) => causes.indexOf(text));
    expect(order.every((at) => at >= 0)).toBe(true);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(stdout).toContain(
      `mailbridge setup exchange --tenant ${app.tenantId} --app-id ${app.clientId} --object-id ${app.servicePrincipalId} --mailbox ${GRANTED} --out setup-exchange.ps1`,
    );
  });
});

describe('caFile on the IMAP and SMTP connections', () => {
  it('passes every step with the test CA only in --ca-file, not in NODE_EXTRA_CA_CERTS', async () => {
    const noNodeTrust = { ...env, NODE_EXTRA_CA_CERTS: '' };
    const without = await runCli(['doctor', '--mailbox', GRANTED], noNodeTrust);
    expect(without.code).toBe(4);
    const { code, stdout } = await runCli(
      ['doctor', '--mailbox', GRANTED, '--ca-file', testCaPath()],
      noNodeTrust,
      { timeoutMs: 40_000 },
    );
    expect(stdout).toContain('Result: all checks passed');
    for (const step of ['imap connect', 'imap authenticate', 'smtp connect', 'smtp auth']) {
      expect(stdout).toMatch(new RegExp(`\\[ok\\] +${step}`));
    }
    expect(code).toBe(0);
  }, 60_000);
});
