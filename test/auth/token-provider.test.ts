/**
 * The token provider against the local Entra-like service, reached only
 * through AZURE_AUTHORITY_HOST and the CA in NODE_EXTRA_CA_CERTS.
 */

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createTokenProvider, type TokenProviderOptions } from '../../src/auth/token-provider.js';
import { loadConfig } from '../../src/config/load.js';
import {
  AuthenticationError,
  ConfigurationError,
  type MailbridgeError,
  NetworkError,
} from '../../src/errors.js';
import { decodeJwt, signJwt } from '../helpers/jwt.js';
import {
  certificateThumbprint,
  encryptPrivateKey,
  type Issued,
  issueCertificate,
  toPfx,
} from '../helpers/pki.js';
import { startTokenService, type TokenService } from '../helpers/token-service.js';

const EXCHANGE = 'https://outlook.office365.com';
const FAST_RETRY: TokenProviderOptions['retry'] = {
  baseDelayMs: 20,
  maxDelayMs: 100,
  maxAttempts: 4,
};

let service: TokenService;
let dir: string;
let cert: Issued;
/** How far the service's clock (and a provider given `now: clock`) runs ahead of the wall clock. */
let skew = 0;
const clock = () => Date.now() + skew;

beforeAll(async () => {
  service = await startTokenService({ now: clock });
  dir = await mkdtemp(join(tmpdir(), 'mailbridge-provider-'));
  cert = issueCertificate({ commonName: 'mailbridge-test-app' });
});

afterAll(async () => {
  await service.close();
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  skew = 0;
  service.clearFaults();
  service.setTokenLifetime(3599);
  service.resetCounters();
});

function baseEnv(tenantId: string, clientId: string): Record<string, string> {
  return {
    AZURE_TENANT_ID: tenantId,
    AZURE_CLIENT_ID: clientId,
    AZURE_AUTHORITY_HOST: service.url,
  };
}

async function secretProvider(options: TokenProviderOptions = {}, secret?: string) {
  const app = service.registerApp({ roles: { [EXCHANGE]: ['IMAP.AccessAsApp'] } });
  const config = await loadConfig({
    env: {
      ...baseEnv(app.tenantId, app.clientId),
      AZURE_CLIENT_SECRET: secret ?? app.secret ?? '',
    },
  });
  return { app, provider: createTokenProvider(config, { retry: FAST_RETRY, ...options }) };
}

async function expectRejection(promise: Promise<unknown>): Promise<MailbridgeError> {
  const error = await promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  return error as MailbridgeError;
}

describe('credentials', () => {
  it('gets a token with a client secret', async () => {
    const { app, provider } = await secretProvider();
    const token = await provider.getToken();
    const claims = service.verifyAccessToken(token.accessToken);
    expect(claims.aud).toBe(EXCHANGE);
    expect(claims.appid).toBe(app.clientId);
    expect(claims.roles).toEqual(['IMAP.AccessAsApp']);
    expect(claims.appidacr).toBe('1');
    expect(token.expiresOn.getTime()).toBeGreaterThan(Date.now() + 3_000_000);
    expect(service.requests.at(-1)?.authMethod).toBe('secret');
  });

  it.each([
    ['a PEM file with key and certificate', 'app.pem'],
    ['an encrypted PEM key', 'app-encrypted.pem'],
    ['a PFX file', 'app.pfx'],
  ])('gets a token with %s (PS256, x5t#S256)', async (_label, file) => {
    const app = service.registerApp({ certificates: [cert.certificatePem] });
    const path = join(dir, file);
    const password = 'pfx-and-pem-password';
    if (file === 'app.pfx') await writeFile(path, toPfx(cert, password));
    else if (file === 'app-encrypted.pem')
      await writeFile(
        path,
        `${encryptPrivateKey(cert.keys.privateKeyPem, password)}${cert.certificatePem}`,
      );
    else await writeFile(path, `${cert.keys.privateKeyPem}${cert.certificatePem}`);
    const config = await loadConfig({
      env: {
        ...baseEnv(app.tenantId, app.clientId),
        AZURE_CLIENT_CERTIFICATE_PATH: path,
        ...(file === 'app.pem' ? {} : { AZURE_CLIENT_CERTIFICATE_PASSWORD: password }),
      },
    });
    const token = await createTokenProvider(config).getToken();
    expect(service.verifyAccessToken(token.accessToken).appidacr).toBe('2');
    expect(service.requests.at(-1)?.authMethod).toBe('certificate');
  });

  it('sends the x5c chain when asked', async () => {
    const app = service.registerApp({ certificates: [cert.certificatePem] });
    const path = join(dir, 'chain.pem');
    await writeFile(path, `${cert.keys.privateKeyPem}${cert.certificatePem}`);
    const config = await loadConfig({
      env: { ...baseEnv(app.tenantId, app.clientId), AZURE_CLIENT_CERTIFICATE_PATH: path },
      overrides: { sendCertificateChain: true },
    });
    await createTokenProvider(config).getToken();
    expect(service.requests.at(-1)?.status).toBe(200);
    expect(service.requests.at(-1)?.x5c).toBe(1);
  });

  it('re-reads a federated token file when it changes', async () => {
    const issuer = 'https://oidc.k8s.example/cluster-1';
    const subject = 'system:serviceaccount:mail:archiver';
    const app = service.registerApp({ federated: [{ issuer, subject }] });
    const file = join(dir, 'federated-token');
    await writeFile(file, service.issueFederatedToken({ issuer, subject }));
    const config = await loadConfig({
      env: { ...baseEnv(app.tenantId, app.clientId), AZURE_FEDERATED_TOKEN_FILE: file },
    });
    const provider = createTokenProvider(config, { retry: FAST_RETRY });
    const first = await provider.getToken();
    expect(service.requests.at(-1)?.authMethod).toBe('federated');

    // Kubernetes rotates the file in place: a token for another subject must be what goes out next.
    await writeFile(
      file,
      service.issueFederatedToken({ issuer, subject: 'system:serviceaccount:mail:other' }),
    );
    const error = await expectRejection(provider.getToken({ forceRefresh: true }));
    expect(error.code).toBe('FEDERATION_NO_MATCH');

    await writeFile(file, service.issueFederatedToken({ issuer, subject }));
    const second = await provider.getToken({ forceRefresh: true });
    expect(second.accessToken).not.toBe(first.accessToken);
  });

  it('takes a federated assertion from a callback (library API)', async () => {
    const issuer = 'https://token.actions.githubusercontent.com';
    const subject = 'repo:contoso/mail:ref:refs/heads/main';
    const app = service.registerApp({ federated: [{ issuer, subject }] });
    let calls = 0;
    const config = await loadConfig({
      env: baseEnv(app.tenantId, app.clientId),
      overrides: {
        clientAssertion: () => {
          calls++;
          return service.issueFederatedToken({ issuer, subject });
        },
      },
    });
    const provider = createTokenProvider(config);
    await provider.getToken();
    await provider.getToken();
    expect(calls).toBe(1);
  });
});

describe('concurrency and caching', () => {
  it('makes exactly one token request for 500 concurrent callers', async () => {
    const { provider } = await secretProvider();
    service.delayNext(1, 200);
    const tokens = await Promise.all(Array.from({ length: 500 }, () => provider.getToken()));
    expect(service.tokenRequests).toBe(1);
    expect(new Set(tokens.map((t) => t.accessToken)).size).toBe(1);
    await provider.getToken();
    expect(service.tokenRequests).toBe(1);
  });

  it('forceRefresh fetches a new token, and concurrent forced calls share it', async () => {
    const { provider } = await secretProvider();
    const first = await provider.getToken();
    const forced = await Promise.all([
      provider.getToken({ forceRefresh: true }),
      provider.getToken({ forceRefresh: true }),
    ]);
    expect(forced[0].accessToken).not.toBe(first.accessToken);
    expect(forced[1].accessToken).toBe(forced[0].accessToken);
    expect(service.tokenRequests).toBe(2);
  });

  // The provider and the service share a clock the tests move forward, so an
  // hour-long token's life passes without waiting for it.
  const LIFETIME_MS = 3599_000;
  const MARGIN_MS = 300_000;

  it('refreshes a token before it expires and never hands out one inside the margin', async () => {
    const { provider } = await secretProvider({ now: clock });
    const leftOf = (token: { accessToken: string }) =>
      Number(decodeJwt(token.accessToken).payload.exp) * 1000 - clock();
    const first = await provider.getToken();
    // Straight from a fresh token to 299 s before its expiry: no background
    // refresh had a chance, so the cached token must not be handed out.
    skew += LIFETIME_MS - MARGIN_MS + 1_000;
    const inside = await provider.getToken();
    expect(inside.accessToken).not.toBe(first.accessToken);
    expect(leftOf(inside)).toBeGreaterThan(MARGIN_MS);

    const seen = new Set<string>();
    let minimumLeftMs = Number.POSITIVE_INFINITY;
    // Three hours of calls, one every 10 s.
    for (let call = 0; call < 1080; call++) {
      const token = await provider.getToken();
      seen.add(token.accessToken);
      minimumLeftMs = Math.min(minimumLeftMs, leftOf(token));
      skew += 10_000;
    }
    // The token's exp is in whole seconds.
    expect(minimumLeftMs).toBeGreaterThan(MARGIN_MS - 1_000);
    expect(seen.size).toBeGreaterThanOrEqual(3);
    // Cached in between: about one request per 40 minutes, not one per call.
    expect(service.tokenRequests).toBeLessThanOrEqual(8);
  });

  it('starts a background refresh late in the token life while still serving the cached token', async () => {
    const { provider } = await secretProvider({ now: clock });
    const first = await provider.getToken();
    // Past 75 % of the usable life (the background refresh point), before the margin.
    skew += 0.85 * (LIFETIME_MS - MARGIN_MS);
    const during = await provider.getToken();
    expect(during.accessToken).toBe(first.accessToken);
    // The service counts the request before its answer is back: wait for the new token itself.
    await vi.waitFor(async () =>
      expect((await provider.getToken()).accessToken).not.toBe(first.accessToken),
    );
    expect(service.tokenRequests).toBe(2);
  });
});

describe('retries', () => {
  it('retries 503 and recovers', async () => {
    const { provider } = await secretProvider();
    service.failNext(2, { status: 503 });
    await provider.getToken();
    expect(service.tokenRequests).toBe(3);
  });

  it('honours Retry-After on 429', async () => {
    const { provider } = await secretProvider();
    service.failNext(1, { status: 429, retryAfterSeconds: 1 });
    const started = Date.now();
    await provider.getToken();
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(service.tokenRequests).toBe(2);
  });

  it('retries a dropped connection', async () => {
    const { provider } = await secretProvider();
    service.dropNext(1);
    await provider.getToken();
    expect(service.tokenRequests).toBe(2);
  });

  it('gives up after the bounded attempts with exit code 4, and the next call reaches Entra again', async () => {
    const { provider } = await secretProvider();
    service.failNext(10, { status: 503 });
    const error = await expectRejection(provider.getToken());
    expect(error).toBeInstanceOf(NetworkError);
    expect(error.code).toBe('ENTRA_UNAVAILABLE');
    expect(error.exitCode).toBe(4);
    expect(service.tokenRequests).toBe(4);
    // msal-node would refuse this for 60 s without a request had it seen the 503 itself.
    service.clearFaults();
    await provider.getToken();
    expect(service.tokenRequests).toBe(5);
  });

  it('fails at once when Retry-After is longer than the retry budget', async () => {
    const { provider } = await secretProvider({ retry: { ...FAST_RETRY, maxTotalMs: 5_000 } });
    service.failNext(1, { status: 429, retryAfterSeconds: 120 });
    const started = Date.now();
    const error = await expectRejection(provider.getToken());
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(error.code).toBe('ENTRA_UNAVAILABLE');
    expect(error.message).toMatch(/120 s|retry/i);
    expect(service.tokenRequests).toBe(1);
  });

  it('never retries a refused credential', async () => {
    const { provider } = await secretProvider({}, 'not-the-secret');
    const error = await expectRejection(provider.getToken());
    expect(error.code).toBe('SECRET_INVALID');
    expect(service.tokenRequests).toBe(1);
  });

  it('reports an unreachable authority with exit code 4', async () => {
    const app = service.registerApp();
    const closed = createHttpsServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const config = await loadConfig({
      env: {
        ...baseEnv(app.tenantId, app.clientId),
        AZURE_CLIENT_SECRET: app.secret ?? '',
        AZURE_AUTHORITY_HOST: `https://127.0.0.1:${port}`,
      },
    });
    const error = await expectRejection(
      createTokenProvider(config, { retry: FAST_RETRY }).getToken(),
    );
    expect(error).toBeInstanceOf(NetworkError);
    expect(error.code).toBe('AUTHORITY_UNREACHABLE');
    expect(error.exitCode).toBe(4);
    expect(error.message).toContain('ECONNREFUSED');
  });

  it('refuses an authority whose certificate is not trusted, without retrying', async () => {
    const app = service.registerApp();
    const rogue = issueCertificate({ commonName: 'localhost', ipAddresses: ['127.0.0.1'] });
    let connections = 0;
    const server = createHttpsServer(
      { key: rogue.keys.privateKeyPem, cert: rogue.certificatePem },
      (_req, res) => res.end('{}'),
    );
    server.on('connection', () => {
      connections++;
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const config = await loadConfig({
        env: {
          ...baseEnv(app.tenantId, app.clientId),
          AZURE_CLIENT_SECRET: app.secret ?? '',
          AZURE_AUTHORITY_HOST: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
        },
      });
      const error = await expectRejection(
        createTokenProvider(config, { retry: FAST_RETRY }).getToken(),
      );
      expect(error.code).toBe('TLS_CERTIFICATE_UNTRUSTED');
      expect(error.exitCode).toBe(4);
      expect(error.message).toContain('NODE_EXTRA_CA_CERTS');
      expect(connections).toBe(1);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('Entra errors, through the real request path', () => {
  async function providerFor(env: Record<string, string>, overrides = {}) {
    const config = await loadConfig({ env, overrides });
    return createTokenProvider(config, { retry: FAST_RETRY });
  }

  it('7000215 wrong secret → SECRET_INVALID, exit 3, with trace and correlation ids', async () => {
    const { provider } = await secretProvider({}, 'Wrong~Secret~Value');
    const error = await expectRejection(provider.getToken());
    expect(error).toBeInstanceOf(AuthenticationError);
    expect(error.code).toBe('SECRET_INVALID');
    expect(error.exitCode).toBe(3);
    expect(error.message).toContain('AADSTS7000215');
    expect(error.message).toMatch(/Value/);
    expect(error.entra?.traceId).toMatch(/^[0-9a-f-]{36}$/);
    expect(error.entra?.correlationId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('7000222 expired secret → SECRET_EXPIRED, exit 3', async () => {
    const app = service.registerApp({
      secrets: [{ value: 'Old~Secret~2024', expiresAt: new Date(Date.now() - 86_400_000) }],
    });
    const provider = await providerFor({
      ...baseEnv(app.tenantId, app.clientId),
      AZURE_CLIENT_SECRET: 'Old~Secret~2024',
    });
    const error = await expectRejection(provider.getToken());
    expect([error.code, error.exitCode]).toEqual(['SECRET_EXPIRED', 3]);
  });

  it('700016 unknown app → APP_NOT_FOUND, exit 3', async () => {
    const provider = await providerFor({
      ...baseEnv(service.tenantId, '0d9b5a63-0000-4000-8000-000000000001'),
      AZURE_CLIENT_SECRET: 'whatever-secret',
    });
    const error = await expectRejection(provider.getToken());
    expect([error.code, error.exitCode]).toEqual(['APP_NOT_FOUND', 3]);
  });

  it('90002 unknown tenant → TENANT_NOT_FOUND, exit 2', async () => {
    const provider = await providerFor({
      ...baseEnv('11111111-2222-4333-8444-555555555555', '0d9b5a63-0000-4000-8000-000000000001'),
      AZURE_CLIENT_SECRET: 'whatever-secret',
    });
    const error = await expectRejection(provider.getToken());
    expect(error).toBeInstanceOf(ConfigurationError);
    expect([error.code, error.exitCode]).toEqual(['TENANT_NOT_FOUND', 2]);
  });

  it('70011 scope of an unknown resource → SCOPE_INVALID, exit 2', async () => {
    const app = service.registerApp();
    const provider = await providerFor({
      ...baseEnv(app.tenantId, app.clientId),
      AZURE_CLIENT_SECRET: app.secret ?? '',
      MAILBRIDGE_SCOPE: 'https://mail.unknown.example/.default',
    });
    const error = await expectRejection(provider.getToken());
    expect(error.message).toContain('AADSTS70011');
    expect([error.code, error.exitCode]).toEqual(['SCOPE_INVALID', 2]);
  });

  it('700027 certificate not registered → CERTIFICATE_NOT_REGISTERED with our thumbprint, exit 3', async () => {
    const app = service.registerApp();
    const path = join(dir, 'unregistered.pem');
    await writeFile(path, `${cert.keys.privateKeyPem}${cert.certificatePem}`);
    const provider = await providerFor({
      ...baseEnv(app.tenantId, app.clientId),
      AZURE_CLIENT_CERTIFICATE_PATH: path,
    });
    const error = await expectRejection(provider.getToken());
    expect([error.code, error.exitCode]).toEqual(['CERTIFICATE_NOT_REGISTERED', 3]);
    expect(error.message).toContain(certificateThumbprint(cert.certificatePem, 'sha1'));
  });

  // A caller that signs its own assertion (a key in an HSM or Key Vault) uses the callback.
  function selfSignedAssertion(
    clientId: string,
    tenantId: string,
    options: { aud?: string; key?: string },
  ) {
    const now = Math.floor(Date.now() / 1000);
    return signJwt(
      {
        aud: options.aud ?? service.tokenEndpoint(tenantId),
        iss: clientId,
        sub: clientId,
        jti: crypto.randomUUID(),
        nbf: now,
        exp: now + 600,
      },
      {
        algorithm: 'PS256',
        privateKeyPem: options.key ?? cert.keys.privateKeyPem,
        header: {
          typ: 'JWT',
          'x5t#S256': Buffer.from(
            certificateThumbprint(cert.certificatePem, 'sha256'),
            'hex',
          ).toString('base64url'),
        },
      },
    );
  }

  it('50011 assertion audience refused → ASSERTION_AUDIENCE_INVALID, exit 3', async () => {
    const app = service.registerApp({ certificates: [cert.certificatePem] });
    const provider = await providerFor(baseEnv(app.tenantId, app.clientId), {
      clientAssertion: () =>
        selfSignedAssertion(app.clientId, app.tenantId, {
          aud: 'https://login.example.invalid/token',
        }),
    });
    const error = await expectRejection(provider.getToken());
    expect(error.message).toContain('AADSTS50011');
    expect([error.code, error.exitCode]).toEqual(['ASSERTION_AUDIENCE_INVALID', 3]);
  });

  it('50012 assertion signature invalid → ASSERTION_INVALID, exit 3', async () => {
    const app = service.registerApp({ certificates: [cert.certificatePem] });
    const otherKey = issueCertificate({ commonName: 'other' }).keys.privateKeyPem;
    const provider = await providerFor(baseEnv(app.tenantId, app.clientId), {
      clientAssertion: () => selfSignedAssertion(app.clientId, app.tenantId, { key: otherKey }),
    });
    const error = await expectRejection(provider.getToken());
    expect(error.message).toContain('AADSTS50012');
    expect([error.code, error.exitCode]).toEqual(['ASSERTION_INVALID', 3]);
  });

  it('a self-signed assertion that is right gets a token', async () => {
    const app = service.registerApp({ certificates: [cert.certificatePem] });
    const provider = await providerFor(baseEnv(app.tenantId, app.clientId), {
      clientAssertion: () => selfSignedAssertion(app.clientId, app.tenantId, {}),
    });
    const token = await provider.getToken();
    expect(decodeJwt(token.accessToken).payload.appid).toBe(app.clientId);
  });
});
