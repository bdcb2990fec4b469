import type { INetworkModule, NetworkRequestOptions, NetworkResponse } from '@azure/msal-node';
import type { ProxySettings } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import { isPermanentNetworkError, networkErrorCode } from '../util/network-errors.js';
import { isRetryableEntraResponse } from './entra-errors.js';
import {
  createHttpsSender,
  type HttpsSender,
  ProxyFailureError,
  ResponseTooLargeError,
} from './https-request.js';
import { nextRetryDelay, parseRetryAfter, type RetryOptions } from './retry-policy.js';

/** The last thing that went wrong on the wire, for turning msal-node's error into ours. */
export type WireFailure =
  | {
      kind: 'response';
      url: string;
      status: number;
      body: unknown;
      headers: Record<string, string>;
    }
  | { kind: 'network'; url: string; error: Error; attempts: number }
  | { kind: 'proxy'; url: string; error: ProxyFailureError; attempts: number }
  /** More bytes than any answer of a token service: not Entra, or a broken service. */
  | { kind: 'too_large'; url: string; limit: number }
  /** Not JSON at all: a proxy's or portal's HTML page, or another service. */
  | { kind: 'not_json'; url: string; status: number; text: string }
  /** JSON, but not a token response (`access_token` not a string, no expiry). */
  | { kind: 'not_a_token'; url: string; problem: string }
  | {
      kind: 'exhausted';
      url: string;
      status: number;
      body: unknown;
      headers: Record<string, string>;
      attempts: number;
      retryAfterMs?: number;
    };

export interface RetryingNetworkClientOptions {
  retry: RetryOptions;
  /** Per-request timeout. */
  timeoutMs: number;
  logger: Logger;
  /** PEM certificates trusted besides Node's default ones (the caFile setting). */
  extraCaCertificates?: readonly string[];
  proxy?: ProxySettings;
  /** Also send plain `http:` requests: a managed identity's endpoint on this host. */
  plainHttp?: boolean;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * A token response is a few KB and Entra's OpenID metadata about 2 KB; no
 * answer of a token service comes near this. Without a bound, an endless body
 * was read into memory until the timeout (4.86 GB of RSS for one 2 GiB answer).
 */
export const MAX_RESPONSE_BYTES = 1024 * 1024;

/**
 * msal-node's network module with retries. The retries must live here, below
 * msal-node: after a 429 or 5xx msal-node refuses identical requests for the
 * Retry-After time (60 s without one) without touching the network, so a retry
 * loop around `acquireTokenByClientCredential` never reaches Entra again. For
 * the same reason a response still failing after the last retry is turned into
 * a thrown error instead of being handed to msal-node, which would remember it.
 */
export class RetryingNetworkClient implements INetworkModule {
  lastFailure: WireFailure | undefined;
  readonly #options: RetryingNetworkClientOptions;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #send1: HttpsSender;

  constructor(options: RetryingNetworkClientOptions) {
    this.#options = options;
    this.#send1 = createHttpsSender({
      maxResponseBytes: MAX_RESPONSE_BYTES,
      ...(options.extraCaCertificates ? { extraCaCertificates: options.extraCaCertificates } : {}),
      ...(options.proxy ? { proxy: options.proxy } : {}),
      ...(options.plainHttp ? { plainHttp: true } : {}),
    });
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  sendGetRequestAsync<T>(
    url: string,
    options?: NetworkRequestOptions,
    timeout?: number,
  ): Promise<NetworkResponse<T>> {
    return this.#send<T>('GET', url, options, timeout);
  }

  sendPostRequestAsync<T>(
    url: string,
    options?: NetworkRequestOptions,
  ): Promise<NetworkResponse<T>> {
    return this.#send<T>('POST', url, options);
  }

  async #send<T>(
    method: 'GET' | 'POST',
    url: string,
    options: NetworkRequestOptions | undefined,
    timeout?: number,
  ): Promise<NetworkResponse<T>> {
    const { retry, logger } = this.#options;
    const started = Date.now();
    const where = describeUrl(url);
    for (let attempt = 1; ; attempt++) {
      let response: NetworkResponse<T>;
      try {
        response = await this.#fetchOnce<T>(method, url, options, timeout);
      } catch (error) {
        const err = error instanceof Error ? error : new Error(String(error));
        if (err instanceof WireRefusal) {
          this.lastFailure = err.failure;
          throw err;
        }
        const permanent =
          isPermanentNetworkError(err) ||
          (err instanceof ProxyFailureError && err.status !== undefined);
        const delay = permanent
          ? undefined
          : nextRetryDelay({ attempt, elapsedMs: Date.now() - started }, retry);
        logger.log('debug', 'token endpoint unreachable', {
          method,
          url: where,
          attempt,
          error: networkErrorCode(err),
          retryInMs: delay,
        });
        if (delay === undefined) {
          this.lastFailure =
            err instanceof ProxyFailureError
              ? { kind: 'proxy', url, error: err, attempts: attempt }
              : { kind: 'network', url, error: err, attempts: attempt };
          throw err;
        }
        await this.#sleep(delay);
        continue;
      }

      if (response.status < 400) return response;

      const retryAfterMs = parseRetryAfter(response.headers['retry-after']);
      const retryable = isRetryableEntraResponse(response.status, response.body);
      const delay = retryable
        ? nextRetryDelay(
            {
              attempt,
              elapsedMs: Date.now() - started,
              ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
            },
            retry,
          )
        : undefined;
      logger.log(retryable ? 'debug' : 'info', 'token endpoint refused the request', {
        method,
        url: where,
        status: response.status,
        attempt,
        retryInMs: delay,
      });
      if (!retryable) {
        this.lastFailure = {
          kind: 'response',
          url,
          status: response.status,
          body: response.body,
          headers: response.headers,
        };
        return response;
      }
      if (delay === undefined) {
        this.lastFailure = {
          kind: 'exhausted',
          url,
          status: response.status,
          body: response.body,
          headers: response.headers,
          attempts: attempt,
          ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
        };
        throw new Error(
          `token endpoint answered HTTP ${response.status} after ${attempt} attempts`,
        );
      }
      await this.#sleep(delay);
    }
  }

  async #fetchOnce<T>(
    method: 'GET' | 'POST',
    url: string,
    options: NetworkRequestOptions | undefined,
    timeout: number | undefined,
  ): Promise<NetworkResponse<T>> {
    let answer: Awaited<ReturnType<HttpsSender>>;
    try {
      answer = await this.#send1({
        method,
        url,
        headers: options?.headers ?? {},
        ...(method === 'POST' ? { body: options?.body ?? '' } : {}),
        timeoutMs: timeout ?? this.#options.timeoutMs,
      });
    } catch (error) {
      if (error instanceof ResponseTooLargeError) {
        throw new WireRefusal({ kind: 'too_large', url, limit: error.limit });
      }
      throw error;
    }
    const body = parseJson(answer.text);
    const retryable = answer.status === 429 || answer.status >= 500;
    if (body === undefined && !retryable) {
      throw new WireRefusal({ kind: 'not_json', url, status: answer.status, text: answer.text });
    }
    if (method === 'POST' && answer.status < 400) {
      const problem = tokenResponseProblem(body);
      if (problem) throw new WireRefusal({ kind: 'not_a_token', url, problem });
    }
    return { status: answer.status, headers: answer.headers, body: (body ?? {}) as T };
  }
}

/** An answer no retry can mend, with what the error message needs to say about it. */
class WireRefusal extends Error {
  override name = 'WireRefusal';
  constructor(readonly failure: WireFailure) {
    super(`the token endpoint's answer cannot be used (${failure.kind})`);
  }
}

/** A JSON object, or `undefined` for anything else. */
function parseJson(text: string): Record<string, unknown> | undefined {
  if (text === '') return {};
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What makes a successful token answer unusable (RFC 6749 §5.1), checked
 * before msal-node sees it: it trusts the types and fails deep inside
 * (`token.split is not a function` for a numeric access_token).
 */
function tokenResponseProblem(body: Record<string, unknown> | undefined): string | undefined {
  const token = body?.access_token;
  if (typeof token !== 'string' || token === '') {
    if (token === undefined) return 'access_token is missing';
    return `access_token is ${token === '' ? 'empty' : token === null ? 'null' : `a ${typeof token}, not a string`}`;
  }
  const expiresIn = body?.expires_in;
  const seconds = typeof expiresIn === 'string' ? Number(expiresIn) : expiresIn;
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds <= 0) {
    return 'expires_in is not a positive number of seconds';
  }
  return undefined;
}

/** The URL without query or fragment: enough to say which endpoint failed. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(invalid url)';
  }
}
