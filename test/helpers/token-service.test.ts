/**
 * The test token service must look like Entra ID to real clients, or every
 * test built on it proves nothing: these tests pin its TLS trust path, its
 * error shapes and codes, its tokens, its fault injection, and that real
 * msal-node 7 gets tokens from it with every credential kind.
 */
import { execFile } from 'node:child_process';
import { createPublicKey, randomUUID } from 'node:crypto';
import { get } from 'node:https';
import { rootCertificates } from 'node:tls';
import { ConfidentialClientApplication, ServerError } from '@azure/msal-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { decodeJwt, type JwtAlgorithm, signJwt, verifyJwtSignature } from './jwt.js';
import { certificateThumbprint, generateRsaKeyPair, type Issued, issueCertificate } from './pki.js';
import { testCaPath } from './test-ca.js';
import {
  type AccessTokenClaims,
  CLIENT_ASSERTION_TYPE,
  FEDERATED_AUDIENCE,
  type FederatedTokenOptions,
  type RegisteredApp,
  startTokenService,
  type TokenService,
} from './token-service.js';

const OUTLOOK = 'https://outlook.office365.com';
const OUTLOOK_SCOPE = `${OUTLOOK}/.default`;
/** OpenSSL's verdicts on a chain ending in a CA it does not trust. */
const UNTRUSTED =
  /SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/;
const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';

let service: TokenService;
/** One certificate for the whole file: RSA key generation is the slow part. */
let appCert: Issued;

/** How far the service's clock runs ahead of the wall clock. */
let skew = 0;
/** When set, the service's clock stands still at this instant (no drift between setting and asking). */
let frozenAt: number | undefined;

beforeAll(async () => {
  service = await startTokenService({ now: () => frozenAt ?? Date.now() + skew });
  appCert = issueCertificate({ commonName: 'mailbridge test app' });
});
afterAll(() => service?.close());
beforeEach(() => {
  skew = 0;
  frozenAt = undefined;
  service.clearFaults();
  service.resetCounters();
  service.setTokenLifetime(3599);
});

interface HttpAnswer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

async function postToken(
  form: Record<string, string | undefined>,
  options: { tenant?: string; headers?: Record<string, string>; query?: string } = {},
): Promise<HttpAnswer> {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(form))
    if (value !== undefined) params.set(name, value);
  const url = `${service.tokenEndpoint(options.tenant)}${options.query ?? ''}`;
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...options.headers },
    body: params.toString(),
  });
  return {
    status: res.status,
    headers: res.headers,
    body: (await res.json()) as Record<string, unknown>,
  };
}

function secretForm(app: RegisteredApp, overrides: Record<string, string | undefined> = {}) {
  return {
    grant_type: 'client_credentials',
    client_id: app.clientId,
    client_secret: app.secret,
    scope: OUTLOOK_SCOPE,
    ...overrides,
  };
}

interface AssertionOptions {
  clientId: string;
  signer?: Issued;
  /** The certificate named in the header; default: the signer's. */
  namedCertificate?: string;
  algorithm?: JwtAlgorithm;
  thumbprint?: 'x5t' | 'x5t#S256';
  claims?: Record<string, unknown>;
}

/** A client assertion as msal-node (PS256, x5t#S256) or older clients (RS256, x5t) make it. */
function clientAssertion(options: AssertionOptions): string {
  const signer = options.signer ?? appCert;
  const named = options.namedCertificate ?? signer.certificatePem;
  const thumbprintKind = options.thumbprint ?? 'x5t#S256';
  const hex = certificateThumbprint(named, thumbprintKind === 'x5t' ? 'sha1' : 'sha256');
  const now = Math.floor(Date.now() / 1000);
  return signJwt(
    {
      aud: service.tokenEndpoint(),
      iss: options.clientId,
      sub: options.clientId,
      jti: randomUUID(),
      nbf: now,
      iat: now,
      exp: now + 600,
      ...options.claims,
    },
    {
      privateKeyPem: signer.keys.privateKeyPem,
      algorithm: options.algorithm ?? 'PS256',
      header: { typ: 'JWT', [thumbprintKind]: Buffer.from(hex, 'hex').toString('base64url') },
    },
  );
}

function assertionForm(app: RegisteredApp, assertion: string) {
  return {
    grant_type: 'client_credentials',
    client_id: app.clientId,
    client_assertion_type: CLIENT_ASSERTION_TYPE,
    client_assertion: assertion,
    scope: OUTLOOK_SCOPE,
  };
}

function expectEntraError(answer: HttpAnswer, status: number, error: string, code: number): void {
  expect({
    status: answer.status,
    error: answer.body.error,
    codes: answer.body.error_codes,
  }).toEqual({ status, error, codes: [code] });
  expect(answer.body.error_description).toMatch(
    new RegExp(
      `^AADSTS${code}: .+ Trace ID: ${UUID} Correlation ID: ${UUID} Timestamp: \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ$`,
    ),
  );
  expect(answer.body.error_uri).toBe(`https://login.microsoftonline.com/error?code=${code}`);
  expect(answer.body.trace_id).toMatch(new RegExp(`^${UUID}$`));
  expect(answer.body.timestamp).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/);
}

function claimsOf(accessToken: string): AccessTokenClaims {
  return decodeJwt(accessToken).payload as AccessTokenClaims;
}

function runNode(
  script: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['-e', script], { env }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, output: `${stdout}${stderr}` });
    });
  });
}

describe('TLS trust through NODE_EXTRA_CA_CERTS', () => {
  it('is set up by global setup before the worker started, with no TLS bypass', () => {
    expect(process.env.NODE_EXTRA_CA_CERTS).toBe(testCaPath());
    expect(process.env.NODE_TLS_REJECT_UNAUTHORIZED).toBeUndefined();
  });

  it('lets a plain fetch from the worker reach the service', async () => {
    const res = await fetch(
      `${service.url}/${service.tenantId}/v2.0/.well-known/openid-configuration`,
    );
    expect(res.status).toBe(200);
  });

  it('is what makes the difference: the bundled roots alone do not trust the service', async () => {
    const failure = await new Promise<NodeJS.ErrnoException>((resolve, reject) => {
      const req = get(`${service.url}/${service.tenantId}/v2.0/.well-known/openid-configuration`, {
        ca: [...rootCertificates],
      });
      req.on('response', () => reject(new Error('the service was trusted without the test CA')));
      req.on('error', resolve);
    });
    expect(failure.code).toMatch(UNTRUSTED);
  });

  it('is inherited by child processes, which fail without it', async () => {
    const script = `fetch(${JSON.stringify(`${service.url}/${service.tenantId}/discovery/v2.0/keys`)})
      .then((r) => process.exit(r.status === 200 ? 0 : 1))
      .catch((e) => { console.error(e.cause?.code ?? e); process.exit(2); });`;
    const inherited = await runNode(script, process.env);
    expect(inherited).toEqual({ code: 0, output: '' });

    const { NODE_EXTRA_CA_CERTS: _, ...withoutCa } = process.env;
    const untrusted = await runNode(script, withoutCa);
    expect(untrusted.code).toBe(2);
    expect(untrusted.output).toMatch(UNTRUSTED);
  });
});

describe('OpenID configuration and keys', () => {
  it('describes the tenant by GUID, whether asked by GUID or by domain', async () => {
    for (const tenant of [
      service.tenantId,
      service.tenantDomain,
      service.tenantDomain.toUpperCase(),
    ]) {
      const res = await fetch(`${service.url}/${tenant}/v2.0/.well-known/openid-configuration`);
      const doc = (await res.json()) as Record<string, unknown>;
      const base = `${service.url}/${service.tenantId}`;
      expect(doc).toMatchObject({
        issuer: `${base}/v2.0`,
        token_endpoint: `${base}/oauth2/v2.0/token`,
        authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
        end_session_endpoint: `${base}/oauth2/v2.0/logout`,
        jwks_uri: `${base}/discovery/v2.0/keys`,
        token_endpoint_auth_methods_supported: [
          'client_secret_post',
          'private_key_jwt',
          'client_secret_basic',
        ],
      });
      expect(doc.response_types_supported).toContain('code');
    }
    expect(service.metadataRequests).toBe(3);
  });

  it('answers an unknown tenant with invalid_tenant AADSTS90002', async () => {
    const res = await fetch(`${service.url}/nope.example/v2.0/.well-known/openid-configuration`, {
      headers: { 'client-request-id': 'b5bd1f3e-7a4e-4c43-9f0e-3c2b1a0f9e8d' },
    });
    const answer = {
      status: res.status,
      headers: res.headers,
      body: (await res.json()) as Record<string, unknown>,
    };
    expectEntraError(answer, 400, 'invalid_tenant', 90002);
    expect(answer.body.error_description).toContain("Tenant 'nope.example' not found.");
    expect(answer.body.correlation_id).toBe('b5bd1f3e-7a4e-4c43-9f0e-3c2b1a0f9e8d');
  });

  it('publishes the key that verifies its access tokens', async () => {
    const app = service.registerApp();
    const token = (await postToken(secretForm(app))).body.access_token as string;
    const res = await fetch(`${service.url}/${service.tenantId}/discovery/v2.0/keys`);
    const { keys } = (await res.json()) as {
      keys: Array<Record<string, string> & { x5c: string[] }>;
    };
    const decoded = decodeJwt(token);
    const jwk = keys.find((k) => k.kid === decoded.header.kid);
    expect(jwk).toMatchObject({ kty: 'RSA', use: 'sig' });
    const publicKey = createPublicKey({ key: { kty: 'RSA', n: jwk?.n, e: jwk?.e }, format: 'jwk' });
    expect(verifyJwtSignature(decoded, publicKey, ['RS256'])).toBe(true);
  });
});

describe('token endpoint: success', () => {
  it('issues an app-only v1 access token for the resource, with the granted roles', async () => {
    const app = service.registerApp({
      roles: { [OUTLOOK]: ['IMAP.AccessAsApp', 'SMTP.SendAsApp'] },
    });
    const before = Math.floor(Date.now() / 1000);
    const answer = await postToken(secretForm(app));
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({
      token_type: 'Bearer',
      expires_in: 3599,
      ext_expires_in: 3599,
    });

    const token = answer.body.access_token as string;
    const { header } = decodeJwt(token);
    expect(header).toMatchObject({ alg: 'RS256', typ: 'JWT', kid: expect.any(String) });
    const claims = service.verifyAccessToken(token);
    expect(claims).toMatchObject({
      aud: OUTLOOK,
      iss: `https://sts.windows.net/${service.tenantId}/`,
      tid: service.tenantId,
      appid: app.clientId,
      appidacr: '1',
      oid: app.servicePrincipalId,
      sub: app.servicePrincipalId,
      idtyp: 'app',
      ver: '1.0',
      roles: ['IMAP.AccessAsApp', 'SMTP.SendAsApp'],
    });
    expect(claims.exp - before).toBeGreaterThanOrEqual(3599);
    expect(claims.exp - before).toBeLessThanOrEqual(3601);
    // Entra backdates iat/nbf by five minutes.
    expect(claims.nbf).toBeLessThanOrEqual(before);
    expect(claims.iat).toBe(claims.nbf);
  });

  it('makes every token unique', async () => {
    const app = service.registerApp();
    const tokens = await Promise.all([1, 2, 3].map(() => postToken(secretForm(app))));
    const accessTokens = tokens.map((t) => t.body.access_token as string);
    expect(new Set(accessTokens).size).toBe(3);
    expect(new Set(accessTokens.map((t) => claimsOf(t).uti)).size).toBe(3);
  });

  it('leaves out roles when nothing is granted, and follows grants and revocations', async () => {
    const app = service.registerApp();
    const rolesNow = async () =>
      claimsOf((await postToken(secretForm(app))).body.access_token as string).roles;
    expect(await rolesNow()).toBeUndefined();
    service.grantRoles(app.clientId, OUTLOOK, ['IMAP.AccessAsApp']);
    expect(await rolesNow()).toEqual(['IMAP.AccessAsApp']);
    expect(app.roles).toEqual({ [OUTLOOK]: ['IMAP.AccessAsApp'] });
    service.revokeRoles(app.clientId, OUTLOOK);
    expect(await rolesNow()).toBeUndefined();
  });

  it('takes the roles of the resource asked for', async () => {
    const app = service.registerApp({
      roles: { [OUTLOOK]: ['IMAP.AccessAsApp'], 'https://graph.microsoft.com': ['Mail.Read'] },
    });
    const answer = await postToken(
      secretForm(app, { scope: 'https://graph.microsoft.com/.default' }),
    );
    expect(claimsOf(answer.body.access_token as string)).toMatchObject({
      aud: 'https://graph.microsoft.com',
      roles: ['Mail.Read'],
    });
  });

  it('accepts HTTP Basic client authentication, a query string and the tenant domain', async () => {
    const app = service.registerApp({ secrets: [{ value: 'a+b/c=d~e' }] });
    const basic = Buffer.from(
      `${encodeURIComponent(app.clientId)}:${encodeURIComponent('a+b/c=d~e')}`,
    ).toString('base64');
    const answer = await postToken(
      { grant_type: 'client_credentials', scope: OUTLOOK_SCOPE },
      {
        tenant: service.tenantDomain,
        headers: { authorization: `Basic ${basic}` },
        query: '?client-request-id=x',
      },
    );
    expect(answer.status).toBe(200);
    expect(service.requests[0]).toMatchObject({
      tenant: service.tenantDomain,
      authMethod: 'secret',
      status: 200,
    });
  });

  it('accepts a certificate assertion signed RS256 with a SHA-1 x5t, for the endpoint as addressed', async () => {
    const app = service.registerApp({ certificates: [appCert.certificatePem] });
    const assertion = clientAssertion({
      clientId: app.clientId,
      algorithm: 'RS256',
      thumbprint: 'x5t',
      claims: { aud: service.tokenEndpoint(service.tenantDomain) },
    });
    const answer = await postToken(assertionForm(app, assertion), { tenant: service.tenantDomain });
    expect(answer.status).toBe(200);
    expect(claimsOf(answer.body.access_token as string).appidacr).toBe('2');
    expect(service.requests[0]?.authMethod).toBe('certificate');
  });

  it('accepts a federated assertion that matches a registered federated credential', async () => {
    const issuer = 'https://token.actions.example';
    const subject = 'repo:contoso/mail:environment:prod';
    const app = service.registerApp({ federated: [{ issuer, subject }] });
    const assertion = service.issueFederatedToken({ issuer, subject });
    expect(decodeJwt(assertion).payload).toMatchObject({
      iss: issuer,
      sub: subject,
      aud: FEDERATED_AUDIENCE,
    });
    const answer = await postToken(assertionForm(app, assertion));
    expect(answer.status).toBe(200);
    expect(claimsOf(answer.body.access_token as string).appidacr).toBe('2');
    expect(service.requests[0]?.authMethod).toBe('federated');
  });

  it('issues tokens that expire when the configured lifetime says so', async () => {
    service.setTokenLifetime(2);
    const app = service.registerApp();
    const answer = await postToken(secretForm(app));
    expect(answer.body.expires_in).toBe(2);
    const token = answer.body.access_token as string;
    expect(service.introspect(token)).toMatchObject({ active: true });

    const { exp } = claimsOf(token);
    // The service's clock stopped at the last millisecond before exp, then at exp.
    frozenAt = exp * 1000 - 1;
    expect(service.introspect(token)).toMatchObject({ active: true });
    frozenAt = exp * 1000;
    expect(() => service.verifyAccessToken(token)).toThrow(/expired/);
    const res = await fetch(`${service.url}/_test/introspect`, {
      method: 'POST',
      body: new URLSearchParams({ token }),
    });
    expect(await res.json()).toEqual({ active: false, reason: 'expired' });
  });
});

describe('introspection', () => {
  it('says whether a token is one of ours, valid, and for the audience asked', async () => {
    const app = service.registerApp();
    const token = (await postToken(secretForm(app))).body.access_token as string;
    const introspect = async (form: Record<string, string>) => {
      const res = await fetch(`${service.url}/_test/introspect`, {
        method: 'POST',
        body: new URLSearchParams(form),
      });
      return (await res.json()) as Record<string, unknown>;
    };
    expect(await introspect({ token, audience: OUTLOOK })).toMatchObject({
      active: true,
      claims: { appid: app.clientId, aud: OUTLOOK },
    });
    expect(await introspect({ token, audience: 'https://graph.microsoft.com' })).toEqual({
      active: false,
      reason: 'audience',
    });
    expect(await introspect({ token: 'not.a.jwt' })).toEqual({
      active: false,
      reason: 'malformed',
    });
    const { payload, header } = decodeJwt(token);
    const forged = signJwt(payload, { privateKeyPem: generateRsaKeyPair().privateKeyPem, header });
    expect(await introspect({ token: forged })).toEqual({ active: false, reason: 'signature' });
    expect(service.introspectionRequests).toBe(4);
  });
});

describe('token endpoint: Entra errors', () => {
  it('echoes client-request-id as the correlation id', async () => {
    const app = service.registerApp();
    const correlationId = randomUUID();
    const answer = await postToken(secretForm(app, { client_secret: 'wrong' }), {
      headers: { 'client-request-id': correlationId },
    });
    expect(answer.body.correlation_id).toBe(correlationId);
    expect(answer.body.error_description).toContain(`Correlation ID: ${correlationId} `);
  });

  it('unknown tenant: 400 invalid_request AADSTS90002', async () => {
    const app = service.registerApp();
    const answer = await postToken(secretForm(app), { tenant: 'fabrikam.example' });
    expectEntraError(answer, 400, 'invalid_request', 90002);
  });

  it('unknown client in the tenant: 400 unauthorized_client AADSTS700016', async () => {
    const other = service.registerApp({ tenantId: randomUUID() });
    for (const clientId of [randomUUID(), other.clientId]) {
      const answer = await postToken(secretForm(other, { client_id: clientId }));
      expectEntraError(answer, 400, 'unauthorized_client', 700016);
      expect(answer.body.error_description).toContain(
        `Application with identifier '${clientId}' was not found`,
      );
    }
  });

  it('wrong secret: 401 invalid_client AADSTS7000215, and the secret is never recorded', async () => {
    const app = service.registerApp();
    const answer = await postToken(secretForm(app, { client_secret: 'not-the-secret-value' }));
    expectEntraError(answer, 401, 'invalid_client', 7000215);
    expect(answer.body.error_description).toContain(`for a secret added to app '${app.clientId}'`);
    expect(service.requests).toEqual([
      expect.objectContaining({
        clientId: app.clientId,
        authMethod: 'secret',
        status: 401,
        errorCode: 7000215,
      }),
    ]);
    expect(JSON.stringify(service.requests)).not.toContain('not-the-secret-value');
  });

  it('expired secret: 401 invalid_client AADSTS7000222', async () => {
    const app = service.registerApp({
      secrets: [{ value: 'old-secret', expiresAt: new Date(Date.now() - 1000) }],
    });
    const answer = await postToken(secretForm(app));
    expectEntraError(answer, 401, 'invalid_client', 7000222);
  });

  it('no credential at all: 401 invalid_client AADSTS7000218', async () => {
    const app = service.registerApp();
    const answer = await postToken(secretForm(app, { client_secret: undefined }));
    expectEntraError(answer, 401, 'invalid_client', 7000218);
  });

  it.each([
    ['missing', undefined, 70011, "must include a 'scope' input parameter"],
    [
      'without /.default',
      'https://outlook.office365.com/IMAP.AccessAsUser.All',
      1002012,
      '/.default suffixed',
    ],
    [
      'for an unknown resource',
      'https://unknown.example/.default',
      70011,
      'The scope https://unknown.example/.default is not valid',
    ],
  ])('scope %s: 400 invalid_scope', async (_, scope, code, text) => {
    const app = service.registerApp();
    const answer = await postToken(secretForm(app, { scope }));
    expectEntraError(answer, 400, 'invalid_scope', code);
    expect(answer.body.error_description).toContain(text);
  });

  it('unsupported grant type: 400 unsupported_grant_type AADSTS70003', async () => {
    const app = service.registerApp();
    const answer = await postToken(secretForm(app, { grant_type: 'password' }));
    expectEntraError(answer, 400, 'unsupported_grant_type', 70003);
  });

  it('assertion signed by an unregistered certificate: 401 invalid_client AADSTS700027', async () => {
    const app = service.registerApp({ certificates: [appCert.certificatePem] });
    const stranger = issueCertificate({ commonName: 'stranger', keyBits: 1024 });
    const answer = await postToken(
      assertionForm(app, clientAssertion({ clientId: app.clientId, signer: stranger })),
    );
    expectEntraError(answer, 401, 'invalid_client', 700027);
    expect(answer.body.error_description).toContain(
      `Thumbprint of key used by client: '${certificateThumbprint(stranger.certificatePem)}'`,
    );
  });

  it('assertion with a wrong audience: 401 invalid_client AADSTS50011', async () => {
    const app = service.registerApp({ certificates: [appCert.certificatePem] });
    const assertion = clientAssertion({
      clientId: app.clientId,
      claims: { aud: 'https://login.microsoftonline.com/common/oauth2/v2.0/token' },
    });
    const answer = await postToken(assertionForm(app, assertion));
    expectEntraError(answer, 401, 'invalid_client', 50011);
    expect(answer.body.error_description).toContain(
      'https://login.microsoftonline.com/common/oauth2/v2.0/token',
    );
  });

  it('assertion with an invalid signature: 401 invalid_client AADSTS50012', async () => {
    const app = service.registerApp({ certificates: [appCert.certificatePem] });
    const impostor: Issued = { ...appCert, keys: generateRsaKeyPair() };
    for (const algorithm of ['PS256', 'RS256'] as const) {
      const assertion = clientAssertion({ clientId: app.clientId, signer: impostor, algorithm });
      const answer = await postToken(assertionForm(app, assertion));
      expectEntraError(answer, 401, 'invalid_client', 50012);
    }
  });

  it.each([
    ['expired', { exp: Math.floor(Date.now() / 1000) - 60 }],
    ['without exp', { exp: undefined }],
    ['not yet valid', { nbf: Math.floor(Date.now() / 1000) + 3600 }],
  ])('%s assertion: 401 invalid_client AADSTS700024', async (_, claims) => {
    const app = service.registerApp({ certificates: [appCert.certificatePem] });
    const answer = await postToken(
      assertionForm(app, clientAssertion({ clientId: app.clientId, claims })),
    );
    expectEntraError(answer, 401, 'invalid_client', 700024);
    expect(answer.body.error_description).toContain(
      'Client assertion is not within its valid time range.',
    );
  });

  it('tolerates an nbf slightly ahead, as msal-node rounds the current second', async () => {
    const app = service.registerApp({ certificates: [appCert.certificatePem] });
    const nbf = Math.floor(Date.now() / 1000) + 1;
    const assertion = clientAssertion({ clientId: app.clientId, claims: { nbf, iat: nbf } });
    expect((await postToken(assertionForm(app, assertion))).status).toBe(200);
  });

  it.each(['iss', 'sub'])(
    'assertion whose %s is not the client id: 401 invalid_client AADSTS700021',
    async (claim) => {
      const app = service.registerApp({ certificates: [appCert.certificatePem] });
      const assertion = clientAssertion({
        clientId: app.clientId,
        claims: { [claim]: randomUUID() },
      });
      const answer = await postToken(assertionForm(app, assertion));
      expectEntraError(answer, 401, 'invalid_client', 700021);
    },
  );

  it('malformed assertion: 400 invalid_request AADSTS50027', async () => {
    const app = service.registerApp({ certificates: [appCert.certificatePem] });
    const answer = await postToken(assertionForm(app, 'not-a-jwt'));
    expectEntraError(answer, 400, 'invalid_request', 50027);
  });

  describe('federated assertions', () => {
    const issuer = 'https://idp.example/tenant-a';
    const subject = 'system:serviceaccount:mail:bridge';

    it.each<[string, FederatedTokenOptions]>([
      ['another subject', { issuer, subject: 'system:serviceaccount:mail:other' }],
      ['another audience', { issuer, subject, audience: 'api://something-else' }],
      ['an unregistered issuer', { issuer: 'https://other-idp.example', subject }],
    ])('with %s: 400 invalid_client AADSTS70021', async (_, token) => {
      const app = service.registerApp({ federated: [{ issuer, subject }] });
      const answer = await postToken(assertionForm(app, service.issueFederatedToken(token)));
      expectEntraError(answer, 400, 'invalid_client', 70021);
      expect(answer.body.error_description).toContain(
        `Assertion Issuer: '${token.issuer}'. Assertion Subject: '${token.subject}'. Assertion Audience: '${token.audience ?? FEDERATED_AUDIENCE}'.`,
      );
    });

    it('expired: 401 invalid_client AADSTS700024', async () => {
      const app = service.registerApp({ federated: [{ issuer, subject }] });
      const assertion = service.issueFederatedToken({ issuer, subject, lifetimeSeconds: -30 });
      expectEntraError(
        await postToken(assertionForm(app, assertion)),
        401,
        'invalid_client',
        700024,
      );
    });

    it('signed by another key than the registered one: 401 invalid_client AADSTS50012', async () => {
      const registered = generateRsaKeyPair();
      const app = service.registerApp({
        federated: [
          { issuer: 'https://own-key.example', subject, publicKeyPem: registered.publicKeyPem },
        ],
      });
      const assertion = service.issueFederatedToken({ issuer: 'https://own-key.example', subject });
      expectEntraError(
        await postToken(assertionForm(app, assertion)),
        401,
        'invalid_client',
        50012,
      );
    });
  });
});

describe('fault injection and counters', () => {
  it.each([
    [429, 'temporarily_unavailable', 50196],
    [503, 'temporarily_unavailable', 90033],
    [500, 'server_error', 50000],
  ] as const)(
    'failNext answers %i with Retry-After, then recovers',
    async (status, error, code) => {
      const app = service.registerApp();
      service.failNext(2, { status, retryAfterSeconds: 7 });
      for (let i = 0; i < 2; i++) {
        const answer = await postToken(secretForm(app));
        expectEntraError(answer, status, error, code);
        expect(answer.headers.get('retry-after')).toBe('7');
      }
      expect((await postToken(secretForm(app))).status).toBe(200);
      expect(service.tokenRequests).toBe(3);
      expect(service.requests.map((r) => r.status)).toEqual([status, status, 200]);
    },
  );

  it('failNext without retryAfterSeconds sends no Retry-After', async () => {
    service.failNext(1, { status: 503 });
    const answer = await postToken(secretForm(service.registerApp()));
    expect(answer.status).toBe(503);
    expect(answer.headers.get('retry-after')).toBeNull();
  });

  it('dropNext closes the connection without an answer', async () => {
    const app = service.registerApp();
    service.dropNext(1);
    await expect(postToken(secretForm(app))).rejects.toThrow(/fetch failed/);
    expect((await postToken(secretForm(app))).status).toBe(200);
    expect(service.tokenRequests).toBe(2);
    expect(service.requests.map((r) => r.status)).toEqual([0, 200]);
  });

  it('delayNext holds answers, so a later request can overtake a delayed one', async () => {
    const app = service.registerApp();
    // Long enough for the second request's own handshake on a busy machine.
    service.delayNext(1, 1_000);
    const finished: string[] = [];
    const started = Date.now();
    const slow = postToken(secretForm(app)).then(() => finished.push('slow'));
    // Not a fixed pause: on a busy machine the first request's TLS handshake alone can take longer.
    while (service.tokenRequests < 1) await new Promise((resolve) => setTimeout(resolve, 10));
    await new Promise((resolve) => setTimeout(resolve, 20));
    const fast = postToken(secretForm(app)).then(() => finished.push('fast'));
    await Promise.all([slow, fast]);
    expect(finished).toEqual(['fast', 'slow']);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    expect(service.tokenRequests).toBe(2);
  });

  it('resetCounters clears counts and the request log', async () => {
    await postToken(secretForm(service.registerApp()));
    await fetch(`${service.url}/${service.tenantId}/v2.0/.well-known/openid-configuration`);
    expect([service.tokenRequests, service.metadataRequests, service.requests.length]).toEqual([
      1, 1, 1,
    ]);
    service.resetCounters();
    expect([service.tokenRequests, service.metadataRequests, service.requests.length]).toEqual([
      0, 0, 0,
    ]);
  });
});

describe('real @azure/msal-node 7 against the service', () => {
  const scopes = [OUTLOOK_SCOPE];

  function msal(app: RegisteredApp, credential: object, tenant = service.tenantId) {
    return new ConfidentialClientApplication({
      auth: {
        clientId: app.clientId,
        authority: service.authority(tenant),
        knownAuthorities: [service.host],
        ...credential,
      },
    });
  }

  it.each([
    ['tenant GUID', () => service.tenantId],
    ['tenant domain', () => service.tenantDomain],
  ])(
    'gets a token with a client secret (authority by %s), then serves it from cache',
    async (_, tenant) => {
      const app = service.registerApp({ roles: { [OUTLOOK]: ['IMAP.AccessAsApp'] } });
      const client = msal(app, { clientSecret: app.secret }, tenant());
      const first = await client.acquireTokenByClientCredential({ scopes });
      expect(first?.fromCache).toBe(false);
      expect(
        service.verifyAccessToken(first?.accessToken ?? '', { audience: OUTLOOK }),
      ).toMatchObject({
        appid: app.clientId,
        appidacr: '1',
        roles: ['IMAP.AccessAsApp'],
      });
      const second = await client.acquireTokenByClientCredential({ scopes });
      expect(second?.fromCache).toBe(true);
      expect([service.metadataRequests, service.tokenRequests]).toEqual([1, 1]);
      expect(service.requests[0]).toMatchObject({
        tenant: tenant(),
        scope: OUTLOOK_SCOPE,
        authMethod: 'secret',
      });
    },
  );

  it('gets a token with clientCertificate (thumbprintSha256: PS256, x5t#S256)', async () => {
    const app = service.registerApp({ certificates: [appCert.certificatePem] });
    const client = msal(app, {
      clientCertificate: {
        thumbprintSha256: certificateThumbprint(appCert.certificatePem, 'sha256'),
        privateKey: appCert.keys.privateKeyPem,
      },
    });
    const result = await client.acquireTokenByClientCredential({ scopes });
    expect(claimsOf(result?.accessToken ?? '')).toMatchObject({
      appid: app.clientId,
      appidacr: '2',
    });
    expect(service.requests[0]?.authMethod).toBe('certificate');
  });

  it('gets a token with a clientAssertion callback building a certificate assertion', async () => {
    const app = service.registerApp({ certificates: [appCert.certificatePem] });
    const seenEndpoints: string[] = [];
    const client = msal(app, {
      clientAssertion: async ({ tokenEndpoint }: { tokenEndpoint: string }) => {
        seenEndpoints.push(tokenEndpoint);
        return clientAssertion({ clientId: app.clientId, claims: { aud: tokenEndpoint } });
      },
    });
    const result = await client.acquireTokenByClientCredential({ scopes });
    expect(claimsOf(result?.accessToken ?? '').appidacr).toBe('2');
    expect(seenEndpoints).toEqual([service.tokenEndpoint()]);
  });

  it('gets a token with a federated clientAssertion', async () => {
    const issuer = 'https://kubernetes.example';
    const subject = 'system:serviceaccount:mail:bridge';
    const app = service.registerApp({ federated: [{ issuer, subject }] });
    const client = msal(app, {
      clientAssertion: async () => service.issueFederatedToken({ issuer, subject }),
    });
    const result = await client.acquireTokenByClientCredential({ scopes });
    expect(claimsOf(result?.accessToken ?? '').appid).toBe(app.clientId);
    expect(service.requests[0]?.authMethod).toBe('federated');
  });

  it('surfaces Entra errors as ServerError with the AADSTS number', async () => {
    const app = service.registerApp();
    const client = msal(app, { clientSecret: 'wrong' });
    const error = await client.acquireTokenByClientCredential({ scopes }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServerError);
    expect(error).toMatchObject({ errorCode: 'invalid_client', errorNo: 7000215, status: 401 });
  });

  it('surfaces an injected 503 as temporarily_unavailable', async () => {
    const app = service.registerApp();
    service.failNext(1, { status: 503, retryAfterSeconds: 1 });
    const client = msal(app, { clientSecret: app.secret });
    const error = await client.acquireTokenByClientCredential({ scopes }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServerError);
    expect(error).toMatchObject({ errorCode: 'temporarily_unavailable', status: 503 });
  });
});
