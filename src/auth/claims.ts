/**
 * Reads the claims of an access token for diagnosis (`mailbridge token`,
 * `doctor`). The signature is NOT checked: these tokens are for Exchange, not
 * for us, and only Exchange validates them.
 */
export interface AccessTokenClaims {
  aud?: string;
  iss?: string;
  tid?: string;
  appid?: string;
  /** v2 tokens name the app `azp` instead of `appid`. */
  azp?: string;
  roles?: string[];
  /** Delegated scopes: present only on user tokens, never on app-only ones. */
  scp?: string;
  exp?: number;
  iat?: number;
  [claim: string]: unknown;
}

/** Returns the payload of a JWT, or undefined when the token is not a JWT. */
export function decodeAccessTokenClaims(token: string): AccessTokenClaims | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as unknown;
    return payload !== null && typeof payload === 'object'
      ? (payload as AccessTokenClaims)
      : undefined;
  } catch {
    return undefined;
  }
}
