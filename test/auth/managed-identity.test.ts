/**
 * The managed identity credential against a local endpoint speaking App
 * Service's protocol (IDENTITY_ENDPOINT, IDENTITY_HEADER), which gets its
 * tokens from the local token service. msal-node reads those variables from
 * `process.env` and keeps the endpoint it found for the life of the process,
 * so the in-process tests share one endpoint; the failure tests run the CLI.
 */
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenProvider } from '../../src/auth/token-provider.js';
import { loadConfig } from '../../src/config/load.js';
import { AuthenticationError, ConfigurationError, type MailbridgeError } from '../../src/errors.js';
import { type IdentityEndpoint, startIdentityEndpoint } from '../helpers/identity-endpoint.js';
import { runCli } from '../helpers/run-cli.js';
import {
  type RegisteredApp,
  startTokenService,
  type TokenService,
} from '../helpers/token-service.js';

const EXCHANGE = 'https://outlook.office365.com';
const FAST_RETRY = { baseDelayMs: 20, maxDelayMs: 100, maxAttempts: 3 };

let service: TokenService;
let endpoint: IdentityEndpoint;
let systemAssigned: RegisteredApp;
let userAssigned: RegisteredApp;

beforeAll(async () => {
  service = await startTokenService();
  systemAssigned = service.registerApp({
    displayName: 'app-service-system-identity',
    roles: { [EXCHANGE]: ['IMAP.AccessAsApp'] },
  });
  userAssigned = service.registerApp({
    displayName: 'user-assigned-identity',
    roles: { [EXCHANGE]: ['IMAP.AccessAsApp', 'SMTP.SendAsApp'] },
  });
  endpoint = await startIdentityEndpoint({
    tokenService: service,
    systemAssigned,
    userAssigned: [userAssigned],
  });
  // What App Service sets in the environment of the app's process.
  Object.assign(process.env, endpoint.environment());
});

afterAll(async () => {
  await endpoint?.close();
  await service?.close();
});

/** The environment of a process on the resource, for the CLI. */
function resourceEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...endpoint.environment(),
    AZURE_TENANT_ID: service.tenantId,
    MAILBRIDGE_CREDENTIAL: 'managed-identity',
    ...extra,
  };
}

async function rejection(promise: Promise<unknown>): Promise<MailbridgeError> {
  try {
    await promise;
  } catch (error) {
    return error as MailbridgeError;
  }
  throw new Error('expected a rejection');
}

describe('managed identity token provider', () => {
  it('gets a system-assigned token through the identity endpoint, one request for 500 concurrent callers', async () => {
    const config = await loadConfig({
      env: { AZURE_TENANT_ID: service.tenantId, MAILBRIDGE_CREDENTIAL: 'managed-identity' },
    });
    expect(config.credential).toEqual({ kind: 'managed-identity' });
    expect(config.clientId).toBe('system-assigned');
    const provider = createTokenProvider(config, { retry: FAST_RETRY });
    const before = endpoint.requests.length;
    const tokenRequests = service.tokenRequests;

    const tokens = await Promise.all(Array.from({ length: 500 }, () => provider.getToken()));

    expect(endpoint.requests.length - before).toBe(1);
    expect(service.tokenRequests - tokenRequests).toBe(1);
    expect(new Set(tokens.map((t) => t.accessToken)).size).toBe(1);
    const request = endpoint.requests.at(-1);
    expect(request).toMatchObject({ resource: EXCHANGE, clientId: null, status: 200 });
    const claims = service.verifyAccessToken(tokens[0]?.accessToken ?? '', { audience: EXCHANGE });
    expect(claims.appid).toBe(systemAssigned.clientId);
    expect(claims.oid).toBe(systemAssigned.servicePrincipalId);
    expect(tokens[0]?.expiresOn.getTime()).toBeGreaterThan(Date.now() + 3000_000);
  });

  it('asks for the user-assigned identity named by AZURE_CLIENT_ID', async () => {
    const config = await loadConfig({
      env: {
        AZURE_TENANT_ID: service.tenantId,
        AZURE_CLIENT_ID: userAssigned.clientId,
        MAILBRIDGE_CREDENTIAL: 'managed-identity',
      },
    });
    expect(config.credential).toEqual({
      kind: 'managed-identity',
      userAssignedClientId: userAssigned.clientId,
    });
    const token = await createTokenProvider(config, { retry: FAST_RETRY }).getToken();
    expect(endpoint.requests.at(-1)).toMatchObject({
      clientId: userAssigned.clientId,
      status: 200,
    });
    expect(service.verifyAccessToken(token.accessToken).roles).toEqual([
      'IMAP.AccessAsApp',
      'SMTP.SendAsApp',
    ]);
  });

  it('retries a failing endpoint and gets the token once it answers', async () => {
    const config = await loadConfig({
      overrides: { tenantId: service.tenantId, managedIdentity: true },
    });
    endpoint.failNext(2, 503);
    const before = endpoint.requests.length;
    const token = await createTokenProvider(config, { retry: FAST_RETRY }).getToken();
    expect(token.accessToken).toMatch(/^ey/);
    expect(endpoint.requests.slice(before).map((r) => r.status)).toEqual([503, 503, 200]);
  });

  it('says which identity the endpoint refused, with MANAGED_IDENTITY_REFUSED', async () => {
    const unknown = '00000000-0000-4000-8000-00000000abcd';
    const config = await loadConfig({
      env: {
        AZURE_TENANT_ID: service.tenantId,
        AZURE_CLIENT_ID: unknown,
        MAILBRIDGE_CREDENTIAL: 'managed-identity',
      },
    });
    const error = await rejection(createTokenProvider(config, { retry: FAST_RETRY }).getToken());
    expect(error).toBeInstanceOf(AuthenticationError);
    expect(error.code).toBe('MANAGED_IDENTITY_REFUSED');
    expect(error.message).toContain(`the user-assigned identity ${unknown}`);
    expect(error.message).toContain('HTTP 400');
    expect(error.message).toContain('No User Assigned or Delegated Managed Identity found');
    expect(error.message).toContain(`${endpoint.url} (App Service)`);
  });
});

describe('managed identity configuration', () => {
  it('refuses a managed identity together with a secret, naming both and where they are set', async () => {
    const error = await rejection(
      loadConfig({
        env: {
          AZURE_TENANT_ID: service.tenantId,
          AZURE_CLIENT_ID: userAssigned.clientId,
          AZURE_CLIENT_SECRET: 'a-secret-value',
          MAILBRIDGE_CREDENTIAL: 'managed-identity',
        },
      }),
    );
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toContain('More than one credential is set');
    expect(error.message).toContain('clientSecret (from AZURE_CLIENT_SECRET)');
    expect(error.message).toContain('managedIdentity (from MAILBRIDGE_CREDENTIAL)');
    expect(error.message).not.toContain('a-secret-value');
  });

  it('refuses another value of MAILBRIDGE_CREDENTIAL and a client id that is not a GUID', async () => {
    const wrongValue = await rejection(
      loadConfig({ env: { AZURE_TENANT_ID: service.tenantId, MAILBRIDGE_CREDENTIAL: 'msi' } }),
    );
    expect(wrongValue.message).toContain('MAILBRIDGE_CREDENTIAL must be managed-identity');
    const notGuid = await rejection(
      loadConfig({
        env: {
          AZURE_TENANT_ID: service.tenantId,
          AZURE_CLIENT_ID: 'my-identity',
          MAILBRIDGE_CREDENTIAL: 'managed-identity',
        },
      }),
    );
    expect(notGuid.message).toContain('it names a user-assigned identity');
  });

  it('leaves clientId required without a managed identity (managedIdentity: false)', async () => {
    const error = await rejection(
      loadConfig({
        overrides: { tenantId: service.tenantId, managedIdentity: false, clientSecret: 'x' },
      }),
    );
    expect(error.message).toContain('clientId is missing');
  });
});

describe('mailbridge token with a managed identity', () => {
  it('prints the token summary of the identity (token --json)', async () => {
    const { code, stdout, stderr } = await runCli(['token', '--json'], resourceEnv());
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const summary = JSON.parse(stdout) as Record<string, unknown>;
    expect(summary).toMatchObject({
      tenantId: service.tenantId,
      appId: systemAssigned.clientId,
      roles: ['IMAP.AccessAsApp'],
      scope: `${EXCHANGE}/.default`,
    });
    expect(summary).not.toHaveProperty('credentialExpiresOn');
  });

  it('exits 4 with MANAGED_IDENTITY_UNREACHABLE when nothing listens at the endpoint', async () => {
    const port = await closedPort();
    const { code, stdout } = await runCli(
      ['token', '--json'],
      resourceEnv({ IDENTITY_ENDPOINT: `http://127.0.0.1:${port}/msi/token` }),
    );
    expect(code).toBe(4);
    const { error } = JSON.parse(stdout) as { error: { code: string; message: string } };
    expect(error.code).toBe('MANAGED_IDENTITY_UNREACHABLE');
    expect(error.message).toContain(`http://127.0.0.1:${port}/msi/token (App Service)`);
    expect(error.message).toContain('ECONNREFUSED');
  });

  it('exits 4 with MANAGED_IDENTITY_ANSWER_INVALID when something else answers there, quoted inert', async () => {
    const portal = createHttpServer((_req, res) => {
      res
        .writeHead(200, { 'content-type': 'text/html' })
        .end('<html>\u001b[2JSign in to the proxy</html>');
    });
    await new Promise<void>((resolve) => portal.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = portal.address() as { port: number };
      const { code, stdout } = await runCli(
        ['token', '--json'],
        resourceEnv({ IDENTITY_ENDPOINT: `http://127.0.0.1:${port}/msi/token` }),
      );
      expect(code).toBe(4);
      const { error } = JSON.parse(stdout) as { error: { code: string; message: string } };
      expect(error.code).toBe('MANAGED_IDENTITY_ANSWER_INVALID');
      expect(error.message).toContain('HTTP 200, not JSON');
      expect(error.message).toContain('Sign in to the proxy');
      expect(error.message).not.toContain('\u001b');
    } finally {
      await new Promise<void>((resolve) => portal.close(() => resolve()));
    }
  });

  it('exits 3 with MANAGED_IDENTITY_REFUSED when the endpoint refuses the secret header', async () => {
    const { code, stdout } = await runCli(
      ['token', '--json'],
      resourceEnv({ IDENTITY_HEADER: 'copied-from-elsewhere' }),
    );
    expect(code).toBe(3);
    const { error } = JSON.parse(stdout) as { error: { code: string; message: string } };
    expect(error.code).toBe('MANAGED_IDENTITY_REFUSED');
    expect(error.message).toContain('HTTP 401');
    expect(error.message).not.toContain('copied-from-elsewhere');
  });

  it('exits 2 naming both credentials when a certificate path is set too', async () => {
    const { code, stderr } = await runCli(
      ['token'],
      resourceEnv({ AZURE_CLIENT_CERTIFICATE_PATH: '/nonexistent/app.pem' }),
    );
    expect(code).toBe(2);
    expect(stderr).toContain('certificatePath (from AZURE_CLIENT_CERTIFICATE_PATH)');
    expect(stderr).toContain('managedIdentity (from MAILBRIDGE_CREDENTIAL)');
  });
});

describe('mailbridge credentials check with a managed identity', () => {
  it('has nothing to renew, and refuses --graph, which reads app registrations', async () => {
    const local = await runCli(['credentials', 'check'], resourceEnv());
    expect(local.code).toBe(0);
    expect(local.stdout).toContain(
      'configured managed-identity "managed identity (renewed by Azure)"',
    );
    expect(local.stdout).not.toContain('add --graph');
    const graph = await runCli(['credentials', 'check', '--graph'], resourceEnv());
    expect(graph.code).toBe(2);
    expect(graph.stderr).toContain('a managed identity has none');
  });
});

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
