/**
 * The admin-consent URL of the Microsoft identity platform (v2.0), for an
 * administrator of another tenant (or of this one, without the CLI scripts)
 * to grant the app's application permissions in a browser:
 *
 *   https://{authority host}/{tenant}/v2.0/adminconsent
 *     ?client_id=...&scope=https://outlook.office365.com/.default
 *     &redirect_uri=...&state=...
 *
 * Microsoft documents this v2.0 form (learn.microsoft.com, "Admin consent on
 * the Microsoft identity platform"): `scope` is required there, and for
 * application permissions it must be the static `{resource}/.default`, which
 * asks for every permission configured on the app registration for that
 * resource, as the v1 `/{tenant}/adminconsent?client_id=` form did for all
 * resources. `redirect_uri` must match one registered on the app exactly,
 * so it is passed on as given, never normalised. The tenant is a GUID, a
 * verified domain, or `organizations` (a multi-tenant app, any work or school
 * tenant); `common` is refused because a personal account cannot consent.
 */
import { CLOUD_NAMES, CLOUDS, type CloudName } from '../config/clouds.js';
import { ConfigurationError } from '../errors.js';
import { displayText } from '../util/display-text.js';
import { findUnsafeCharacter } from './shell-quote.js';

/** Entra ID's limit for a redirect URI. */
export const MAX_REDIRECT_URI_LENGTH = 256;

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DOMAIN =
  /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$/i;
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

export interface AdminConsentUrlOptions {
  /** Directory (tenant) GUID, verified domain, or `organizations` for a multi-tenant app. */
  tenant: string;
  /** Application (client) id. */
  clientId: string;
  /** A redirect URI registered on the app (Web platform): https, or http on localhost. */
  redirectUri: string;
  /** Returned unchanged to the redirect URI; use it to match the answer to the request. */
  state?: string;
  /** Sets the authority host and the Exchange Online resource. @default 'global' */
  cloud?: CloudName;
}

/**
 * @throws ConfigurationError `SETUP_TENANT_INVALID`, `SETUP_CLIENT_ID_INVALID`,
 *   `SETUP_REDIRECT_URI_INVALID` or `SETUP_CLOUD_INVALID`
 */
export function buildAdminConsentUrl(options: AdminConsentUrlOptions): string {
  const cloudName = options.cloud ?? 'global';
  if (!CLOUD_NAMES.includes(cloudName)) {
    throw new ConfigurationError({
      code: 'SETUP_CLOUD_INVALID',
      message: `Unknown cloud '${cloudName}'`,
      remedy: `Use one of ${CLOUD_NAMES.join(', ')}.`,
    });
  }
  const cloud = CLOUDS[cloudName];
  const tenant = checkTenant(options.tenant);
  const clientId = checkClientId(options.clientId);
  const redirectUri = checkRedirectUri(options.redirectUri);
  const query = [
    ['client_id', clientId],
    ['scope', cloud.scope],
    ['redirect_uri', redirectUri],
    ...(options.state !== undefined ? [['state', options.state]] : []),
  ]
    .map(([name, value]) => `${name}=${encodeQueryValue(value ?? '')}`)
    .join('&');
  return `${cloud.authorityHost}/${encodeURIComponent(tenant)}/v2.0/adminconsent?${query}`;
}

/** A tenant GUID (lowercased), a verified domain, or `organizations`. */
export function checkTenant(value: string): string {
  const tenant = value.trim();
  if (GUID.test(tenant)) return tenant.toLowerCase();
  const lower = tenant.toLowerCase();
  if (lower === 'organizations') return lower;
  if (lower === 'common' || lower === 'consumers') {
    throw new ConfigurationError({
      code: 'SETUP_TENANT_INVALID',
      message: `The tenant '${lower}' cannot grant admin consent: personal Microsoft accounts cannot consent for an organisation`,
      remedy:
        'Give the directory (tenant) id or a verified domain, or `organizations` for a multi-tenant app.',
    });
  }
  if (DOMAIN.test(tenant)) return tenant;
  throw new ConfigurationError({
    code: 'SETUP_TENANT_INVALID',
    message: `'${displayText(tenant, 100)}' is not a tenant id, a domain name or 'organizations'`,
    remedy:
      'Give the directory (tenant) id (a GUID, Entra admin center > Overview), a verified domain such as contoso.onmicrosoft.com, or `organizations` for a multi-tenant app.',
  });
}

/** An application (client) id, lowercased. */
export function checkClientId(value: string): string {
  const clientId = value.trim();
  if (GUID.test(clientId)) return clientId.toLowerCase();
  throw new ConfigurationError({
    code: 'SETUP_CLIENT_ID_INVALID',
    message: `'${displayText(clientId, 100)}' is not an application (client) id`,
    remedy:
      "Give the app registration's Application (client) id, a GUID such as 00001111-aaaa-2222-bbbb-3333cccc4444 (not its object id or a secret id).",
  });
}

/**
 * A redirect URI Entra ID can send the answer to: absolute, https (or http
 * on a loopback host), no fragment, no user name. Returned exactly as given.
 */
export function checkRedirectUri(value: string): string {
  const refuse = (problem: string) =>
    new ConfigurationError({
      code: 'SETUP_REDIRECT_URI_INVALID',
      message: `The redirect URI '${displayText(value, 100)}' ${problem}`,
      remedy:
        'Give a redirect URI registered on the app (Authentication > Web), such as https://app.contoso.com/consent or http://localhost:8400/consent.',
    });
  if (value === '') throw refuse('is empty');
  if (findUnsafeCharacter(value) || /\s/.test(value)) {
    throw refuse('holds spaces or control characters');
  }
  if (value.length > MAX_REDIRECT_URI_LENGTH) {
    throw refuse(`is longer than Entra ID's limit of ${MAX_REDIRECT_URI_LENGTH} characters`);
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw refuse('is not an absolute URL');
  }
  if (url.protocol === 'http:') {
    if (!LOOPBACK_HOSTS.has(url.hostname)) {
      throw refuse('uses http: Entra ID takes http only for localhost; use https');
    }
  } else if (url.protocol !== 'https:') {
    throw refuse(`uses ${url.protocol.replace(/:$/, '')}: it must be https (or http on localhost)`);
  }
  if (value.includes('#')) throw refuse('has a fragment (#...), which OAuth 2.0 forbids');
  if (url.username !== '' || url.password !== '') throw refuse('holds a user name or password');
  return value;
}

/**
 * Percent-encodes a query value. `:` and `/` are left as they are (RFC 3986
 * allows both in a query, and no form decoder splits on them), which keeps
 * the URLs readable; `&`, `=`, `+`, `#`, `%`, spaces and non-ASCII are encoded.
 */
export function encodeQueryValue(value: string): string {
  return encodeURIComponent(value).replace(/%3A/g, ':').replace(/%2F/g, '/');
}
