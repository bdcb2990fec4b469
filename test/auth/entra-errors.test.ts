import { describe, expect, it } from 'vitest';
import {
  type EntraErrorContext,
  isRetryableEntraResponse,
  mapEntraError,
  parseEntraError,
} from '../../src/auth/entra-errors.js';
import {
  AuthenticationError,
  ConfigurationError,
  ExitCode,
  type MailbridgeError,
  NetworkError,
  ProtocolError,
} from '../../src/errors.js';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const CLIENT = '0f3c8a4e-5b1d-4c2a-9e7f-1a2b3c4d5e6f';
const TRACE = '8d1f3b2a-6c4e-4f0a-9b7d-2e5c1a3f4b00';
const CORRELATION = 'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d';
const TIMESTAMP = '2026-11-22 03:14:07Z';
const SHA1 = '3F2A9C0B7D1E4F5A6B8C9D0E1F2A3B4C5D6E7F80';

const context: EntraErrorContext = {
  tenantId: TENANT,
  clientId: CLIENT,
  scope: 'https://outlook.office365.com/.default',
  authorityHost: 'https://login.microsoftonline.com',
  credentialKind: 'secret',
};

/** Entra's error JSON as the v2.0 token endpoint sends it. */
function entraBody(error: string, codes: number[], text: string): Record<string, unknown> {
  return {
    error,
    error_description: `${text}\r\nTrace ID: ${TRACE}\r\nCorrelation ID: ${CORRELATION}\r\nTimestamp: ${TIMESTAMP}`,
    error_codes: codes,
    timestamp: TIMESTAMP,
    trace_id: TRACE,
    correlation_id: CORRELATION,
    error_uri: `https://login.microsoftonline.com/error?code=${codes[0]}`,
  };
}

interface Row {
  name: string;
  status: number;
  error: string;
  codes: number[];
  text: string;
  context?: Partial<EntraErrorContext>;
  code: string;
  class: new (...args: never[]) => MailbridgeError;
  exitCode: number;
  /** Fragments of what the user reads. */
  says: string[];
}

const rows: Row[] = [
  {
    name: 'AADSTS7000215, the Secret ID pasted instead of the Value',
    status: 401,
    error: 'invalid_client',
    codes: [7000215],
    text: `AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${CLIENT}'.`,
    code: 'SECRET_INVALID',
    class: AuthenticationError,
    exitCode: ExitCode.auth,
    says: [
      `Entra ID refused the client secret of application ${CLIENT}: the secret is wrong`,
      "Use the secret's Value, which the portal shows only once when the secret is created, not its Secret ID.",
      'create a new secret',
      'AZURE_CLIENT_SECRET',
    ],
  },
  {
    name: 'AADSTS7000222, an expired secret',
    status: 401,
    error: 'invalid_client',
    codes: [7000222],
    text: `AADSTS7000222: The provided client secret keys for app '${CLIENT}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.`,
    code: 'SECRET_EXPIRED',
    class: AuthenticationError,
    exitCode: ExitCode.auth,
    says: [
      `The client secret of application ${CLIENT} has expired`,
      'or switch to a certificate',
      'set AZURE_CLIENT_SECRET to its Value',
    ],
  },
  {
    name: 'AADSTS700016, an unknown application',
    status: 400,
    error: 'unauthorized_client',
    codes: [700016],
    text: `AADSTS700016: Application with identifier '${CLIENT}' was not found in the directory 'Contoso'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
    code: 'APP_NOT_FOUND',
    class: AuthenticationError,
    exitCode: ExitCode.auth,
    says: [
      `Application ${CLIENT} was not found in tenant ${TENANT}`,
      'single-tenant in another directory',
      'Application (client) ID and Directory (tenant) ID',
      'Overview page',
    ],
  },
  {
    name: 'AADSTS90002, an unknown tenant',
    status: 400,
    error: 'invalid_request',
    codes: [90002],
    text: `AADSTS90002: Tenant '${TENANT}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`,
    code: 'TENANT_NOT_FOUND',
    class: ConfigurationError,
    exitCode: ExitCode.usage,
    says: [
      `Tenant ${TENANT} was not found at https://login.microsoftonline.com`,
      'AZURE_TENANT_ID',
      'MAILBRIDGE_CLOUD or AZURE_AUTHORITY_HOST',
      'a US Government or China tenant is not found on the global authority',
    ],
  },
  {
    name: 'AADSTS90038, a tenant of another national cloud',
    status: 400,
    error: 'invalid_request',
    codes: [90038],
    text: `AADSTS90038: Tenant '${TENANT}' is in cloud 'usgov'. Current cloud instance 'microsoftonline.com' does not federate with 'usgov'.`,
    code: 'TENANT_NOT_FOUND',
    class: ConfigurationError,
    exitCode: ExitCode.usage,
    says: [
      `Tenant ${TENANT} belongs to another national cloud than https://login.microsoftonline.com`,
    ],
  },
  {
    name: 'AADSTS70011, an invalid scope',
    status: 400,
    error: 'invalid_scope',
    codes: [70011],
    text: "AADSTS70011: The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope https://outlook.office.com/IMAP.AccessAsUser.All is not valid.",
    context: { scope: 'https://outlook.office.com/IMAP.AccessAsUser.All' },
    code: 'SCOPE_INVALID',
    class: ConfigurationError,
    exitCode: ExitCode.usage,
    says: [
      'Entra ID refused the scope https://outlook.office.com/IMAP.AccessAsUser.All',
      "Ask for the Exchange resource's /.default, https://outlook.office365.com/.default",
    ],
  },
  {
    name: 'AADSTS1002012, a scope without /.default',
    status: 400,
    error: 'invalid_scope',
    codes: [1002012],
    text: 'AADSTS1002012: The provided value for scope IMAP.AccessAsApp is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).',
    context: { scope: 'IMAP.AccessAsApp' },
    code: 'SCOPE_INVALID',
    class: ConfigurationError,
    exitCode: ExitCode.usage,
    says: [
      'The scope IMAP.AccessAsApp does not end in /.default',
      'https://outlook.office365.com/.default',
    ],
  },
  {
    name: 'AADSTS500011, no Exchange service principal in the tenant',
    status: 400,
    error: 'invalid_resource',
    codes: [500011],
    text: 'AADSTS500011: The resource principal named https://outlook.office365.com was not found in the tenant named Contoso. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.',
    code: 'RESOURCE_NOT_FOUND',
    class: ConfigurationError,
    exitCode: ExitCode.usage,
    says: [
      `The resource of scope https://outlook.office365.com/.default has no service principal in tenant ${TENANT}`,
      'Exchange Online is not in this tenant, or the scope belongs to another cloud',
    ],
  },
  {
    name: 'AADSTS650057, no permission requested on Exchange',
    status: 400,
    error: 'invalid_client',
    codes: [650057],
    text: `AADSTS650057: Invalid resource. The client has requested access to a resource which is not listed in the requested permissions in the client's application registration. Client app ID: ${CLIENT}(mailbridge). Resource value from request: https://outlook.office365.com. Resource app ID: 00000002-0000-0ff1-ce00-000000000000. List of valid resources from app registration: 00000003-0000-0000-c000-000000000000.`,
    code: 'PERMISSION_NOT_REQUESTED',
    class: AuthenticationError,
    exitCode: ExitCode.auth,
    says: [
      `Application ${CLIENT} does not request any permission on the resource of scope https://outlook.office365.com/.default`,
      'Office 365 Exchange Online > Application permissions > IMAP.AccessAsApp and/or SMTP.SendAsApp',
      'grant admin consent',
    ],
  },
  {
    name: 'AADSTS700027, a certificate not uploaded to the app',
    status: 401,
    error: 'invalid_client',
    codes: [700027],
    text: `AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: 'AAAA9C0B7D1E4F5A6B8C9D0E1F2A3B4C5D6E7F80', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '${CLIENT}'.]`,
    context: { credentialKind: 'certificate', certificateThumbprint: SHA1.toLowerCase() },
    code: 'CERTIFICATE_NOT_REGISTERED',
    class: AuthenticationError,
    exitCode: ExitCode.auth,
    says: [
      `The certificate that signed the client assertion (SHA-1 thumbprint ${SHA1}) is not registered on application ${CLIENT}`,
      'Upload this certificate',
      'Thumbprint column',
    ],
  },
  {
    name: 'AADSTS50012, an assertion audience that does not match the token endpoint',
    status: 401,
    error: 'invalid_client',
    codes: [70002, 50012],
    text: 'AADSTS70002: Error validating credentials. AADSTS50012: Client assertion audience claim does not match Realm issuer.',
    context: { credentialKind: 'certificate', certificateThumbprint: SHA1 },
    code: 'ASSERTION_AUDIENCE_INVALID',
    class: AuthenticationError,
    exitCode: ExitCode.auth,
    says: [
      "Entra ID refused the client assertion's audience (AADSTS50012,",
      'AZURE_AUTHORITY_HOST (https://login.microsoftonline.com)',
      `AZURE_TENANT_ID (${TENANT})`,
    ],
  },
  {
    name: 'AADSTS5002741, an assertion with two audiences',
    status: 401,
    error: 'invalid_client',
    codes: [5002741],
    text: 'AADSTS5002741: Number of audience values in the provided client credential exceed maximum allowed. 2 audience values provided, maximum allowed is 1.',
    context: { credentialKind: 'certificate' },
    code: 'ASSERTION_AUDIENCE_INVALID',
    class: AuthenticationError,
    exitCode: ExitCode.auth,
    says: ["Entra ID refused the client assertion's audience (AADSTS5002741,"],
  },
  {
    name: 'AADSTS50012, a key that does not belong to the certificate',
    status: 401,
    error: 'invalid_client',
    codes: [50012],
    text: `AADSTS50012: Client assertion contains an invalid signature. [Reason - The key used is not valid., Thumbprint of key used by client: '${SHA1}', Found key 'Start=11/01/2026 00:00:00, End=11/01/2027 00:00:00'.]`,
    context: { credentialKind: 'certificate', certificateThumbprint: SHA1 },
    code: 'ASSERTION_INVALID',
    class: AuthenticationError,
    exitCode: ExitCode.auth,
    says: [
      `Entra ID refused the client assertion signed with the certificate (SHA-1 thumbprint ${SHA1})`,
      'The private key does not belong to the registered certificate',
      'AZURE_CLIENT_CERTIFICATE_PATH',
    ],
  },
  {
    name: 'AADSTS700024, an assertion outside its time range (clock)',
    status: 400,
    error: 'invalid_client',
    codes: [700024],
    text: 'AADSTS700024: Client assertion is not within its valid time range. Current time: 2026-11-22T03:14:07.0000000Z, assertion valid from 2026-11-22T03:24:07.0000000Z, expiry time of assertion 2026-11-22T03:34:07.0000000Z.',
    context: { credentialKind: 'certificate' },
    code: 'ASSERTION_EXPIRED',
    class: AuthenticationError,
    exitCode: ExitCode.auth,
    says: [
      'The client assertion is not within its valid time range',
      "Check the machine's clock (NTP)",
    ],
  },
  {
    name: 'AADSTS700024, a federated token file that is not refreshed',
    status: 400,
    error: 'invalid_client',
    codes: [700024],
    text: 'AADSTS700024: Client assertion is not within its valid time range. Current time: 2026-11-22T03:14:07.0000000Z, expiry time of assertion 2026-11-22T02:14:07.0000000Z.',
    context: { credentialKind: 'federated' },
    code: 'ASSERTION_EXPIRED',
    class: AuthenticationError,
    exitCode: ExitCode.auth,
    says: ['AZURE_FEDERATED_TOKEN_FILE is being refreshed', 'NTP'],
  },
  {
    name: 'AADSTS70021, no federated credential matches',
    status: 400,
    error: 'invalid_request',
    codes: [70021],
    text: "AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: 'https://oidc.prod-aks.azure.com/0a1b2c3d/'. Assertion Subject: 'system:serviceaccount:mail:mailbridge'. Assertion Audience: 'api://AzureADTokenExchange'.",
    context: { credentialKind: 'federated' },
    code: 'FEDERATION_NO_MATCH',
    class: AuthenticationError,
    exitCode: ExitCode.auth,
    says: [
      `No federated identity credential on application ${CLIENT} matches the assertion (issuer https://oidc.prod-aks.azure.com/0a1b2c3d/, subject system:serviceaccount:mail:mailbridge, audience api://AzureADTokenExchange) (AADSTS70021,`,
      'audience api://AzureADTokenExchange',
    ],
  },
  {
    name: 'AADSTS700211, an unknown issuer',
    status: 400,
    error: 'invalid_request',
    codes: [700211],
    text: "AADSTS700211: No matching federated identity record found for presented assertion issuer 'https://token.actions.githubusercontent.com'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.",
    context: { credentialKind: 'federated' },
    code: 'FEDERATION_NO_MATCH',
    class: AuthenticationError,
    exitCode: ExitCode.auth,
    says: ['matches the assertion (issuer https://token.actions.githubusercontent.com)'],
  },
  {
    name: 'AADSTS700212, an unknown audience',
    status: 400,
    error: 'invalid_request',
    codes: [700212],
    text: "AADSTS700212: No matching federated identity record found for presented assertion audience 'api://wrong'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.",
    context: { credentialKind: 'federated' },
    code: 'FEDERATION_NO_MATCH',
    class: AuthenticationError,
    exitCode: ExitCode.auth,
    says: ['matches the assertion (audience api://wrong)'],
  },
  {
    name: 'AADSTS700213, an unknown subject',
    status: 400,
    error: 'invalid_request',
    codes: [700213],
    text: "AADSTS700213: No matching federated identity record found for presented assertion subject 'repo:contoso/mail:ref:refs/heads/main'. Please note that the matching is done using a case-sensitive comparison. Check your federated identity credential Subject, Audience and Issuer against the presented assertion.",
    context: { credentialKind: 'federated' },
    code: 'FEDERATION_NO_MATCH',
    class: AuthenticationError,
    exitCode: ExitCode.auth,
    says: [
      'matches the assertion (subject repo:contoso/mail:ref:refs/heads/main)',
      'compared case-sensitively',
    ],
  },
  {
    name: 'AADSTS7000112, a disabled application',
    status: 401,
    error: 'unauthorized_client',
    codes: [7000112],
    text: `AADSTS7000112: Application '${CLIENT}'(mailbridge) is disabled.`,
    code: 'APP_DISABLED',
    class: AuthenticationError,
    exitCode: ExitCode.auth,
    says: [
      `Application ${CLIENT} is disabled in tenant ${TENANT}`,
      '"Enabled for users to sign in?" = Yes',
    ],
  },
  {
    name: 'AADSTS53003, blocked by Conditional Access',
    status: 400,
    error: 'invalid_grant',
    codes: [53003],
    text: 'AADSTS53003: Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.',
    code: 'CONDITIONAL_ACCESS_BLOCKED',
    class: AuthenticationError,
    exitCode: ExitCode.auth,
    says: [
      `A Conditional Access policy blocked the token for application ${CLIENT}`,
      'service principal sign-in logs',
    ],
  },
  {
    name: 'AADSTS7000218, no credential in the request',
    status: 401,
    error: 'invalid_client',
    codes: [7000218],
    text: "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    code: 'CREDENTIAL_MISSING',
    class: ConfigurationError,
    exitCode: ExitCode.usage,
    says: [
      'The token request carried no client secret and no client assertion',
      'AZURE_CLIENT_SECRET, a certificate (AZURE_CLIENT_CERTIFICATE_PATH) or a federated token file (AZURE_FEDERATED_TOKEN_FILE)',
    ],
  },
];

describe('mapEntraError: one row per AADSTS number', () => {
  for (const row of rows) {
    it(`${row.name} → ${row.code}`, () => {
      const body = entraBody(row.error, row.codes, row.text);
      const err = mapEntraError({ status: row.status, body }, { ...context, ...row.context });

      expect(err).toBeInstanceOf(row.class);
      expect(err.code).toBe(row.code);
      expect(err.exitCode).toBe(row.exitCode);
      expect(err.entra).toEqual({
        error: row.error,
        errorCodes: row.codes,
        traceId: TRACE,
        correlationId: CORRELATION,
        timestamp: TIMESTAMP,
        status: row.status,
      });
      for (const fragment of row.says) expect(err.message).toContain(fragment);
      expect(err.message).toContain(`trace id ${TRACE}, correlation id ${CORRELATION})`);
      expect(err.cause).toBeUndefined();
      // Our sentence, not Entra's: its description is never copied in.
      expect(err.message).not.toContain(row.text.split('\r\n')[0]?.slice(0, 60));
      expect(err.message).not.toContain('Trace ID:');
      expect(err.message).not.toMatch(/[\r\n]/);
    });
  }

  it('writes the whole message for AADSTS7000215 as the user reads it', () => {
    const err = mapEntraError(
      { status: 401, body: entraBody('invalid_client', [7000215], rows[0]?.text ?? '') },
      context,
    );
    expect(err.message).toBe(
      `Entra ID refused the client secret of application ${CLIENT}: the secret is wrong ` +
        `(AADSTS7000215, trace id ${TRACE}, correlation id ${CORRELATION}). ` +
        "Use the secret's Value, which the portal shows only once when the secret is created, not its Secret ID. " +
        "If the Value is lost, create a new secret under the app registration's Certificates & secrets and set AZURE_CLIENT_SECRET to it.",
    );
    expect(err.remedy).toMatch(/^Use the secret's Value/);
    expect(err.name).toBe('AuthenticationError');
  });

  it('keeps the entra details and drops the cause in toJSON', () => {
    const err = mapEntraError(
      { status: 401, body: entraBody('invalid_client', [7000222], 'AADSTS7000222: expired.') },
      context,
    );
    expect(JSON.parse(JSON.stringify(err))).toEqual({
      name: 'AuthenticationError',
      code: 'SECRET_EXPIRED',
      message: err.message,
      remedy: err.remedy,
      exitCode: 3,
      entra: {
        error: 'invalid_client',
        errorCodes: [7000222],
        traceId: TRACE,
        correlationId: CORRELATION,
        timestamp: TIMESTAMP,
        status: 401,
      },
    });
  });

  it("falls back to Entra's thumbprint when we do not know the one we used", () => {
    const err = mapEntraError(
      {
        status: 401,
        body: entraBody(
          'invalid_client',
          [700027],
          `AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '${SHA1}']`,
        ),
      },
      { ...context, credentialKind: 'certificate' },
    );
    expect(err.message).toContain(`(SHA-1 thumbprint ${SHA1})`);
  });

  it('names a SHA-256 thumbprint as such, colons removed', () => {
    const sha256 = 'AB'.repeat(32);
    const err = mapEntraError(
      {
        status: 401,
        body: entraBody(
          'invalid_client',
          [700027],
          'AADSTS700027: Client assertion failed signature validation.',
        ),
      },
      {
        ...context,
        credentialKind: 'certificate',
        certificateThumbprint: sha256.match(/../g)?.join(':') ?? '',
      },
    );
    expect(err.message).toContain(`(SHA-256 thumbprint ${sha256})`);
  });

  it('suggests the Exchange scope of the cloud the authority belongs to', () => {
    const body = entraBody('invalid_scope', [70011], 'AADSTS70011: The scope is not valid.');
    const usgov = mapEntraError(
      { status: 400, body },
      { ...context, authorityHost: 'https://login.microsoftonline.us' },
    );
    expect(usgov.remedy).toContain(
      'https://outlook.office365.us/.default or https://outlook-dod.office365.us/.default',
    );
    const china = mapEntraError(
      { status: 400, body },
      { ...context, authorityHost: 'https://login.partner.microsoftonline.cn/' },
    );
    expect(china.remedy).toContain('https://partner.outlook.cn/.default');
  });

  it('says what was refused for each credential kind on AADSTS50012', () => {
    const body = entraBody(
      'invalid_client',
      [50012],
      'AADSTS50012: Client assertion contains an invalid signature.',
    );
    const federated = mapEntraError(
      { status: 401, body },
      { ...context, credentialKind: 'federated' },
    );
    expect(federated.code).toBe('ASSERTION_INVALID');
    expect(federated.message).toMatch(
      /^Entra ID refused the federated client assertion \(AADSTS50012/,
    );
    expect(federated.remedy).toContain('AZURE_FEDERATED_TOKEN_FILE');
    const secret = mapEntraError({ status: 401, body }, context);
    expect(secret.message).toMatch(/^Entra ID refused the client credential of application/);
  });

  it('takes the first AADSTS number it knows when Entra nests them', () => {
    const err = mapEntraError(
      {
        status: 401,
        body: entraBody(
          'invalid_client',
          [70002, 7000215],
          'AADSTS70002: Error validating credentials. AADSTS7000215: Invalid client secret provided.',
        ),
      },
      context,
    );
    expect(err.code).toBe('SECRET_INVALID');
    expect(err.message).toContain('(AADSTS7000215,');
  });
});

describe('mapEntraError: Entra unavailable', () => {
  it('maps temporarily_unavailable after retries to ENTRA_UNAVAILABLE with Retry-After', () => {
    const err = mapEntraError(
      {
        status: 503,
        body: entraBody(
          'temporarily_unavailable',
          [90024],
          'AADSTS90024: RequestBudgetExceededError - A transient error has occurred. Try again.',
        ),
        headers: { 'Retry-After': '30' },
      },
      context,
    );
    expect(err).toBeInstanceOf(NetworkError);
    expect(err.code).toBe('ENTRA_UNAVAILABLE');
    expect(err.exitCode).toBe(ExitCode.unreachable);
    expect(err.message).toBe(
      `Entra ID kept answering HTTP 503 temporarily_unavailable after retries (AADSTS90024, trace id ${TRACE}, correlation id ${CORRELATION}). Try again later; Entra ID asked to wait 30 s (Retry-After).`,
    );
    expect(err.entra?.traceId).toBe(TRACE);
  });

  it('maps HTTP 429 without a body, reading Retry-After as an HTTP date', () => {
    const err = mapEntraError(
      { status: 429, body: undefined, headers: { 'retry-after': 'Sun, 22 Nov 2026 03:20:00 GMT' } },
      context,
    );
    expect(err.code).toBe('ENTRA_UNAVAILABLE');
    expect(err.message).toBe(
      'Entra ID kept answering HTTP 429 after retries. Try again later; Entra ID asked to wait until 2026-11-22T03:20:00.000Z (Retry-After).',
    );
    expect(err.entra).toEqual({ errorCodes: [], status: 429 });
  });

  it('maps a 502 from a proxy with an HTML body and ignores a Retry-After it cannot read', () => {
    const err = mapEntraError(
      { status: 502, body: '<html>Bad Gateway</html>', headers: { 'retry-after': 'soon' } },
      context,
    );
    expect(err).toBeInstanceOf(NetworkError);
    expect(err.message).toBe('Entra ID kept answering HTTP 502 after retries. Try again later.');
  });

  it('maps a transient AADSTS number on a 400 to ENTRA_UNAVAILABLE', () => {
    const err = mapEntraError(
      { status: 400, body: entraBody('invalid_request', [50033], 'AADSTS50033: RetryableError.') },
      context,
    );
    expect(err.code).toBe('ENTRA_UNAVAILABLE');
  });
});

describe('mapEntraError: fallback', () => {
  function fallbackFor(error: string, code = 9999999, status = 400): MailbridgeError {
    return mapEntraError(
      { status, body: entraBody(error, [code], `AADSTS${code}: Something new.`) },
      context,
    );
  }

  it('maps an unknown AADSTS number under invalid_client to an AuthenticationError', () => {
    const err = fallbackFor('invalid_client', 700025);
    expect(err).toBeInstanceOf(AuthenticationError);
    expect(err.code).toBe('TOKEN_REQUEST_FAILED');
    expect(err.message).toBe(
      `Entra ID refused the token request for application ${CLIENT}: invalid_client (AADSTS700025, trace id ${TRACE}, correlation id ${CORRELATION}). ` +
        'Look the AADSTS number up at https://login.microsoftonline.com/error?code=700025 and find the request in the service principal sign-in logs by its correlation id.',
    );
    expect(err.message).not.toContain('Something new');
  });

  it('maps unauthorized_client to an AuthenticationError', () => {
    expect(fallbackFor('unauthorized_client')).toBeInstanceOf(AuthenticationError);
  });

  it('maps invalid_request, invalid_scope and invalid_tenant to a ConfigurationError', () => {
    for (const error of ['invalid_request', 'invalid_scope', 'invalid_tenant']) {
      const err = fallbackFor(error);
      expect(err).toBeInstanceOf(ConfigurationError);
      expect(err.exitCode).toBe(ExitCode.usage);
      expect(err.message).toContain(`: ${error} (AADSTS9999999,`);
    }
  });

  it('maps any other error to a ProtocolError', () => {
    const err = fallbackFor('invalid_grant');
    expect(err).toBeInstanceOf(ProtocolError);
    expect(err.exitCode).toBe(ExitCode.failure);
  });

  it('builds the lookup address when Entra sent no error_uri', () => {
    const err = mapEntraError(
      {
        status: 400,
        body: {
          error: 'invalid_request',
          error_description:
            'AADSTS900144: The request body must contain the following parameter: grant_type.',
        },
      },
      context,
    );
    expect(err).toBeInstanceOf(ConfigurationError);
    expect(err.message).toBe(
      'Entra ID refused the token request for application 0f3c8a4e-5b1d-4c2a-9e7f-1a2b3c4d5e6f: invalid_request (AADSTS900144). ' +
        'Look the AADSTS number up at https://login.microsoftonline.com/error?code=900144 and find the request in the service principal sign-in logs by its correlation id.',
    );
  });

  it('maps an answer that is not an OAuth error to a ProtocolError naming the authority', () => {
    const err = mapEntraError({ status: 404, body: '<html>Not Found</html>' }, context);
    expect(err).toBeInstanceOf(ProtocolError);
    expect(err.code).toBe('TOKEN_REQUEST_FAILED');
    expect(err.message).toBe(
      'The token endpoint at https://login.microsoftonline.com answered HTTP 404 without an OAuth error. ' +
        'Check that AZURE_AUTHORITY_HOST points at Entra ID and that no proxy answers in its place.',
    );
    expect(err.entra).toEqual({ errorCodes: [], status: 404 });
  });

  it('maps 50011 (an address mismatch; in this flow, the assertion audience) to ASSERTION_AUDIENCE_INVALID', () => {
    const err = fallbackFor('invalid_client', 50011);
    expect(err.code).toBe('ASSERTION_AUDIENCE_INVALID');
    expect(err.exitCode).toBe(3);
  });
});

describe('parseEntraError', () => {
  it('reads the documented fields', () => {
    expect(parseEntraError(entraBody('invalid_scope', [70011], 'AADSTS70011: x'))).toEqual({
      error: 'invalid_scope',
      errorCodes: [70011],
      traceId: TRACE,
      correlationId: CORRELATION,
      timestamp: TIMESTAMP,
    });
  });

  it('reads AADSTS numbers and ids from the description when the fields are missing', () => {
    expect(
      parseEntraError({
        error: 'invalid_client',
        error_description: `AADSTS70002: Error validating credentials. AADSTS50012: Client assertion audience claim does not match Realm issuer.\r\nTrace ID: ${TRACE}\r\nCorrelation ID: ${CORRELATION}\r\nTimestamp: ${TIMESTAMP}`,
      }),
    ).toEqual({
      error: 'invalid_client',
      errorCodes: [70002, 50012],
      traceId: TRACE,
      correlationId: CORRELATION,
      timestamp: TIMESTAMP,
    });
  });

  it('parses a body still in JSON text', () => {
    expect(
      parseEntraError(JSON.stringify({ error: 'invalid_client', error_codes: [7000215] })),
    ).toEqual({
      error: 'invalid_client',
      errorCodes: [7000215],
    });
  });

  it('returns undefined for anything that is not an Entra error', () => {
    for (const body of [undefined, null, 42, 'Bad Gateway', [], {}, { access_token: 'x' }]) {
      expect(parseEntraError(body)).toBeUndefined();
    }
  });

  it('drops values that do not look like what Entra sends', () => {
    expect(
      parseEntraError({
        error: 'invalid_client\r\nInjected: yes',
        error_codes: ['7000215', -1, 1.5, 7000222],
        trace_id: 'not a guid; rm -rf',
        correlation_id: CORRELATION,
        timestamp: 'x'.repeat(200),
        error_uri: 'javascript:alert(1)',
      }),
    ).toEqual({ errorCodes: [7000222], correlationId: CORRELATION });
  });
});

describe('isRetryableEntraResponse', () => {
  it('retries throttling, server errors and temporarily_unavailable', () => {
    expect(isRetryableEntraResponse(429, undefined)).toBe(true);
    expect(isRetryableEntraResponse(500, undefined)).toBe(true);
    expect(isRetryableEntraResponse(503, entraBody('temporarily_unavailable', [90024], 'x'))).toBe(
      true,
    );
    expect(isRetryableEntraResponse(504, '<html>Gateway Timeout</html>')).toBe(true);
    expect(
      isRetryableEntraResponse(400, { error: 'temporarily_unavailable', error_description: 'x' }),
    ).toBe(true);
  });

  it('retries the AADSTS numbers Entra documents as transient', () => {
    for (const code of [50033, 90006, 90024, 90033, 90090]) {
      expect(isRetryableEntraResponse(400, entraBody('invalid_request', [code], 'x'))).toBe(true);
    }
  });

  it('does not retry a refusal that will not change', () => {
    expect(isRetryableEntraResponse(401, entraBody('invalid_client', [7000215], 'x'))).toBe(false);
    expect(isRetryableEntraResponse(400, entraBody('unauthorized_client', [700016], 'x'))).toBe(
      false,
    );
    expect(isRetryableEntraResponse(400, entraBody('invalid_scope', [70011], 'x'))).toBe(false);
    expect(isRetryableEntraResponse(400, entraBody('invalid_request', [90002], 'x'))).toBe(false);
    expect(isRetryableEntraResponse(400, undefined)).toBe(false);
    expect(isRetryableEntraResponse(403, '<html>Forbidden</html>')).toBe(false);
    expect(isRetryableEntraResponse(404, {})).toBe(false);
  });
});
