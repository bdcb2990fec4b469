/**
 * Turns what Entra ID's token endpoint answered into one of our errors: a
 * stable `code`, the class that says what to do next, and a sentence an
 * administrator can act on.
 *
 * Entra's `error_description` is never copied into a message. It is long,
 * changes without notice, and repeats request values; we write our own
 * sentence, add the AADSTS number, trace id and correlation id (what
 * Microsoft support and the sign-in logs are searched by), and keep the
 * structured details on `error.entra`. Only narrow, pattern-checked pieces of
 * the description are ever quoted: a hex thumbprint, and the issuer, subject
 * and audience of a federated assertion (public claims, and exactly what the
 * admin must type into the federated credential).
 *
 * AADSTS numbers: https://learn.microsoft.com/entra/identity-platform/reference-error-codes
 */
import { CLOUDS } from '../config/clouds.js';
import {
  AuthenticationError,
  ConfigurationError,
  type EntraErrorDetails,
  type MailbridgeError,
  type MailbridgeErrorOptions,
  NetworkError,
  ProtocolError,
} from '../errors.js';
import { formatDuration } from '../util/format.js';

/** What the token endpoint answered. */
export interface EntraErrorResponse {
  /** HTTP status, when there was an answer at all. */
  status?: number;
  /** Parsed JSON body, or `undefined` when it was not JSON. */
  body: unknown;
  headers?: Record<string, string>;
}

/** The request the answer belongs to: public identifiers only, never the credential. */
export interface EntraErrorContext {
  tenantId: string;
  clientId: string;
  scope: string;
  authorityHost: string;
  credentialKind: 'secret' | 'certificate' | 'federated';
  /** Hex SHA-1 or SHA-256 thumbprint of the certificate that signed the assertion. */
  certificateThumbprint?: string;
}

/** Every `code` this module produces. Stable: scripts and the diagnostics table match on them. */
export type EntraErrorCode =
  | 'SECRET_INVALID'
  | 'SECRET_EXPIRED'
  | 'APP_NOT_FOUND'
  | 'APP_DISABLED'
  | 'TENANT_NOT_FOUND'
  | 'SCOPE_INVALID'
  | 'RESOURCE_NOT_FOUND'
  | 'PERMISSION_NOT_REQUESTED'
  | 'CERTIFICATE_NOT_REGISTERED'
  | 'ASSERTION_AUDIENCE_INVALID'
  | 'ASSERTION_INVALID'
  | 'ASSERTION_EXPIRED'
  | 'FEDERATION_NO_MATCH'
  | 'CONDITIONAL_ACCESS_BLOCKED'
  | 'CREDENTIAL_MISSING'
  | 'ENTRA_UNAVAILABLE'
  | 'TOKEN_REQUEST_FAILED';

/**
 * AADSTS numbers Entra documents as transient: `RetryableError` (50033),
 * `ExternalServerRetryableError` (90006), `RequestBudgetExceededError`
 * (90024), `MsodsServiceUnavailable` (90033), `GraphRetryableError` (90090).
 */
const TRANSIENT_AADSTS = new Set([50033, 90006, 90024, 90033, 90090]);

/**
 * Whether asking again can help: throttling (429), server errors (5xx),
 * `temporarily_unavailable` and the transient AADSTS numbers. Every other
 * refusal (a wrong secret, an unknown tenant, a bad scope) answers the same
 * way however often it is asked.
 */
export function isRetryableEntraResponse(status: number, body: unknown): boolean {
  if (status === 429 || status >= 500) return true;
  const parsed = parseBody(body);
  if (!parsed) return false;
  return isTransient(parsed.details);
}

/**
 * The structured part of Entra's error JSON, or `undefined` when the body is
 * not one. AADSTS numbers come from `error_codes`, else from the description's
 * `AADSTS<n>` prefixes; trace and correlation ids from their fields, else from
 * the description's `Trace ID:` / `Correlation ID:` lines. Values that do not
 * look like what Entra sends are dropped, so nothing odd reaches a message.
 */
export function parseEntraError(body: unknown): EntraErrorDetails | undefined {
  return parseBody(body)?.details;
}

/** One error for one refused token request. */
export function mapEntraError(
  response: EntraErrorResponse,
  context: EntraErrorContext,
): MailbridgeError {
  const parsed = parseBody(response.body);
  const details: EntraErrorDetails = {
    ...(parsed?.details ?? { errorCodes: [] }),
    ...(response.status !== undefined ? { status: response.status } : {}),
  };
  const facts: Facts = {
    context,
    details,
    description: parsed?.description ?? '',
    errorUri: parsed?.errorUri,
    retryAfter: retryAfterOf(response.headers),
  };

  for (const aadsts of details.errorCodes) {
    const rule = RULES.get(aadsts);
    if (rule) return create(rule, { ...facts, aadsts });
  }
  const status = response.status;
  const transient =
    status === 429 || (status !== undefined && status >= 500) || isTransient(details);
  return create(transient ? unavailable : fallback, { ...facts, aadsts: details.errorCodes[0] });
}

type ErrorClass = 'configuration' | 'authentication' | 'protocol' | 'network';

const CLASSES: Record<ErrorClass, new (options: MailbridgeErrorOptions) => MailbridgeError> = {
  configuration: ConfigurationError,
  authentication: AuthenticationError,
  protocol: ProtocolError,
  network: NetworkError,
};

interface Facts {
  context: EntraErrorContext;
  /** Already carries the HTTP status. */
  details: EntraErrorDetails;
  /** For pattern checks only; never quoted whole. */
  description: string;
  errorUri: string | undefined;
  /** `Retry-After`, made readable: `30 s` or an ISO date. */
  retryAfter: string | undefined;
  /** The AADSTS number the error is about. */
  aadsts?: number | undefined;
}

interface Outcome {
  class: ErrorClass;
  code: EntraErrorCode;
  /** One sentence without the trailing reference, which `create` adds. */
  message: string;
  remedy: string;
}

type Rule = (facts: Facts) => Outcome;

function create(rule: Rule, facts: Facts): MailbridgeError {
  const outcome = rule(facts);
  const ref = reference(facts);
  return new CLASSES[outcome.class]({
    code: outcome.code,
    message: ref ? `${outcome.message} (${ref})` : outcome.message,
    remedy: outcome.remedy,
    entra: facts.details,
  });
}

/** `AADSTS7000215, trace id …, correlation id …`: what support and the sign-in logs search by. */
function reference(facts: Facts): string {
  const parts: string[] = [];
  if (facts.aadsts !== undefined) parts.push(`AADSTS${facts.aadsts}`);
  if (facts.details.traceId) parts.push(`trace id ${facts.details.traceId}`);
  if (facts.details.correlationId) parts.push(`correlation id ${facts.details.correlationId}`);
  return parts.join(', ');
}

const secretInvalid: Rule = ({ context }) => ({
  class: 'authentication',
  code: 'SECRET_INVALID',
  message: `Entra ID refused the client secret of application ${context.clientId}: the secret is wrong`,
  remedy:
    "Use the secret's Value, which the portal shows only once when the secret is created, not its Secret ID. " +
    `If the Value is lost, create a new secret under the app registration's Certificates & secrets and set AZURE_CLIENT_SECRET to it.`,
});

const secretExpired: Rule = ({ context }) => ({
  class: 'authentication',
  code: 'SECRET_EXPIRED',
  message: `The client secret of application ${context.clientId} has expired`,
  remedy:
    `Create a new secret under the app registration's Certificates & secrets (or switch to a certificate) ` +
    'and set AZURE_CLIENT_SECRET to its Value.',
});

const appNotFound: Rule = ({ context }) => ({
  class: 'authentication',
  code: 'APP_NOT_FOUND',
  message: `Application ${context.clientId} was not found in tenant ${context.tenantId}`,
  remedy:
    'The client id is wrong, the tenant is wrong, or the app is registered as single-tenant in another directory ' +
    "or has no service principal (consent) here. Compare AZURE_CLIENT_ID and AZURE_TENANT_ID with the Application (client) ID and Directory (tenant) ID on the app's Overview page.",
});

const tenantNotFound: Rule = ({ context, aadsts }) => ({
  class: 'configuration',
  code: 'TENANT_NOT_FOUND',
  message:
    aadsts === 90038
      ? `Tenant ${context.tenantId} belongs to another national cloud than ${context.authorityHost}`
      : aadsts === 900023
        ? `Tenant ${context.tenantId} is not a valid tenant id or domain at ${context.authorityHost}`
        : `Tenant ${context.tenantId} was not found at ${context.authorityHost}`,
  remedy:
    'Check AZURE_TENANT_ID (the Directory (tenant) ID GUID or a verified domain) and the cloud (MAILBRIDGE_CLOUD or AZURE_AUTHORITY_HOST): ' +
    'a US Government or China tenant is not found on the global authority, nor a global tenant on theirs.',
});

const scopeInvalid: Rule = ({ context, aadsts }) => ({
  class: 'configuration',
  code: 'SCOPE_INVALID',
  message:
    aadsts === 1002012
      ? `The scope ${context.scope} does not end in /.default, which app-only (client credential) requests must use`
      : aadsts === 700022
        ? `The scope ${context.scope} names more than one resource`
        : `Entra ID refused the scope ${context.scope}`,
  remedy: `Ask for the Exchange resource's /.default, ${exchangeScopes(context.authorityHost)}, or leave MAILBRIDGE_SCOPE unset to use the cloud's.`,
});

const resourceNotFound: Rule = ({ context }) => ({
  class: 'configuration',
  code: 'RESOURCE_NOT_FOUND',
  message: `The resource of scope ${context.scope} has no service principal in tenant ${context.tenantId}`,
  remedy:
    'Exchange Online is not in this tenant, or the scope belongs to another cloud than the tenant: ' +
    `use ${exchangeScopes(context.authorityHost)} and check MAILBRIDGE_CLOUD.`,
});

const permissionNotRequested: Rule = ({ context }) => ({
  class: 'authentication',
  code: 'PERMISSION_NOT_REQUESTED',
  message: `Application ${context.clientId} does not request any permission on the resource of scope ${context.scope}`,
  remedy:
    "Under the app registration's API permissions, add Office 365 Exchange Online > Application permissions > " +
    'IMAP.AccessAsApp and/or SMTP.SendAsApp, then grant admin consent.',
});

const certificateNotRegistered: Rule = ({ context, description }) => {
  const thumbprint =
    describeThumbprint(context.certificateThumbprint) ??
    describeThumbprint(
      /Thumbprint of key used by client: '([0-9A-Fa-f]{40,64})'/.exec(description)?.[1],
    );
  return {
    class: 'authentication',
    code: 'CERTIFICATE_NOT_REGISTERED',
    message:
      `The certificate that signed the client assertion${thumbprint ? ` (${thumbprint})` : ''} ` +
      `is not registered on application ${context.clientId}`,
    remedy:
      `Upload this certificate (its public part, .cer or .pem) under the app registration's Certificates & secrets, ` +
      'or compare the thumbprint with the Thumbprint column there (SHA-1, upper case).',
  };
};

const assertionAudienceInvalid: Rule = ({ context }) => ({
  class: 'authentication',
  code: 'ASSERTION_AUDIENCE_INVALID',
  message: "Entra ID refused the client assertion's audience",
  remedy:
    `The assertion must be addressed to the token endpoint it is sent to: check that AZURE_AUTHORITY_HOST (${context.authorityHost}) ` +
    `and AZURE_TENANT_ID (${context.tenantId}) are those of the app's tenant and cloud.`,
});

const assertionInvalid: Rule = (facts) => {
  // AADSTS50012 covers several refusals; the audience one has its own code.
  if (/audience/i.test(facts.description)) return assertionAudienceInvalid(facts);
  const { context } = facts;
  if (context.credentialKind === 'certificate') {
    const thumbprint = describeThumbprint(context.certificateThumbprint);
    return {
      class: 'authentication',
      code: 'ASSERTION_INVALID',
      message: `Entra ID refused the client assertion signed with the certificate${thumbprint ? ` (${thumbprint})` : ''}`,
      remedy:
        'The private key does not belong to the registered certificate, or that certificate is expired or not yet valid: ' +
        `check that the key and certificate in AZURE_CLIENT_CERTIFICATE_PATH are a pair and that the app registration's Certificates & secrets lists this certificate as current.`,
    };
  }
  if (context.credentialKind === 'federated') {
    return {
      class: 'authentication',
      code: 'ASSERTION_INVALID',
      message: 'Entra ID refused the federated client assertion',
      remedy:
        "Check that AZURE_FEDERATED_TOKEN_FILE holds a current token signed by the issuer that the app's federated credential names.",
    };
  }
  return {
    class: 'authentication',
    code: 'ASSERTION_INVALID',
    message: `Entra ID refused the client credential of application ${context.clientId}`,
    remedy:
      "Check AZURE_CLIENT_SECRET: it must be the secret's Value, not its Secret ID, and not expired.",
  };
};

const assertionExpired: Rule = ({ context }) => ({
  class: 'authentication',
  code: 'ASSERTION_EXPIRED',
  message: 'The client assertion is not within its valid time range',
  remedy:
    context.credentialKind === 'federated'
      ? "Check that the federated token in AZURE_FEDERATED_TOKEN_FILE is being refreshed (a projected Kubernetes token rotates about hourly) and that the machine's clock is right (NTP)."
      : "Check the machine's clock (NTP): the assertion is stamped with the local time and lives a few minutes.",
});

const federationNoMatch: Rule = ({ context, description }) => {
  const presented = presentedClaims(description);
  return {
    class: 'authentication',
    code: 'FEDERATION_NO_MATCH',
    message:
      `No federated identity credential on application ${context.clientId} matches the assertion` +
      (presented ? ` (${presented})` : ''),
    remedy:
      `Under the app registration's Certificates & secrets > Federated credentials, add one with the token's issuer and subject ` +
      '(compared case-sensitively) and the audience api://AzureADTokenExchange.',
  };
};

const appDisabled: Rule = ({ context }) => ({
  class: 'authentication',
  code: 'APP_DISABLED',
  message: `Application ${context.clientId} is disabled in tenant ${context.tenantId}`,
  remedy:
    'An administrator must enable it: Enterprise applications > the app > Properties > "Enabled for users to sign in?" = Yes. ' +
    'If Microsoft disabled it, the Enterprise application page says so.',
});

const conditionalAccessBlocked: Rule = ({ context }) => ({
  class: 'authentication',
  code: 'CONDITIONAL_ACCESS_BLOCKED',
  message: `A Conditional Access policy blocked the token for application ${context.clientId}`,
  remedy:
    'Find the policy in the service principal sign-in logs (search by the correlation id) and exclude this workload identity, ' +
    "or allow the machine's network location.",
});

const credentialMissing: Rule = () => ({
  class: 'configuration',
  code: 'CREDENTIAL_MISSING',
  message: 'The token request carried no client secret and no client assertion',
  remedy:
    'Configure one credential: AZURE_CLIENT_SECRET, a certificate (AZURE_CLIENT_CERTIFICATE_PATH) or a federated token file (AZURE_FEDERATED_TOKEN_FILE).',
});

const RULES: ReadonlyMap<number, Rule> = new Map<number, Rule>([
  [7000215, secretInvalid],
  [7000222, secretExpired],
  [700016, appNotFound],
  [90002, tenantNotFound],
  [90038, tenantNotFound],
  [900023, tenantNotFound],
  [70011, scopeInvalid],
  [1002012, scopeInvalid],
  [700022, scopeInvalid],
  [700023, scopeInvalid],
  [500011, resourceNotFound],
  [650057, permissionNotRequested],
  [700027, certificateNotRegistered],
  // Microsoft's reference names 50011 InvalidReplyTo (an address mismatch). The
  // client-credentials flow has no reply address: the address that can be
  // wrong is the assertion's audience, so that is the cause we name.
  [50011, assertionAudienceInvalid],
  [5002741, assertionAudienceInvalid],
  [50012, assertionInvalid],
  [700024, assertionExpired],
  [70021, federationNoMatch],
  [700211, federationNoMatch],
  [700212, federationNoMatch],
  [700213, federationNoMatch],
  [7000112, appDisabled],
  [53003, conditionalAccessBlocked],
  [7000218, credentialMissing],
]);

const unavailable: Rule = ({ details, retryAfter }) => {
  const answer = [
    details.status !== undefined ? `HTTP ${details.status}` : undefined,
    details.error,
  ].filter(Boolean);
  return {
    class: 'network',
    code: 'ENTRA_UNAVAILABLE',
    message: `Entra ID kept answering ${answer.length ? answer.join(' ') : 'with a transient error'} after retries`,
    remedy: retryAfter
      ? `Try again later; Entra ID asked to wait ${retryAfter} (Retry-After).`
      : 'Try again later.',
  };
};

const fallback: Rule = ({ details, context, aadsts, errorUri }) => {
  const { error, status } = details;
  if (!error && aadsts === undefined) {
    return {
      class: 'protocol',
      code: 'TOKEN_REQUEST_FAILED',
      message: `The token endpoint at ${context.authorityHost} answered${status !== undefined ? ` HTTP ${status}` : ''} without an OAuth error`,
      remedy:
        'Check that AZURE_AUTHORITY_HOST points at Entra ID and that no proxy answers in its place.',
    };
  }
  const lookup =
    aadsts !== undefined
      ? (errorUri ?? `https://login.microsoftonline.com/error?code=${aadsts}`)
      : undefined;
  return {
    class:
      error === 'invalid_client' || error === 'unauthorized_client'
        ? 'authentication'
        : error === 'invalid_request' || error === 'invalid_scope' || error === 'invalid_tenant'
          ? 'configuration'
          : 'protocol',
    code: 'TOKEN_REQUEST_FAILED',
    message: `Entra ID refused the token request for application ${context.clientId}: ${error ?? 'no error name'}`,
    remedy: lookup
      ? `Look the AADSTS number up at ${lookup} and find the request in the service principal sign-in logs by its correlation id.`
      : 'Find the request in the service principal sign-in logs by its correlation id.',
  };
};

function isTransient(details: EntraErrorDetails): boolean {
  return (
    details.error === 'temporarily_unavailable' ||
    details.errorCodes.some((code) => TRANSIENT_AADSTS.has(code))
  );
}

interface ParsedBody {
  details: EntraErrorDetails;
  description: string;
  errorUri: string | undefined;
}

/** RFC 6749 §5.2: `error` is printable ASCII without `"` and `\`. */
const OAUTH_ERROR = /^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,128}$/;
/** Trace and correlation ids are GUIDs. */
const ID = /^[0-9A-Za-z-]{1,64}$/;
const TIMESTAMP = /^[0-9A-Za-z :.+-]{1,40}$/;

function parseBody(body: unknown): ParsedBody | undefined {
  let value = body;
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch {
      return undefined;
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const record = value as Record<string, unknown>;

  const description = typeof record.error_description === 'string' ? record.error_description : '';
  const error = matching(record.error, OAUTH_ERROR);
  let errorCodes = Array.isArray(record.error_codes)
    ? record.error_codes.filter((c): c is number => Number.isSafeInteger(c) && (c as number) > 0)
    : [];
  if (errorCodes.length === 0) {
    errorCodes = [
      ...new Set([...description.matchAll(/AADSTS(\d{1,9})\b/g)].map((m) => Number(m[1]))),
    ];
  }
  const traceId =
    matching(record.trace_id, ID) ?? matching(/Trace ID: (\S+)/.exec(description)?.[1], ID);
  const correlationId =
    matching(record.correlation_id, ID) ??
    matching(/Correlation ID: (\S+)/.exec(description)?.[1], ID);
  const timestamp =
    matching(record.timestamp, TIMESTAMP) ??
    matching(/Timestamp: ([^\r\n]+)/.exec(description)?.[1]?.trim(), TIMESTAMP);

  if (!error && errorCodes.length === 0 && !traceId && !correlationId) return undefined;
  const details: EntraErrorDetails = {
    ...(error ? { error } : {}),
    errorCodes,
    ...(traceId ? { traceId } : {}),
    ...(correlationId ? { correlationId } : {}),
    ...(timestamp ? { timestamp } : {}),
  };
  return { details, description, errorUri: httpsUrl(record.error_uri) };
}

function matching(value: unknown, pattern: RegExp): string | undefined {
  return typeof value === 'string' && pattern.test(value) ? value : undefined;
}

function httpsUrl(value: unknown): string | undefined {
  if (typeof value !== 'string' || !/^https:\/\/[\x21-\x7e]{1,300}$/.test(value)) return undefined;
  return URL.canParse(value) ? value : undefined;
}

/** `SHA-1 thumbprint 3F2A…`, from hex with or without colons; nothing for anything else. */
function describeThumbprint(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const hex = value.replace(/[:\s]/g, '').toUpperCase();
  if (hex.length === 40 && /^[0-9A-F]+$/.test(hex)) return `SHA-1 thumbprint ${hex}`;
  if (hex.length === 64 && /^[0-9A-F]+$/.test(hex)) return `SHA-256 thumbprint ${hex}`;
  return undefined;
}

/**
 * The issuer, subject and audience Entra says it was shown, from either form:
 * `Assertion Issuer: '…'.` (70021) or `presented assertion subject '…'.`
 * (700211-700213). Printable ASCII without spaces or quotes only.
 */
function presentedClaims(description: string): string | undefined {
  const found = new Map<string, string>();
  for (const m of description.matchAll(
    /assertion (issuer|subject|audience):? '([\x21-\x26\x28-\x7e]{1,512})'/gi,
  )) {
    const claim = (m[1] as string).toLowerCase();
    if (!found.has(claim)) found.set(claim, m[2] as string);
  }
  if (found.size === 0) return undefined;
  return [...found].map(([claim, value]) => `${claim} ${value}`).join(', ');
}

/** The Exchange `/.default` scopes of the cloud(s) whose authority host this is. */
function exchangeScopes(authorityHost: string): string {
  const host = hostOf(authorityHost);
  const scopes = Object.values(CLOUDS)
    .filter((cloud) => hostOf(cloud.authorityHost) === host)
    .map((cloud) => cloud.scope);
  if (scopes.length === 0) return `e.g. ${CLOUDS.global.scope}`;
  return scopes.join(' or ');
}

function hostOf(url: string): string {
  try {
    return new URL(url).host.toLowerCase();
  } catch {
    return url.toLowerCase();
  }
}

/** `Retry-After` (RFC 9110 §10.2.3) as `30 s`, `5 min` or an ISO date; headers matched case-insensitively. */
function retryAfterOf(headers: Record<string, string> | undefined): string | undefined {
  if (!headers) return undefined;
  const entry = Object.entries(headers).find(([name]) => name.toLowerCase() === 'retry-after');
  const value = entry?.[1]?.trim();
  if (!value) return undefined;
  if (/^\d{1,9}$/.test(value)) return formatDuration(Number(value) * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : `until ${new Date(date).toISOString()}`;
}
