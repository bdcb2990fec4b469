/**
 * A local stand-in for Microsoft Entra ID's v2.0 endpoint, limited to what
 * app-only IMAP/SMTP needs: OIDC metadata, JWKS and the client-credentials
 * grant with a secret, a certificate-signed assertion or a federated
 * assertion. Errors carry Entra's HTTP statuses, `error` values and AADSTS
 * codes so the product's error handling is exercised against the real shapes.
 *
 * It serves HTTPS with a certificate from the run's test CA (see test-ca.ts):
 * clients reach it only through `AZURE_AUTHORITY_HOST`-style settings and
 * NODE_EXTRA_CA_CERTS, with no TLS switches of their own.
 */
import {
  createPublicKey,
  type KeyObject,
  randomBytes,
  randomUUID,
  X509Certificate,
} from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import {
  audienceIncludes,
  base64url,
  type DecodedJwt,
  decodeJwt,
  type JwtClaims,
  MalformedJwtError,
  signJwt,
  verifyJwtSignature,
} from './jwt.js';
import {
  generateRsaKeyPair,
  type Issued,
  issueCertificate,
  issueServerCertificate,
  type KeyPair,
} from './pki.js';
import { loadTestCa } from './test-ca.js';

export const DEFAULT_RESOURCES: readonly string[] = [
  'https://outlook.office365.com',
  'https://graph.microsoft.com',
  'https://outlook.office365.us',
  'https://outlook-dod.office365.us',
  'https://partner.outlook.cn',
];
export const DEFAULT_TENANT_DOMAIN = 'contoso.example';
export const DEFAULT_TOKEN_LIFETIME_SECONDS = 3599;
export const FEDERATED_AUDIENCE = 'api://AzureADTokenExchange';
export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

// ---------------------------------------------------------------------------
// Public types

export interface TokenServiceOptions {
  /** Lifetime of issued access tokens; default 3599 s, as Entra. */
  tokenLifetimeSeconds?: number;
  /** Resources a `/.default` scope may name; replaces DEFAULT_RESOURCES. */
  resources?: readonly string[];
  /** GUID of the default tenant; random when absent. */
  tenantId?: string;
  /** Verified domain of the default tenant; default `contoso.example`. */
  tenantDomain?: string;
  /**
   * The service's clock in ms, for token times and credential expiry; default
   * Date.now. A test moves it forward instead of waiting for a token to expire.
   */
  now?: () => number;
  /** CA that issues the service's TLS certificate. @default the test run's CA (test-ca.ts) */
  ca?: Issued;
  /** Loopback port to listen on. @default a free one */
  port?: number;
}

export interface SecretCredential {
  value: string;
  expiresAt?: Date;
}

export interface FederatedCredential {
  issuer: string;
  subject: string;
  /** Default `api://AzureADTokenExchange`, as the portal sets it. */
  audience?: string;
  /** Key the issuer signs with; when absent the service makes (or reuses) one for the issuer. */
  publicKeyPem?: string;
}

export interface RegisterAppOptions {
  /** Tenant GUID; a new tenant is created when it is not known yet. Default: the default tenant. */
  tenantId?: string;
  clientId?: string;
  displayName?: string;
  /** When no secret, certificate or federated credential is given, one random secret is created. */
  secrets?: SecretCredential[];
  /** PEM certificates whose keys may sign client assertions. */
  certificates?: string[];
  federated?: FederatedCredential[];
  /** Application permissions granted (admin-consented) per resource, e.g. IMAP.AccessAsApp. */
  roles?: Record<string, string[]>;
}

export interface RegisteredApp {
  readonly tenantId: string;
  readonly clientId: string;
  /** Object id of the service principal: the `oid` and `sub` of its tokens. */
  readonly servicePrincipalId: string;
  readonly displayName: string;
  readonly secrets: readonly SecretCredential[];
  /** The first secret's value, for the common single-secret case. */
  readonly secret: string | undefined;
  readonly certificates: readonly string[];
  readonly federated: readonly Required<FederatedCredential>[];
  /** Currently granted roles per resource (keys lowercased, without trailing slash). */
  readonly roles: Record<string, string[]>;
}

export interface Tenant {
  readonly tenantId: string;
  readonly domains: readonly string[];
  readonly displayName: string;
}

export type AuthMethod = 'secret' | 'certificate' | 'federated';

export interface TokenRequestRecord {
  at: Date;
  /** The tenant as written in the request path (GUID or domain). */
  tenant: string;
  clientId?: string;
  authMethod?: AuthMethod;
  scope?: string;
  /** HTTP status answered; 0 when the connection was dropped without an answer. */
  status: number;
  /** AADSTS code of an error answer. */
  errorCode?: number;
  /** Certificates in the assertion's `x5c` header, when it has one. */
  x5c?: number;
}

export interface FailOptions {
  status: 429 | 500 | 503;
  retryAfterSeconds?: number;
}

/**
 * An answer that no real Entra gives: what a proxy's error page, another
 * service or a broken or hostile server sends instead.
 */
export type RawAnswer =
  | { kind: 'body'; status?: number; body: string; contentType?: string }
  /** 200 and a body that never ends (64 KiB chunks for as long as the client reads). */
  | { kind: 'endless' };

export type FaultEndpoint = 'token' | 'metadata';

export interface FederatedTokenOptions {
  issuer: string;
  subject: string;
  audience?: string;
  /** Negative values give an already expired token. Default 600. */
  lifetimeSeconds?: number;
}

export interface AccessTokenClaims extends JwtClaims {
  aud: string;
  iss: string;
  iat: number;
  nbf: number;
  exp: number;
  tid: string;
  appid: string;
  appidacr: '1' | '2';
  oid: string;
  sub: string;
  idtyp: 'app';
  ver: '1.0';
  uti: string;
  roles?: string[];
}

export interface VerifyOptions {
  /** Require this `aud`. */
  audience?: string;
}

export interface IntrospectionResult {
  active: boolean;
  claims?: AccessTokenClaims;
  reason?: InvalidTokenReason;
}

export type InvalidTokenReason =
  | 'malformed'
  | 'signature'
  | 'issuer'
  | 'expired'
  | 'not_yet_valid'
  | 'audience';

export class InvalidAccessTokenError extends Error {
  override name = 'InvalidAccessTokenError';
  constructor(
    readonly reason: InvalidTokenReason,
    message: string,
  ) {
    super(message);
  }
}

export interface TokenService {
  /** `https://127.0.0.1:PORT` */
  readonly url: string;
  /** `127.0.0.1:PORT`, what msal-node's `knownAuthorities` needs. */
  readonly host: string;
  readonly port: number;
  /** The default tenant's GUID and domain. */
  readonly tenantId: string;
  readonly tenantDomain: string;
  /** Token endpoint POSTs, failed and dropped ones included. */
  readonly tokenRequests: number;
  /** GETs of openid-configuration. */
  readonly metadataRequests: number;
  readonly introspectionRequests: number;
  readonly requests: readonly TokenRequestRecord[];
  /** Certificate of the key that signs access tokens (also in the JWKS). */
  readonly signingCertificatePem: string;

  /** `https://127.0.0.1:PORT/{tenant}`; default: the default tenant's GUID. */
  authority(tenant?: string): string;
  /** `https://127.0.0.1:PORT/{tenant}/oauth2/v2.0/token`. */
  tokenEndpoint(tenant?: string): string;

  addTenant(options?: { tenantId?: string; domains?: string[]; displayName?: string }): Tenant;
  registerApp(options?: RegisterAppOptions): RegisteredApp;
  grantRoles(clientId: string, resource: string, roles: string[]): void;
  /** Without `roles`, revokes every role on that resource. */
  revokeRoles(clientId: string, resource: string, roles?: string[]): void;
  addResource(resource: string): void;
  setTokenLifetime(seconds: number): void;
  issueFederatedToken(options: FederatedTokenOptions): string;

  failNext(count: number, options: FailOptions): void;
  /** The next token requests get their socket destroyed without an answer. */
  dropNext(count: number): void;
  /** The next token requests are answered only after `ms`. */
  delayNext(count: number, ms: number): void;
  /** The next requests to `endpoint` (default the token endpoint) get `answer` instead. */
  answerNext(count: number, answer: RawAnswer, endpoint?: FaultEndpoint): void;
  /** Bytes written in endless bodies so far. */
  readonly endlessBytes: number;
  clearFaults(): void;

  verifyAccessToken(token: string, options?: VerifyOptions): AccessTokenClaims;
  introspect(token: string, options?: VerifyOptions): IntrospectionResult;
  resetCounters(): void;
  close(): Promise<void>;
}

export async function startTokenService(options: TokenServiceOptions = {}): Promise<TokenService> {
  const service = new EntraTokenService(options);
  await service.listen();
  return service;
}

// ---------------------------------------------------------------------------
// Internals

interface TenantRecord {
  tenantId: string;
  domains: string[];
  displayName: string;
}

interface RegisteredCertificate {
  pem: string;
  sha1: string;
  sha256: string;
  publicKey: KeyObject;
  validFrom: Date;
  validTo: Date;
}

interface AppRecord extends RegisteredApp {
  secrets: SecretCredential[];
  federated: Required<FederatedCredential>[];
  registeredCertificates: RegisteredCertificate[];
  grants: Map<string, Set<string>>;
}

/** An answer in Entra's error shape; thrown from the checks, caught by the request handler. */
class EntraError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly code: number,
    readonly text: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(`AADSTS${code}: ${text}`);
  }
}

interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
  /** How the client authenticated, once the token endpoint knows for sure. */
  authMethod?: AuthMethod;
}

interface Credentials {
  clientId: string | undefined;
  secret: string | undefined;
  assertion: string | undefined;
  assertionType: string | undefined;
}

type Fault = { kind: 'fail'; status: number; retryAfterSeconds?: number } | { kind: 'drop' };

interface SigningKey {
  keys: KeyPair;
  certificatePem: string;
  kid: string;
}

const MAX_BODY_BYTES = 1024 * 1024;
const GRAPH_RESOURCE = 'https://graph.microsoft.com';
/** Application permissions with which an app-only caller may read any application. */
const GRAPH_APPLICATION_READERS = ['Application.Read.All', 'Application.ReadWrite.All'];
/** Entra backdates iat/nbf of its tokens by five minutes to absorb clock skew. */
const BACKDATE_SECONDS = 300;
/**
 * msal-node rounds "now" to the nearest second, so its assertions' nbf can be
 * up to half a second ahead of a server's clock; Entra tolerates minutes of
 * skew there. Expiry is checked strictly, so tests of expired assertions need
 * no minutes-old timestamps.
 */
const NOT_BEFORE_SKEW_SECONDS = 300;

class EntraTokenService implements TokenService {
  private server: Server | undefined;
  private origin = '';
  private listeningPort = 0;
  private readonly tenants = new Map<string, TenantRecord>();
  private readonly tenantByDomain = new Map<string, TenantRecord>();
  private readonly apps = new Map<string, AppRecord>();
  private readonly resources = new Map<string, string>();
  private readonly idpKeys = new Map<string, KeyPair>();
  private readonly faults: Fault[] = [];
  private readonly raw: Record<FaultEndpoint, RawAnswer[]> = { token: [], metadata: [] };
  private endlessCount = 0;
  private readonly delays: number[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly signing: SigningKey;
  private readonly defaultTenant: TenantRecord;
  private lifetimeSeconds: number;
  private records: TokenRequestRecord[] = [];
  private tokenCount = 0;
  private metadataCount = 0;
  private introspectionCount = 0;
  private readonly now: () => number;

  constructor(private readonly options: TokenServiceOptions) {
    this.now = options.now ?? Date.now;
    this.lifetimeSeconds = checkLifetime(
      options.tokenLifetimeSeconds ?? DEFAULT_TOKEN_LIFETIME_SECONDS,
    );
    for (const resource of options.resources ?? DEFAULT_RESOURCES) this.addResource(resource);
    this.signing = createSigningKey();
    this.defaultTenant = this.createTenant(
      options.tenantId ?? randomUUID(),
      [options.tenantDomain ?? DEFAULT_TENANT_DOMAIN],
      'Contoso',
    );
  }

  async listen(): Promise<void> {
    const tls = issueServerCertificate(this.options.ca ?? loadTestCa());
    const server = createServer(
      { key: tls.keys.privateKeyPem, cert: tls.certificatePem },
      (req, res) => this.dispatch(req, res),
    );
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port ?? 0, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.listeningPort = (server.address() as AddressInfo).port;
    this.origin = `https://127.0.0.1:${this.listeningPort}`;
  }

  // --- public surface -------------------------------------------------------

  get url(): string {
    return this.origin;
  }
  get host(): string {
    return `127.0.0.1:${this.listeningPort}`;
  }
  get port(): number {
    return this.listeningPort;
  }
  get tenantId(): string {
    return this.defaultTenant.tenantId;
  }
  get tenantDomain(): string {
    return this.defaultTenant.domains[0] ?? this.defaultTenant.tenantId;
  }
  get tokenRequests(): number {
    return this.tokenCount;
  }
  get metadataRequests(): number {
    return this.metadataCount;
  }
  get introspectionRequests(): number {
    return this.introspectionCount;
  }
  get requests(): readonly TokenRequestRecord[] {
    return this.records;
  }
  get signingCertificatePem(): string {
    return this.signing.certificatePem;
  }

  authority(tenant = this.tenantId): string {
    return `${this.origin}/${tenant}`;
  }

  tokenEndpoint(tenant = this.tenantId): string {
    return `${this.origin}/${tenant}/oauth2/v2.0/token`;
  }

  addTenant(options: { tenantId?: string; domains?: string[]; displayName?: string } = {}): Tenant {
    return this.createTenant(
      options.tenantId ?? randomUUID(),
      options.domains ?? [],
      options.displayName ?? 'Default Directory',
    );
  }

  registerApp(options: RegisterAppOptions = {}): RegisteredApp {
    const tenant = options.tenantId
      ? (this.tenants.get(options.tenantId.toLowerCase()) ??
        this.addTenant({ tenantId: options.tenantId }))
      : this.defaultTenant;
    const clientId = options.clientId ?? randomUUID();
    if (this.apps.has(clientId)) throw new Error(`app ${clientId} is already registered`);
    const anyCredential = [options.secrets, options.certificates, options.federated].some(
      (list) => (list?.length ?? 0) > 0,
    );
    const secrets = anyCredential
      ? [...(options.secrets ?? [])]
      : [{ value: generateSecretValue() }];
    const certificates = options.certificates ?? [];
    const federated = (options.federated ?? []).map((f) => this.completeFederated(f));
    const grants = new Map<string, Set<string>>();
    const app: AppRecord = {
      tenantId: tenant.tenantId,
      clientId,
      servicePrincipalId: randomUUID(),
      displayName: options.displayName ?? 'mailbridge test app',
      secrets,
      get secret() {
        return secrets[0]?.value;
      },
      certificates,
      registeredCertificates: certificates.map(parseRegisteredCertificate),
      federated,
      grants,
      get roles() {
        return Object.fromEntries([...grants].map(([resource, roles]) => [resource, [...roles]]));
      },
    };
    this.apps.set(clientId, app);
    for (const [resource, roles] of Object.entries(options.roles ?? {})) {
      this.grantRoles(clientId, resource, roles);
    }
    return app;
  }

  grantRoles(clientId: string, resource: string, roles: string[]): void {
    const grants = this.appOrThrow(clientId).grants;
    const key = normalizeResource(resource);
    const granted = grants.get(key) ?? new Set<string>();
    for (const role of roles) granted.add(role);
    grants.set(key, granted);
  }

  revokeRoles(clientId: string, resource: string, roles?: string[]): void {
    const grants = this.appOrThrow(clientId).grants;
    const key = normalizeResource(resource);
    const granted = grants.get(key);
    if (!granted) return;
    for (const role of roles ?? [...granted]) granted.delete(role);
    if (granted.size === 0) grants.delete(key);
  }

  addResource(resource: string): void {
    this.resources.set(normalizeResource(resource), resource.replace(/\/+$/, ''));
  }

  setTokenLifetime(seconds: number): void {
    this.lifetimeSeconds = checkLifetime(seconds);
  }

  issueFederatedToken(options: FederatedTokenOptions): string {
    const now = this.nowSeconds();
    const claims: JwtClaims = {
      iss: options.issuer,
      sub: options.subject,
      aud: options.audience ?? FEDERATED_AUDIENCE,
      iat: now,
      nbf: now,
      exp: now + (options.lifetimeSeconds ?? 600),
      jti: randomUUID(),
    };
    return signJwt(claims, {
      privateKeyPem: this.idpKey(options.issuer).privateKeyPem,
      header: { typ: 'JWT', kid: 'test-idp-key' },
    });
  }

  failNext(count: number, options: FailOptions): void {
    for (let i = 0; i < count; i++) this.faults.push({ kind: 'fail', ...options });
  }

  dropNext(count: number): void {
    for (let i = 0; i < count; i++) this.faults.push({ kind: 'drop' });
  }

  delayNext(count: number, ms: number): void {
    for (let i = 0; i < count; i++) this.delays.push(ms);
  }

  answerNext(count: number, answer: RawAnswer, endpoint: FaultEndpoint = 'token'): void {
    for (let i = 0; i < count; i++) this.raw[endpoint].push(answer);
  }

  get endlessBytes(): number {
    return this.endlessCount;
  }

  clearFaults(): void {
    this.faults.length = 0;
    this.raw.token.length = 0;
    this.raw.metadata.length = 0;
    this.delays.length = 0;
  }

  verifyAccessToken(token: string, options: VerifyOptions = {}): AccessTokenClaims {
    let decoded: DecodedJwt;
    try {
      decoded = decodeJwt(token);
    } catch (err) {
      throw new InvalidAccessTokenError('malformed', (err as Error).message);
    }
    if (
      decoded.header.kid !== this.signing.kid ||
      !verifyJwtSignature(decoded, this.signing.keys.publicKeyPem, ['RS256'])
    ) {
      throw new InvalidAccessTokenError('signature', 'the token is not signed by this service');
    }
    const claims = decoded.payload as AccessTokenClaims;
    if (
      !this.tenants.has(String(claims.tid)) ||
      claims.iss !== accessTokenIssuer(String(claims.tid))
    ) {
      throw new InvalidAccessTokenError('issuer', `unexpected issuer ${claims.iss}`);
    }
    const now = this.nowSeconds();
    if (typeof claims.exp !== 'number' || claims.exp <= now) {
      throw new InvalidAccessTokenError('expired', `the token expired at ${claims.exp}`);
    }
    if (typeof claims.nbf === 'number' && claims.nbf > now) {
      throw new InvalidAccessTokenError('not_yet_valid', `the token is valid from ${claims.nbf}`);
    }
    if (options.audience !== undefined && !audienceIncludes(claims, options.audience)) {
      throw new InvalidAccessTokenError(
        'audience',
        `the token is for ${claims.aud}, not ${options.audience}`,
      );
    }
    return claims;
  }

  introspect(token: string, options: VerifyOptions = {}): IntrospectionResult {
    try {
      return { active: true, claims: this.verifyAccessToken(token, options) };
    } catch (err) {
      if (err instanceof InvalidAccessTokenError) return { active: false, reason: err.reason };
      throw err;
    }
  }

  resetCounters(): void {
    this.tokenCount = 0;
    this.metadataCount = 0;
    this.introspectionCount = 0;
    this.records = [];
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Clients such as fetch keep connections alive; don't wait for them to go idle.
    server.closeAllConnections();
    await closed;
  }

  // --- routing --------------------------------------------------------------

  private dispatch(req: IncomingMessage, res: ServerResponse): void {
    this.route(req, res).catch((err: unknown) => {
      // A bug here must show up in the test output, not as a hanging client.
      console.error('token service: unexpected failure', err);
      if (!res.headersSent)
        send(res, { status: 500, body: { error: 'server_error', error_description: String(err) } });
      else res.destroy();
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.origin);
    const segments = url.pathname.split('/').filter((s) => s.length > 0);
    const [tenant, ...rest] = segments;
    const path = rest.join('/');
    const method = req.method ?? 'GET';

    if (method === 'POST' && tenant === '_test' && path === 'introspect') {
      send(res, await this.handleIntrospect(req));
    } else if (method === 'GET' && tenant && path === 'v2.0/.well-known/openid-configuration') {
      this.metadataCount++;
      const raw = this.raw.metadata.shift();
      if (raw) {
        this.sendRaw(res, raw);
        return;
      }
      send(
        res,
        this.answerOrError(correlationIdOf(req.headers, url.searchParams), () =>
          this.openIdConfiguration(tenant),
        ),
      );
    } else if (
      method === 'GET' &&
      tenant &&
      (path === 'discovery/v2.0/keys' || path === 'discovery/keys')
    ) {
      send(
        res,
        this.answerOrError(correlationIdOf(req.headers, url.searchParams), () => this.jwks(tenant)),
      );
    } else if (method === 'POST' && tenant && path === 'oauth2/v2.0/token') {
      await this.handleToken(req, res, tenant, url.searchParams);
    } else if (method === 'GET' && tenant === 'v1.0' && path.startsWith('applications(')) {
      send(res, this.graphApplication(req, decodeURIComponent(path)));
    } else if (tenant && path === 'oauth2/v2.0/token') {
      const onlyPost = new EntraError(
        400,
        'invalid_request',
        900561,
        `The endpoint only accepts POST, OPTIONS requests. Received a ${method} request.`,
      );
      send(res, errorAnswer(onlyPost, correlationIdOf(req.headers, url.searchParams)));
    } else {
      send(res, {
        status: 404,
        body: { error: 'not_found', error_description: `no route for ${method} ${url.pathname}` },
      });
    }
  }

  private answerOrError(correlationId: string, produce: () => Answer): Answer {
    try {
      return produce();
    } catch (err) {
      if (err instanceof EntraError) return errorAnswer(err, correlationId);
      throw err;
    }
  }

  // --- Microsoft Graph: an application's own credentials ----------------------

  /**
   * `GET /v1.0/applications(appId='…')`, the part of Graph that
   * `credentials check --graph` reads: the caller needs a Graph token whose
   * roles include Application.Read.All or Application.ReadWrite.All, as Graph
   * asks of an app-only caller that does not own the application.
   */
  private graphApplication(req: IncomingMessage, path: string): Answer {
    const graphError = (status: number, code: string, message: string): Answer => ({
      status,
      body: { error: { code, message, innerError: { 'request-id': randomUUID() } } },
    });
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    let claims: AccessTokenClaims;
    try {
      claims = this.verifyAccessToken(bearer ?? '', { audience: GRAPH_RESOURCE });
    } catch {
      return graphError(401, 'InvalidAuthenticationToken', 'Access token validation failure.');
    }
    const roles = claims.roles ?? [];
    if (!roles.some((role) => GRAPH_APPLICATION_READERS.includes(role))) {
      return graphError(
        403,
        'Authorization_RequestDenied',
        'Insufficient privileges to complete the operation.',
      );
    }
    const appId = /^applications\(appId='([^']*)'\)$/.exec(path)?.[1];
    const app = appId ? this.apps.get(appId) : undefined;
    if (!app || app.tenantId !== claims.tid) {
      return graphError(
        404,
        'Request_ResourceNotFound',
        `Resource '${appId ?? path}' does not exist or one of its queried reference-property objects are not present.`,
      );
    }
    const iso = (date: Date) => date.toISOString().replace(/\.\d{3}Z$/, 'Z');
    return {
      status: 200,
      body: {
        '@odata.context': `${this.origin}/v1.0/$metadata#applications(passwordCredentials,keyCredentials)/$entity`,
        passwordCredentials: app.secrets.map((secret, i) => ({
          customKeyIdentifier: null,
          displayName: `secret ${i + 1}`,
          endDateTime: iso(secret.expiresAt ?? new Date(this.now() + 730 * 86_400_000)),
          hint: secret.value.slice(0, 3),
          keyId: randomUUID(),
          secretText: null,
          startDateTime: iso(new Date(this.now() - 86_400_000)),
        })),
        keyCredentials: app.registeredCertificates.map((certificate) => ({
          customKeyIdentifier: Buffer.from(certificate.sha1, 'hex').toString('base64'),
          displayName: new X509Certificate(certificate.pem).subject.replace(/\n/g, ', '),
          endDateTime: iso(certificate.validTo),
          key: null,
          keyId: randomUUID(),
          startDateTime: iso(certificate.validFrom),
          type: 'AsymmetricX509Cert',
          usage: 'Verify',
        })),
      },
    };
  }

  // --- metadata -------------------------------------------------------------

  private openIdConfiguration(tenantSegment: string): Answer {
    const tenant = this.tenantOrThrow(tenantSegment, 'invalid_tenant');
    const base = `${this.origin}/${tenant.tenantId}`;
    return {
      status: 200,
      body: {
        token_endpoint: `${base}/oauth2/v2.0/token`,
        token_endpoint_auth_methods_supported: [
          'client_secret_post',
          'private_key_jwt',
          'client_secret_basic',
        ],
        jwks_uri: `${base}/discovery/v2.0/keys`,
        response_modes_supported: ['query', 'fragment', 'form_post'],
        subject_types_supported: ['pairwise'],
        id_token_signing_alg_values_supported: ['RS256'],
        response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
        scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
        // msal-node accepts the document only if the issuer's scheme, host and port are the authority's.
        issuer: `${base}/v2.0`,
        request_uri_parameter_supported: false,
        userinfo_endpoint: 'https://graph.microsoft.com/oidc/userinfo',
        authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
        device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
        http_logout_supported: true,
        frontchannel_logout_supported: true,
        end_session_endpoint: `${base}/oauth2/v2.0/logout`,
        claims_supported: [
          'sub',
          'iss',
          'cloud_instance_name',
          'cloud_instance_host_name',
          'cloud_graph_host_name',
          'msgraph_host',
          'aud',
          'exp',
          'iat',
          'auth_time',
          'acr',
          'nonce',
          'preferred_username',
          'name',
          'tid',
          'ver',
          'at_hash',
          'c_hash',
          'email',
        ],
        kerberos_endpoint: `${base}/kerberos`,
        tenant_region_scope: 'EU',
        cloud_instance_name: 'microsoftonline.com',
        cloud_graph_host_name: 'graph.windows.net',
        msgraph_host: 'graph.microsoft.com',
        rbac_url: 'https://pas.windows.net',
      },
    };
  }

  private jwks(tenantSegment: string): Answer {
    const tenant = this.tenantOrThrow(tenantSegment, 'invalid_tenant');
    const jwk = createPublicKey(this.signing.keys.publicKeyPem).export({ format: 'jwk' });
    const der = new X509Certificate(this.signing.certificatePem).raw.toString('base64');
    return {
      status: 200,
      body: {
        keys: [
          {
            kty: 'RSA',
            use: 'sig',
            kid: this.signing.kid,
            x5t: this.signing.kid,
            n: jwk.n,
            e: jwk.e,
            x5c: [der],
            issuer: `${this.origin}/${tenant.tenantId}/v2.0`,
          },
        ],
      },
    };
  }

  // --- token endpoint -------------------------------------------------------

  private async handleToken(
    req: IncomingMessage,
    res: ServerResponse,
    tenantSegment: string,
    query: URLSearchParams,
  ): Promise<void> {
    this.tokenCount++;
    const record: TokenRequestRecord = { at: new Date(), tenant: tenantSegment, status: 0 };
    const form = new URLSearchParams(await readBody(req));
    const credentials = readCredentials(form, req.headers);
    const correlationId = correlationIdOf(req.headers, query, form);
    record.clientId = credentials.clientId;
    record.scope = form.get('scope') ?? undefined;
    record.authMethod = this.guessAuthMethod(credentials);
    const x5c = assertionChainLength(credentials.assertion);
    if (x5c !== undefined) record.x5c = x5c;

    const delay = this.delays.shift();
    if (delay !== undefined) await this.sleep(delay);
    // Closed while holding the answer: the socket is gone, nobody is waiting.
    if (!this.server) return;

    const raw = this.raw.token.shift();
    if (raw) {
      record.status = raw.kind === 'body' ? (raw.status ?? 200) : 200;
      this.records.push(record);
      this.sendRaw(res, raw);
      return;
    }
    const fault = this.faults.shift();
    if (fault?.kind === 'drop') {
      this.records.push(record);
      req.socket.destroy();
      return;
    }
    const answer = fault
      ? faultAnswer(fault, correlationId)
      : this.answerOrError(correlationId, () => this.tokenAnswer(tenantSegment, form, credentials));
    record.status = answer.status;
    if (answer.authMethod) record.authMethod = answer.authMethod;
    const code = (answer.body as { error_codes?: number[] }).error_codes?.[0];
    if (code !== undefined) record.errorCode = code;
    this.records.push(record);
    send(res, answer);
  }

  /** The checks in roughly Entra's order: request shape, tenant, app, scope, credential, resource. */
  private tokenAnswer(
    tenantSegment: string,
    form: URLSearchParams,
    credentials: Credentials,
  ): Answer {
    const tenant = this.tenantOrThrow(tenantSegment, 'invalid_request');
    const grantType = form.get('grant_type');
    if (!grantType) throw missingParameter('grant_type');
    if (grantType !== 'client_credentials') {
      throw new EntraError(
        400,
        'unsupported_grant_type',
        70003,
        `The app requested an unsupported grant type '${grantType}'.`,
      );
    }
    if (!credentials.clientId) throw missingParameter('client_id');
    const scope = parseScope(form.get('scope'));
    const app = this.apps.get(credentials.clientId);
    if (!app || app.tenantId !== tenant.tenantId) throw appNotFound(credentials.clientId, tenant);

    const authMethod = this.authenticate(app, tenant, tenantSegment, credentials);
    const resource = this.resources.get(normalizeResource(scope.resource));
    if (!resource) {
      throw new EntraError(
        400,
        'invalid_scope',
        70011,
        `The provided value for the input parameter 'scope' is not valid. The scope ${scope.raw} is not valid.`,
      );
    }
    return { status: 200, body: this.issueAccessToken(app, resource, authMethod), authMethod };
  }

  private authenticate(
    app: AppRecord,
    tenant: TenantRecord,
    tenantSegment: string,
    credentials: Credentials,
  ): AuthMethod {
    if (credentials.assertion !== undefined) {
      if (credentials.assertionType !== CLIENT_ASSERTION_TYPE) {
        throw new EntraError(
          400,
          'invalid_request',
          90014,
          "The required field 'client_assertion_type' is missing from the credential or is not 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'.",
        );
      }
      return this.authenticateAssertion(app, tenant, tenantSegment, credentials.assertion);
    }
    if (credentials.secret !== undefined) {
      checkSecret(app, credentials.secret, this.now());
      return 'secret';
    }
    throw new EntraError(
      401,
      'invalid_client',
      7000218,
      "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    );
  }

  private authenticateAssertion(
    app: AppRecord,
    tenant: TenantRecord,
    tenantSegment: string,
    assertion: string,
  ): AuthMethod {
    let decoded: DecodedJwt;
    try {
      decoded = decodeJwt(assertion);
    } catch (err) {
      if (err instanceof MalformedJwtError) {
        throw new EntraError(
          400,
          'invalid_request',
          50027,
          `JWT token is invalid or malformed (${err.message}).`,
        );
      }
      throw err;
    }
    const issuer = decoded.payload.iss;
    const hasThumbprint =
      decoded.header.x5t !== undefined || decoded.header['x5t#S256'] !== undefined;
    // An assertion not issued by the app itself is a federated one, unless it names a certificate.
    const federated =
      issuer !== app.clientId && (!hasThumbprint || app.federated.some((f) => f.issuer === issuer));
    if (federated) {
      checkFederatedAssertion(app, decoded, this.now());
      return 'federated';
    }
    const audiences = [this.tokenEndpoint(tenant.tenantId), this.tokenEndpoint(tenantSegment)];
    checkCertificateAssertion(app, decoded, audiences, this.now());
    return 'certificate';
  }

  private issueAccessToken(app: AppRecord, resource: string, authMethod: AuthMethod): object {
    const now = this.nowSeconds();
    const roles = [...(app.grants.get(normalizeResource(resource)) ?? [])];
    const claims: AccessTokenClaims = {
      aud: resource,
      iss: accessTokenIssuer(app.tenantId),
      iat: now - BACKDATE_SECONDS,
      nbf: now - BACKDATE_SECONDS,
      // Rounded up, never down: a client counts `expires_in` from when it sent the request, so
      // the token must live at least that long (rounded down, a 2 s token could die at once).
      exp: Math.ceil(this.now() / 1000) + this.lifetimeSeconds,
      aio: base64url(randomBytes(48)),
      app_displayname: app.displayName,
      appid: app.clientId,
      appidacr: authMethod === 'secret' ? '1' : '2',
      idp: accessTokenIssuer(app.tenantId),
      idtyp: 'app',
      oid: app.servicePrincipalId,
      rh: `0.${base64url(randomBytes(24))}.`,
      // Entra leaves `roles` out entirely when nothing is granted (delegated-only setups).
      ...(roles.length > 0 ? { roles } : {}),
      sub: app.servicePrincipalId,
      tid: app.tenantId,
      uti: base64url(randomBytes(16)),
      ver: '1.0',
    };
    const accessToken = signJwt(claims, {
      privateKeyPem: this.signing.keys.privateKeyPem,
      header: { typ: 'JWT', x5t: this.signing.kid, kid: this.signing.kid },
    });
    return {
      token_type: 'Bearer',
      expires_in: this.lifetimeSeconds,
      ext_expires_in: this.lifetimeSeconds,
      access_token: accessToken,
    };
  }

  private sendRaw(res: ServerResponse, raw: RawAnswer): void {
    if (raw.kind === 'body') {
      res.writeHead(raw.status ?? 200, {
        'Content-Type': raw.contentType ?? 'text/html; charset=utf-8',
      });
      res.end(raw.body);
      return;
    }
    // No Content-Length: the client cannot know in advance, only by counting.
    res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8' });
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    chunk.write('{"access_token":"');
    const pump = (): void => {
      while (!res.destroyed && !res.writableEnded) {
        this.endlessCount += chunk.length;
        if (!res.write(chunk)) {
          res.once('drain', pump);
          return;
        }
      }
    };
    res.once('close', () => res.removeListener('drain', pump));
    pump();
  }

  // --- introspection --------------------------------------------------------

  private async handleIntrospect(req: IncomingMessage): Promise<Answer> {
    this.introspectionCount++;
    const form = new URLSearchParams(await readBody(req));
    const token = form.get('token');
    if (!token)
      return {
        status: 400,
        body: { error: 'invalid_request', error_description: "missing 'token'" },
      };
    const audience = form.get('audience') ?? undefined;
    return {
      status: 200,
      body: this.introspect(token, audience === undefined ? {} : { audience }),
    };
  }

  // --- helpers with state ---------------------------------------------------

  /** For the request log only, before (or without) authentication deciding it. */
  private guessAuthMethod(credentials: Credentials): AuthMethod | undefined {
    if (credentials.assertion === undefined) {
      return credentials.secret !== undefined ? 'secret' : undefined;
    }
    try {
      const { payload } = decodeJwt(credentials.assertion);
      if (payload.iss === credentials.clientId) return 'certificate';
      const app = credentials.clientId ? this.apps.get(credentials.clientId) : undefined;
      return app?.federated.some((f) => f.issuer === payload.iss) ? 'federated' : 'certificate';
    } catch {
      return 'certificate';
    }
  }

  private createTenant(tenantId: string, domains: string[], displayName: string): TenantRecord {
    const key = tenantId.toLowerCase();
    if (this.tenants.has(key)) throw new Error(`tenant ${tenantId} already exists`);
    const tenant: TenantRecord = { tenantId: key, domains: [...domains], displayName };
    this.tenants.set(key, tenant);
    for (const domain of domains) this.tenantByDomain.set(domain.toLowerCase(), tenant);
    return tenant;
  }

  private tenantOrThrow(
    segment: string,
    error: 'invalid_tenant' | 'invalid_request',
  ): TenantRecord {
    const key = segment.toLowerCase();
    const tenant = this.tenants.get(key) ?? this.tenantByDomain.get(key);
    if (tenant) return tenant;
    throw new EntraError(
      400,
      error,
      90002,
      `Tenant '${segment}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`,
    );
  }

  private appOrThrow(clientId: string): AppRecord {
    const app = this.apps.get(clientId);
    if (!app) throw new Error(`no app ${clientId} is registered`);
    return app;
  }

  private idpKey(issuer: string): KeyPair {
    let keys = this.idpKeys.get(issuer);
    if (!keys) {
      keys = generateRsaKeyPair();
      this.idpKeys.set(issuer, keys);
    }
    return keys;
  }

  private completeFederated(credential: FederatedCredential): Required<FederatedCredential> {
    return {
      issuer: credential.issuer,
      subject: credential.subject,
      audience: credential.audience ?? FEDERATED_AUDIENCE,
      publicKeyPem: credential.publicKeyPem ?? this.idpKey(credential.issuer).publicKeyPem,
    };
  }

  private nowSeconds(): number {
    return Math.floor(this.now() / 1000);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        resolve();
      }, ms);
      this.timers.add(timer);
    });
  }
}

// ---------------------------------------------------------------------------
// Credential checks (pure: app record and request in, EntraError out)

function checkSecret(app: AppRecord, presented: string, nowMs: number): void {
  const match = app.secrets.find((s) => s.value === presented);
  if (!match) {
    throw new EntraError(
      401,
      'invalid_client',
      7000215,
      `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${app.clientId}'.`,
    );
  }
  if (match.expiresAt && match.expiresAt.getTime() <= nowMs) {
    throw new EntraError(
      401,
      'invalid_client',
      7000222,
      `The provided client secret keys for app '${app.clientId}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.`,
    );
  }
}

function checkCertificateAssertion(
  app: AppRecord,
  decoded: DecodedJwt,
  audiences: string[],
  nowMs: number,
): void {
  const { header, payload } = decoded;
  const thumbprint = presentedThumbprint(header['x5t#S256'], header.x5t);
  const certificate = app.registeredCertificates.find((c) =>
    thumbprint.algorithm === 'sha256' ? c.sha256 === thumbprint.hex : c.sha1 === thumbprint.hex,
  );
  if (!certificate) {
    throw new EntraError(
      401,
      'invalid_client',
      700027,
      `The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '${thumbprint.hex}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '${app.clientId}'.]`,
    );
  }
  const keyWindow = `Found key 'Start=${formatTimestamp(certificate.validFrom)}, End=${formatTimestamp(certificate.validTo)}'`;
  if (certificate.validTo.getTime() <= nowMs) {
    throw new EntraError(
      401,
      'invalid_client',
      700027,
      `Client assertion failed signature validation. [Reason - The key used is expired., Thumbprint of key used by client: '${thumbprint.hex}', ${keyWindow}]`,
    );
  }
  if (!verifyJwtSignature(decoded, certificate.publicKey)) {
    throw new EntraError(
      401,
      'invalid_client',
      50012,
      `Client assertion contains an invalid signature. [Reason - The provided signature value did not match the expected signature value., Thumbprint of key used by client: '${thumbprint.hex}', ${keyWindow}]`,
    );
  }
  checkAssertionTime(payload, nowMs);
  if (!audiences.some((aud) => audienceIncludes(payload, aud))) {
    throw new EntraError(
      401,
      'invalid_client',
      50011,
      `The audience '${String(payload.aud)}' of the client assertion does not match the token endpoint '${audiences[0]}'.`,
    );
  }
  if (payload.iss !== app.clientId || payload.sub !== app.clientId) {
    throw new EntraError(
      401,
      'invalid_client',
      700021,
      `Client assertion application identifier doesn't match 'client_id' parameter. (iss '${String(payload.iss)}', sub '${String(payload.sub)}', client_id '${app.clientId}')`,
    );
  }
}

function checkFederatedAssertion(app: AppRecord, decoded: DecodedJwt, nowMs: number): void {
  const { payload } = decoded;
  const record = app.federated.find(
    (f) =>
      f.issuer === payload.iss &&
      f.subject === payload.sub &&
      audienceIncludes(payload, f.audience),
  );
  if (!record) {
    throw new EntraError(
      400,
      'invalid_client',
      70021,
      `No matching federated identity record found for presented assertion. Assertion Issuer: '${String(payload.iss)}'. Assertion Subject: '${String(payload.sub)}'. Assertion Audience: '${String(payload.aud)}'.`,
    );
  }
  if (!verifyJwtSignature(decoded, record.publicKeyPem)) {
    throw new EntraError(
      401,
      'invalid_client',
      50012,
      `Client assertion contains an invalid signature. [Reason - The key of the federated identity credential issuer '${record.issuer}' did not verify the signature.]`,
    );
  }
  checkAssertionTime(payload, nowMs);
}

function checkAssertionTime(payload: JwtClaims, nowMs: number): void {
  const now = Math.floor(nowMs / 1000);
  const { exp, nbf } = payload;
  const expired = typeof exp !== 'number' || exp <= now;
  const early = typeof nbf === 'number' && nbf > now + NOT_BEFORE_SKEW_SECONDS;
  if (expired || early) {
    const show = (t: unknown) =>
      typeof t === 'number' ? formatTimestamp(new Date(t * 1000)) : 'unknown';
    throw new EntraError(
      401,
      'invalid_client',
      700024,
      `Client assertion is not within its valid time range. Current time: ${show(now)}, assertion valid from ${show(nbf)}, expiry time of assertion ${show(exp)}.`,
    );
  }
}

function presentedThumbprint(
  sha256: unknown,
  sha1: unknown,
): { algorithm: 'sha1' | 'sha256'; hex: string } {
  if (typeof sha256 === 'string') return { algorithm: 'sha256', hex: hexOfBase64url(sha256) };
  if (typeof sha1 === 'string') return { algorithm: 'sha1', hex: hexOfBase64url(sha1) };
  return { algorithm: 'sha256', hex: '' };
}

function parseScope(value: string | null): { raw: string; resource: string } {
  const scopes = (value ?? '').split(' ').filter((s) => s.length > 0);
  if (scopes.length === 0) {
    throw new EntraError(
      400,
      'invalid_scope',
      70011,
      "The provided request must include a 'scope' input parameter.",
    );
  }
  const raw = scopes.join(' ');
  const notDefault = scopes.find((s) => !s.endsWith('/.default'));
  if (notDefault !== undefined) {
    throw new EntraError(
      400,
      'invalid_scope',
      1002012,
      `The provided value for scope ${raw} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
    );
  }
  const resources = new Set(scopes.map((s) => normalizeResource(s.slice(0, -'/.default'.length))));
  if (resources.size > 1) {
    throw new EntraError(
      400,
      'invalid_scope',
      28000,
      `Provided value for the input parameter scope is not valid because it contains more than one resource. Scope ${raw} is not valid.`,
    );
  }
  return { raw, resource: (scopes[0] as string).slice(0, -'/.default'.length) };
}

// ---------------------------------------------------------------------------
// Request parsing

function readCredentials(form: URLSearchParams, headers: IncomingHttpHeaders): Credentials {
  const basic = parseBasicAuthorization(headers.authorization);
  return {
    clientId: form.get('client_id') ?? basic?.clientId,
    secret: form.get('client_secret') ?? basic?.secret,
    assertion: form.get('client_assertion') ?? undefined,
    assertionType: form.get('client_assertion_type') ?? undefined,
  };
}

/** RFC 6749 §2.3.1: both parts are form-urlencoded before base64. */
function parseBasicAuthorization(
  header: string | undefined,
): { clientId: string; secret: string } | undefined {
  const match = /^Basic\s+(\S+)$/i.exec(header ?? '');
  if (!match?.[1]) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  const formDecode = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '));
  return {
    clientId: formDecode(decoded.slice(0, colon)),
    secret: formDecode(decoded.slice(colon + 1)),
  };
}

/**
 * Entra echoes the caller's `client-request-id` as the correlation id. msal-node
 * sends it in the query string and the form body, other clients as a header.
 */
function correlationIdOf(headers: IncomingHttpHeaders, ...sources: URLSearchParams[]): string {
  const header = headers['client-request-id'];
  const candidates = [Array.isArray(header) ? header[0] : header];
  for (const params of sources) candidates.push(params.get('client-request-id') ?? undefined);
  return candidates.find((c) => c !== undefined && c.length > 0) ?? randomUUID();
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > MAX_BODY_BYTES) throw new Error('request body too large');
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

// ---------------------------------------------------------------------------
// Answers

function errorAnswer(err: EntraError, correlationId: string): Answer {
  const traceId = randomUUID();
  const timestamp = formatTimestamp(new Date());
  return {
    status: err.status,
    headers: { 'x-ms-request-id': traceId, ...err.headers },
    body: {
      error: err.error,
      error_description: `AADSTS${err.code}: ${err.text} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
      error_codes: [err.code],
      timestamp,
      trace_id: traceId,
      correlation_id: correlationId,
      error_uri: `https://login.microsoftonline.com/error?code=${err.code}`,
    },
  };
}

function faultAnswer(fault: Extract<Fault, { kind: 'fail' }>, correlationId: string): Answer {
  const headers: Record<string, string> =
    fault.retryAfterSeconds === undefined ? {} : { 'Retry-After': String(fault.retryAfterSeconds) };
  const [error, code, text] =
    fault.status === 429
      ? ([
          'temporarily_unavailable',
          50196,
          'The server terminated an operation because it encountered a client request loop. Please contact your app vendor.',
        ] as const)
      : fault.status === 503
        ? ([
            'temporarily_unavailable',
            90033,
            'A transient error has occurred. Please try again.',
          ] as const)
        : ([
            'server_error',
            50000,
            'There was an error issuing a token or an issue with our sign-in service.',
          ] as const);
  return errorAnswer(new EntraError(fault.status, error, code, text, headers), correlationId);
}

function send(res: ServerResponse, answer: Answer): void {
  const body = JSON.stringify(answer.body);
  res.writeHead(answer.status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store, no-cache',
    Pragma: 'no-cache',
    'x-ms-ests-server': 'mailbridge-test-token-service',
    ...answer.headers,
  });
  res.end(body);
}

function missingParameter(name: string): EntraError {
  return new EntraError(
    400,
    'invalid_request',
    900144,
    `The request body must contain the following parameter: '${name}'.`,
  );
}

function appNotFound(clientId: string, tenant: TenantRecord): EntraError {
  return new EntraError(
    400,
    'unauthorized_client',
    700016,
    `Application with identifier '${clientId}' was not found in the directory '${tenant.displayName}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
  );
}

// ---------------------------------------------------------------------------
// Small pure helpers

function createSigningKey(): SigningKey {
  const keys = generateRsaKeyPair();
  const issued: Issued = issueCertificate({
    commonName: 'accounts.accesscontrol.windows.net',
    keys,
  });
  // Entra's kid and x5t are both the base64url SHA-1 thumbprint of the signing certificate.
  const kid = base64url(
    Buffer.from(new X509Certificate(issued.certificatePem).fingerprint.replace(/:/g, ''), 'hex'),
  );
  return { keys, certificatePem: issued.certificatePem, kid };
}

function parseRegisteredCertificate(pem: string): RegisteredCertificate {
  const x509 = new X509Certificate(pem);
  return {
    pem,
    sha1: x509.fingerprint.replace(/:/g, '').toUpperCase(),
    sha256: x509.fingerprint256.replace(/:/g, '').toUpperCase(),
    publicKey: x509.publicKey,
    validFrom: new Date(x509.validFrom),
    validTo: new Date(x509.validTo),
  };
}

function accessTokenIssuer(tenantId: string): string {
  return `https://sts.windows.net/${tenantId}/`;
}

function normalizeResource(resource: string): string {
  return resource.replace(/\/+$/, '').toLowerCase();
}

function hexOfBase64url(value: string): string {
  return Buffer.from(value, 'base64url').toString('hex').toUpperCase();
}

/** Entra's timestamp format: `2024-05-01 12:34:56Z`. */
function formatTimestamp(date: Date): string {
  return date
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');
}

function checkLifetime(seconds: number): number {
  if (!Number.isInteger(seconds) || seconds < 1) {
    throw new Error(`token lifetime must be a positive whole number of seconds, got ${seconds}`);
  }
  return seconds;
}

function generateSecretValue(): string {
  // Portal-made secrets are 40 characters of [A-Za-z0-9~._-].
  return randomBytes(30).toString('base64url');
}

function assertionChainLength(assertion: string | undefined): number | undefined {
  if (assertion === undefined) return undefined;
  try {
    const { x5c } = decodeJwt(assertion).header as { x5c?: unknown };
    return Array.isArray(x5c) ? x5c.length : undefined;
  } catch {
    return undefined;
  }
}
