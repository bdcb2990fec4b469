/**
 * `archive --out` a container with no connection string: DefaultAzureCredential
 * (the real @azure/identity) finds the managed identity of an App Service
 * (IDENTITY_ENDPOINT, IDENTITY_HEADER; test/helpers/identity-endpoint.ts),
 * which gets its token from the token service standing in for Entra, and
 * Azurite (`--oauth basic`) accepts it. The same identity signs in to IMAP
 * (MAILBRIDGE_CREDENTIAL=managed-identity): one machine identity for both.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mailboxDirName } from '../../../src/jobs/archive/paths.js';
import { type Azurite, startAzurite } from '../../helpers/azurite.js';
import { type IdentityEndpoint, startIdentityEndpoint } from '../../helpers/identity-endpoint.js';
import { EXCHANGE_AUDIENCE, IMAP_ROLE } from '../../helpers/mail-servers.js';
import { runCli } from '../../helpers/run-cli.js';
import { type ArchiveTestEnv, plainMessage, startArchiveTestEnv } from './support.js';

const MAILBOX = 'identity@contoso.example';
const STORAGE = 'https://storage.azure.com';
const CONTAINER = 'by-identity';
const MESSAGES = 5;
const CLI_TIMEOUT = 120_000;

let env: ArchiveTestEnv;
let azurite: Azurite;
let endpoint: IdentityEndpoint;
let without: IdentityEndpoint;

beforeAll(async () => {
  [env, azurite] = await Promise.all([
    startArchiveTestEnv([MAILBOX]),
    startAzurite({ oauth: true }),
  ]);
  env.service.addResource(STORAGE);
  const identity = env.service.registerApp({
    displayName: 'app-service-system-identity',
    roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE] },
  });
  await env.servers.grantMailbox(identity.clientId, MAILBOX);
  endpoint = await startIdentityEndpoint({ tokenService: env.service, systemAssigned: identity });
  without = await startIdentityEndpoint({ tokenService: env.service });
  await azurite.createContainer(CONTAINER);
  const seeder = await env.direct(MAILBOX);
  for (let i = 1; i <= MESSAGES; i++)
    await seeder.append('INBOX', plainMessage(i, 'INBOX', MAILBOX));
  await seeder.logout();
}, 120_000);

afterAll(async () => {
  await endpoint?.close();
  await without?.close();
  await env?.close();
  await azurite?.stop();
});

/** What a process on the App Service sees; no storage connection string. */
function resourceEnv(identity: IdentityEndpoint): Record<string, string> {
  return {
    ...identity.environment(),
    AZURE_TENANT_ID: env.service.tenantId,
    MAILBRIDGE_CREDENTIAL: 'managed-identity',
    MAILBRIDGE_IMAP_HOST: env.servers.imap.host,
    MAILBRIDGE_IMAP_PORT: String(env.servers.imap.port),
  };
}

describe('archive into a container with a managed identity (DefaultAzureCredential)', () => {
  it('archives with a token for https://storage.azure.com from the identity endpoint; verify passes', async () => {
    const url = azurite.url(CONTAINER, 'nightly');
    const archived = await runCli(
      ['archive', '--mailbox', MAILBOX, '--out', url, '--json'],
      resourceEnv(endpoint),
      { timeoutMs: CLI_TIMEOUT },
    );
    expect(archived.code, archived.stderr).toBe(0);
    expect(JSON.parse(archived.stdout)).toMatchObject({ ok: true });
    expect(endpoint.requests.map((r) => r.resource)).toContain(STORAGE);
    const names: string[] = [];
    const prefix = `nightly/${mailboxDirName(MAILBOX)}/`;
    for await (const blob of azurite.container(CONTAINER).listBlobsFlat({ prefix }))
      names.push(blob.name);
    expect(names.filter((n) => n.endsWith('.eml'))).toHaveLength(MESSAGES);
    const verified = await runCli(['archive', 'verify', url], resourceEnv(endpoint), {
      timeoutMs: CLI_TIMEOUT,
    });
    expect(verified.code, verified.stderr).toBe(0);
  }, 180_000);

  it('an endpoint with no identity for the resource: ARCHIVE_STORE_AUTH_FAILED, exit 3', async () => {
    const refused = await runCli(
      ['archive', 'verify', azurite.url(CONTAINER, 'nightly')],
      resourceEnv(without),
      { timeoutMs: CLI_TIMEOUT },
    );
    expect(refused.code, refused.stderr).toBe(3);
    expect(refused.stderr).toMatch(/ARCHIVE_STORE_AUTH_FAILED/);
  }, 180_000);
});
