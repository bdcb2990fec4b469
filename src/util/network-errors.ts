/**
 * Classifies the errors Node raises for sockets, TLS and fetch, which every
 * client of ours (token endpoint, IMAP, SMTP) has to turn into advice.
 */
import { NetworkError } from '../errors.js';

/** The innermost error code Node gives for a failed fetch (ECONNREFUSED, CERT_HAS_EXPIRED, …). */
export function networkErrorCode(error: Error): string {
  let current: unknown = error;
  let code: string | undefined;
  for (let depth = 0; current instanceof Error && depth < 5; depth++) {
    const c = (current as Error & { code?: unknown }).code;
    if (typeof c === 'string') code = c;
    if (current.name === 'TimeoutError' || current.name === 'AbortError') code = 'ETIMEDOUT';
    current = (current as Error & { cause?: unknown }).cause;
  }
  if (code) return code;
  // undici reports some refusals (e.g. a port it blocks) only in the cause's message.
  const cause = (error as Error & { cause?: unknown }).cause;
  return cause instanceof Error && cause.message ? cause.message : error.name;
}

const TLS_ERROR_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

export function isTlsVerificationError(error: Error): boolean {
  return TLS_ERROR_CODES.has(networkErrorCode(error));
}

/** Retrying cannot fix a certificate nobody trusts or a host name that does not resolve. */
export function isPermanentNetworkError(error: Error): boolean {
  const code = networkErrorCode(error);
  return TLS_ERROR_CODES.has(code) || code === 'ENOTFOUND';
}

/**
 * The error for a certificate nobody trusts, whichever client met it. The
 * advice is the same everywhere: trust the CA, never switch verification off.
 */
export function tlsUntrustedError(
  what: string,
  who: 'the authority' | 'the server',
  error: Error,
): NetworkError {
  return new NetworkError({
    code: 'TLS_CERTIFICATE_UNTRUSTED',
    message: `The TLS certificate of ${what} could not be verified (${networkErrorCode(error)})`,
    remedy: `If ${who} uses a private CA, name a PEM file holding that CA with caFile (MAILBRIDGE_CA_FILE, --ca-file) or NODE_EXTRA_CA_CERTS. TLS verification is never switched off.`,
    cause: error,
  });
}
