import type { INetworkModule, NetworkRequestOptions, NetworkResponse } from '@azure/msal-node';
import type { Logger } from '../log/logger.js';
import { isPermanentNetworkError, networkErrorCode } from '../util/network-errors.js';
import { isRetryableEntraResponse } from './entra-errors.js';
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
  sleep?: (ms: number) => Promise<void>;
}

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

  constructor(options: RetryingNetworkClientOptions) {
    this.#options = options;
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
        const delay = isPermanentNetworkError(err)
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
          this.lastFailure = { kind: 'network', url, error: err, attempts: attempt };
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
    const response = await fetch(url, {
      method,
      headers: options?.headers ?? {},
      ...(method === 'POST' ? { body: options?.body ?? '' } : {}),
      signal: AbortSignal.timeout(timeout ?? this.#options.timeoutMs),
    });
    const text = await response.text();
    const headers: Record<string, string> = {};
    response.headers.forEach((value, key) => {
      headers[key] = value;
    });
    return { status: response.status, headers, body: parseBody(text) as T };
  }
}

function parseBody(text: string): unknown {
  if (text === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    // A proxy's or load balancer's HTML error page: keep a short excerpt for the message.
    return { error: 'non_json_response', error_description: text.slice(0, 200) };
  }
}

/** The URL without query or fragment: enough to say which endpoint failed. */
function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(invalid url)';
  }
}
