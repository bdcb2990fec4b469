/**
 * IMAP with a managed identity's token, end to end: the CLI gets the token
 * from an App Service-style identity endpoint (which asks the local token
 * service), and Dovecot accepts it as Exchange would, for a mailbox granted
 * to the identity's service principal.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type IdentityEndpoint, startIdentityEndpoint } from '../helpers/identity-endpoint.js';
import {
  EXCHANGE_AUDIENCE,
  IMAP_ROLE,
  type MailServers,
  startMailServers,
} from '../helpers/mail-servers.js';
import { runCli } from '../helpers/run-cli.js';
import {
  type RegisteredApp,
  startTokenService,
  type TokenService,
} from '../helpers/token-service.js';

const MAILBOX = 'shared@contoso.example';

let service: TokenService;
let servers: MailServers;
let endpoint: IdentityEndpoint;
let identity: RegisteredApp;
let env: Record<string, string>;

beforeAll(async () => {
  service = await startTokenService();
  // Only IMAP here: SMTP submission by this process, not Postfix (about 1.3 s of CPU a start).
  servers = await startMailServers({ tokenService: service, submission: 'node' });
  identity = service.registerApp({
    displayName: 'vm-system-identity',
    roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE] },
  });
  endpoint = await startIdentityEndpoint({ tokenService: service, systemAssigned: identity });
  await servers.grantMailbox(identity.clientId, MAILBOX);
  env = {
    ...endpoint.environment(),
    AZURE_TENANT_ID: service.tenantId,
    MAILBRIDGE_CREDENTIAL: 'managed-identity',
    MAILBRIDGE_IMAP_HOST: servers.imap.host,
    MAILBRIDGE_IMAP_PORT: String(servers.imap.port),
  };
}, 60_000);

afterAll(async () => {
  await endpoint?.close();
  await servers?.stop();
  await service?.close();
});

describe('IMAP with a managed identity', () => {
  it('lists the folders of a mailbox granted to the identity (imap folders)', async () => {
    const before = endpoint.requests.length;
    const { code, stdout, stderr } = await runCli(
      ['imap', 'folders', '--mailbox', MAILBOX, '--json'],
      env,
    );
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const folders = JSON.parse(stdout) as { path: string }[];
    expect(folders.map((folder) => folder.path)).toContain('INBOX');
    expect(endpoint.requests.length - before).toBe(1);
  });

  it('doctor names the source, the roles and the ids to register with New-ServicePrincipal', async () => {
    const { code, stdout } = await runCli(
      ['doctor', '--mailbox', MAILBOX, '--imap', '--json'],
      env,
    );
    const report = JSON.parse(stdout) as {
      ok: boolean;
      steps: { name: string; status: string; detail?: string }[];
    };
    expect(report.ok).toBe(true);
    expect(code).toBe(0);
    const detail = (name: string) => report.steps.find((step) => step.name === name)?.detail;
    expect(detail('configuration')).toContain(
      'app system-assigned, managed-identity via App Service',
    );
    const claims = detail('token claims');
    expect(claims).toContain(`roles ${IMAP_ROLE}`);
    expect(claims).toContain(
      `New-ServicePrincipal -AppId ${identity.clientId} -ObjectId ${identity.servicePrincipalId}`,
    );
  });
});
