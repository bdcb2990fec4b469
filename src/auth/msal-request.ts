/**
 * What every msal-node client of ours shares: its log lines in our log, and
 * one token request whose failure is explained by what our network client
 * saw on the wire (msal-node's own errors say little).
 */
import { type AuthenticationResult, LogLevel, type NodeSystemOptions } from '@azure/msal-node';
import type { MailbridgeError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { RetryingNetworkClient, WireFailure } from './network-client.js';
import type { RetryOptions } from './retry-policy.js';

export interface IssuedToken {
  accessToken: string;
  expiresOn: Date;
}

/** How one credential's token requests are sent. */
export interface TokenRequestOptions {
  retry: RetryOptions;
  /** Timeout of one HTTP request. */
  timeoutMs: number;
  logger: Logger;
}

/** msal-node's warnings as debug lines, never with personal data. */
export function msalLoggerOptions(logger: Logger): NonNullable<NodeSystemOptions['loggerOptions']> {
  return {
    piiLoggingEnabled: false,
    logLevel: LogLevel.Warning,
    loggerCallback: (_level, message) => logger.log('debug', 'msal-node', { message }),
  };
}

/**
 * Makes one msal-node request over `network`. `toError` turns what msal-node
 * threw, with the wire's last failure, into our error; `invalid` is the error
 * for an answer without a token or expiry.
 */
export async function requestToken(
  network: RetryingNetworkClient,
  request: () => Promise<AuthenticationResult | null>,
  toError: (error: unknown, failure: WireFailure | undefined) => MailbridgeError,
  invalid: () => MailbridgeError,
): Promise<IssuedToken> {
  network.lastFailure = undefined;
  let result: AuthenticationResult | null;
  try {
    result = await request();
  } catch (error) {
    throw toError(error, network.lastFailure);
  }
  if (typeof result?.accessToken !== 'string' || !result.accessToken || !result.expiresOn) {
    throw invalid();
  }
  return { accessToken: result.accessToken, expiresOn: result.expiresOn };
}
