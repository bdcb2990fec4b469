import { ConfidentialClientApplication } from '@azure/msal-node';
import type { MailbridgeConfig } from '../config/types.js';
import { AuthenticationError, MailbridgeError, NetworkError } from '../errors.js';
import { type Logger, silentLogger } from '../log/logger.js';
import { displayText } from '../util/display-text.js';
import {
  isTlsVerificationError,
  networkErrorCode,
  tlsUntrustedError,
} from '../util/network-errors.js';
import { proxyFor } from '../util/proxy.js';
import { type ConfidentialCredential, msalCredentialOptions } from './credentials.js';
import { mapEntraError } from './entra-errors.js';
import type { ProxyFailureError } from './https-request.js';
import { managedIdentityTokenRequest } from './managed-identity.js';
import {
  type IssuedToken,
  msalLoggerOptions,
  requestToken,
  type TokenRequestOptions,
} from './msal-request.js';
import { RetryingNetworkClient, type WireFailure } from './network-client.js';
import { DEFAULT_RETRY, type RetryOptions } from './retry-policy.js';

export type AccessToken = IssuedToken;

export interface GetTokenOptions {
  /** Ignore the cached token and ask Entra for a new one (e.g. after the server refused it). */
  forceRefresh?: boolean;
}

export interface TokenProvider {
  getToken(options?: GetTokenOptions): Promise<AccessToken>;
  /** The scope tokens are issued for. */
  readonly scope: string;
}

export interface TokenProviderOptions {
  /**
   * A token is never handed out when it expires within this margin; the
   * effective margin is half the token's lifetime when that is shorter.
   * @default 300_000 (5 minutes)
   */
  refreshMarginMs?: number;
  /** Retries of network errors, 429 and 5xx from the token endpoint. */
  retry?: Partial<RetryOptions>;
  /** Timeout of one HTTP request to Entra. @default 30_000 */
  requestTimeoutMs?: number;
  logger?: Logger;
  /**
   * The clock refresh decisions are made on, in ms; only a token's lifetime
   * (Entra's expires_in) is taken from the answer. For a process whose time
   * is not the wall clock (a simulation, a test that moves time forward).
   * @default Date.now
   */
  now?: () => number;
}

interface CachedToken extends AccessToken {
  /** After this, the token is not handed out any more. */
  hardRefreshAt: number;
  /** After this, the token is still handed out but a new one is fetched in the background. */
  softRefreshAt: number;
}

const DEFAULT_MARGIN_MS = 5 * 60_000;
/** Share of the usable life after which a background refresh starts. */
const SOFT_REFRESH_SHARE = 0.75;

/**
 * Creates the app-only token source for one tenant and app. Keep one per app
 * for the life of the process: it holds the only msal-node client, the cache,
 * and the in-flight request that concurrent callers share.
 */
export function createTokenProvider(
  config: MailbridgeConfig,
  options: TokenProviderOptions = {},
): TokenProvider {
  const logger = options.logger ?? silentLogger;
  const marginMs = options.refreshMarginMs ?? DEFAULT_MARGIN_MS;
  const now = options.now ?? Date.now;
  const retry = { ...DEFAULT_RETRY, ...options.retry };
  const timeoutMs = options.requestTimeoutMs ?? 30_000;
  const credential = config.credential;
  const request =
    credential.kind === 'managed-identity'
      ? managedIdentityTokenRequest(config, credential, { retry, timeoutMs, logger })
      : clientCredentialRequest(config, credential, { retry, timeoutMs, logger });

  let cached: CachedToken | undefined;
  let inFlight: Promise<CachedToken> | undefined;

  const acquire = async (): Promise<CachedToken> => {
    const startedAt = now();
    // msal-node stamps expiry on the wall clock (its request time + expires_in).
    const wallStartedAt = Date.now();
    const result = await request();
    const lifetime = Math.max(0, result.expiresOn.getTime() - wallStartedAt);
    const hardRefreshAt = startedAt + lifetime - Math.min(marginMs, lifetime / 2);
    const softRefreshAt = startedAt + (hardRefreshAt - startedAt) * SOFT_REFRESH_SHARE;
    logger.log('debug', 'token acquired', {
      expiresOn: result.expiresOn.toISOString(),
      latencyMs: Date.now() - wallStartedAt,
    });
    return {
      accessToken: result.accessToken,
      expiresOn: result.expiresOn,
      hardRefreshAt,
      softRefreshAt,
    };
  };

  const refresh = (): Promise<CachedToken> => {
    if (!inFlight) {
      inFlight = acquire()
        .then((token) => {
          cached = token;
          return token;
        })
        .finally(() => {
          inFlight = undefined;
        });
    }
    return inFlight;
  };

  return {
    scope: config.scope,
    async getToken(getOptions: GetTokenOptions = {}): Promise<AccessToken> {
      const at = now();
      if (!getOptions.forceRefresh && cached && at < cached.hardRefreshAt) {
        if (at >= cached.softRefreshAt && !inFlight) {
          refresh().catch((error: unknown) => {
            // The caller still has a valid token; the next call past the hard limit retries and reports.
            logger.log('warn', 'background token refresh failed', {
              code: error instanceof MailbridgeError ? error.code : 'UNKNOWN',
            });
          });
        }
        return { accessToken: cached.accessToken, expiresOn: cached.expiresOn };
      }
      const token = await refresh();
      return { accessToken: token.accessToken, expiresOn: token.expiresOn };
    },
  };
}

/** One client-credentials request to Entra with a secret, a certificate or a federated assertion. */
function clientCredentialRequest(
  config: MailbridgeConfig,
  credential: ConfidentialCredential,
  options: TokenRequestOptions,
): () => Promise<IssuedToken> {
  const { logger } = options;
  const network = new RetryingNetworkClient({
    retry: options.retry,
    timeoutMs: options.timeoutMs,
    logger,
    ...(config.extraCaCertificates ? { extraCaCertificates: config.extraCaCertificates } : {}),
    ...(config.proxy ? { proxy: config.proxy } : {}),
  });
  const msal = new ConfidentialClientApplication({
    auth: {
      clientId: config.clientId,
      authority: config.authority,
      // Without this msal-node asks login.microsoftonline.com which hosts exist,
      // which a sovereign alias or a private test authority cannot answer.
      ...(config.customAuthorityHost
        ? { knownAuthorities: [new URL(config.authorityHost).host] }
        : {}),
      ...msalCredentialOptions(credential),
    },
    system: {
      networkClient: network,
      loggerOptions: msalLoggerOptions(logger),
    },
  });
  return () =>
    requestToken(
      network,
      // Our cache decides when to refresh, so msal-node's is always bypassed.
      () => msal.acquireTokenByClientCredential({ scopes: [config.scope], skipCache: true }),
      (error, failure) => toMailbridgeError(error, failure, config, credential),
      () => tokenResponseInvalid(config, 'no access token or expiry'),
    );
}

/** Turns whatever msal-node threw into our error, using what the wire saw when there is anything. */
function toMailbridgeError(
  error: unknown,
  failure: WireFailure | undefined,
  config: MailbridgeConfig,
  credential: ConfidentialCredential,
): MailbridgeError {
  if (error instanceof MailbridgeError) return error;
  const context = {
    tenantId: config.tenantId,
    clientId: config.clientId,
    scope: config.scope,
    authorityHost: config.authorityHost,
    credentialKind: credential.kind,
    ...(credential.kind === 'certificate'
      ? { certificateThumbprint: credential.thumbprintSha1 }
      : {}),
  };
  if (failure?.kind === 'response' || failure?.kind === 'exhausted') {
    return mapEntraError(
      { status: failure.status, body: failure.body, headers: failure.headers },
      context,
    );
  }
  if (failure?.kind === 'too_large') {
    return new NetworkError({
      code: 'AUTHORITY_RESPONSE_TOO_LARGE',
      message: `The authority ${config.authorityHost} sent an answer longer than ${failure.limit / 1024 / 1024} MiB to ${describePath(failure.url)}, where a token service sends a few KB; the answer was cut off there`,
      remedy: `That is not Entra ID, or something in between is broken: check AZURE_AUTHORITY_HOST / MAILBRIDGE_CLOUD${viaProxy(config)}.`,
    });
  }
  if (failure?.kind === 'not_json') {
    const excerpt = displayText(failure.text.replace(/\s+/g, ' ').trim(), 120);
    return new NetworkError({
      code: 'AUTHORITY_ANSWER_NOT_JSON',
      message: `The authority ${config.authorityHost} answered HTTP ${failure.status} with something that is not JSON${excerpt ? ` ("${excerpt}")` : ''}, so it is not Entra ID's token service`,
      remedy: `A proxy, a captive portal or another service answers in its place: check AZURE_AUTHORITY_HOST / MAILBRIDGE_CLOUD${viaProxy(config)}.`,
    });
  }
  if (failure?.kind === 'not_a_token') return tokenResponseInvalid(config, failure.problem);
  if (failure?.kind === 'proxy') return proxyError(failure.error, failure.attempts, config);
  if (failure?.kind === 'network') {
    const code = networkErrorCode(failure.error);
    if (isTlsVerificationError(failure.error)) {
      return tlsUntrustedError(config.authorityHost, 'the authority', failure.error);
    }
    return new NetworkError({
      code: 'AUTHORITY_UNREACHABLE',
      message: `The authority ${config.authorityHost} could not be reached (${code}, ${failure.attempts} attempt${failure.attempts === 1 ? '' : 's'})`,
      remedy: config.proxy
        ? `Check the network and firewall, and AZURE_AUTHORITY_HOST / MAILBRIDGE_CLOUD; the request went directly, as NO_PROXY exempts ${hostOf(config.authorityHost)} from ${config.proxy.variable}.`
        : 'Check the network and firewall, and AZURE_AUTHORITY_HOST / MAILBRIDGE_CLOUD; if only a proxy reaches the Internet, set HTTPS_PROXY.',
      cause: failure.error,
    });
  }
  // msal-node refused before any request (e.g. a malformed key or assertion callback failure).
  const detail = error instanceof Error ? error.message.split('\n')[0] : String(error);
  return new AuthenticationError({
    code: 'TOKEN_REQUEST_FAILED',
    message: `The token request could not be made: ${detail}`,
    remedy: 'Check the credential settings (run with --debug for details).',
    cause: error,
  });
}

function tokenResponseInvalid(config: MailbridgeConfig, problem: string): NetworkError {
  return new NetworkError({
    code: 'TOKEN_RESPONSE_INVALID',
    message: `The token endpoint at ${config.authorityHost} answered without a usable access token (${problem})`,
    remedy: `That is not Entra ID, or it is broken: check AZURE_AUTHORITY_HOST / MAILBRIDGE_CLOUD${viaProxy(config)}.`,
  });
}

function proxyError(
  error: ProxyFailureError,
  attempts: number,
  config: MailbridgeConfig,
): NetworkError {
  const proxy = `The proxy ${error.proxy} (from ${error.variable})`;
  const host = hostOf(config.authorityHost);
  if (error.status === undefined) {
    const code = error.cause instanceof Error ? networkErrorCode(error.cause) : 'error';
    return new NetworkError({
      code: 'PROXY_UNREACHABLE',
      message: `${proxy} could not be reached (${code}, ${attempts} attempt${attempts === 1 ? '' : 's'}), so the token request to ${config.authorityHost} was not sent`,
      remedy: `Check ${error.variable} (host and port of the proxy), or exempt ${host} from the proxy with NO_PROXY if it can be reached directly.`,
      cause: error,
    });
  }
  return new NetworkError({
    code: 'PROXY_REFUSED',
    message: `${proxy} refused to open a tunnel to ${host} (HTTP ${error.status} to CONNECT)`,
    remedy:
      error.status === 407
        ? `The proxy wants credentials: give them in ${error.variable} as http://user:password@host:port (percent-encoded).`
        : `Ask the proxy's administrators to allow HTTPS (CONNECT) to ${host}, or exempt it with NO_PROXY if it can be reached directly.`,
    cause: error,
  });
}

/** `, and the proxy from HTTPS_PROXY`, when the request went through one. */
function viaProxy(config: MailbridgeConfig): string {
  if (!config.proxy) return '';
  return proxyFor(new URL(config.authorityHost), config.proxy)
    ? `, and the proxy named by ${config.proxy.variable}`
    : '';
}

function hostOf(url: string): string {
  return new URL(url).host;
}

function describePath(url: string): string {
  try {
    return new URL(url).pathname;
  } catch {
    return 'the authority';
  }
}
