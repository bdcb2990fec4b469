/**
 * Minimal JWS compact serialization on node:crypto, for the test token service
 * and for tests that hand-craft client assertions. Only what Entra ID uses:
 * RS256 (its own tokens) and PS256 (what msal-node signs assertions with).
 */
import {
  constants,
  createPrivateKey,
  createPublicKey,
  type KeyLike,
  KeyObject,
  sign,
  verify,
  X509Certificate,
} from 'node:crypto';

export type JwtAlgorithm = 'RS256' | 'PS256';

export interface JwtHeader {
  alg: string;
  typ?: string;
  kid?: string;
  x5t?: string;
  'x5t#S256'?: string;
  x5c?: string[];
  [name: string]: unknown;
}

export interface JwtClaims {
  iss?: string;
  sub?: string;
  aud?: string | string[];
  exp?: number;
  nbf?: number;
  iat?: number;
  jti?: string;
  [name: string]: unknown;
}

export interface DecodedJwt {
  header: JwtHeader;
  payload: JwtClaims;
  /** `base64url(header).base64url(payload)`, the bytes the signature covers. */
  signingInput: string;
  signature: Buffer;
}

export class MalformedJwtError extends Error {
  override name = 'MalformedJwtError';
}

export function base64url(input: Buffer | string): string {
  return Buffer.from(input).toString('base64url');
}

export function decodeJwt(token: string): DecodedJwt {
  const parts = token.split('.');
  if (parts.length !== 3) throw new MalformedJwtError('a JWS has three dot-separated parts');
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
  const header = parseJsonPart(headerPart, 'header');
  const payload = parseJsonPart(payloadPart, 'payload');
  if (typeof header.alg !== 'string') throw new MalformedJwtError('the header has no alg');
  return {
    header: header as JwtHeader,
    payload: payload as JwtClaims,
    signingInput: `${headerPart}.${payloadPart}`,
    signature: Buffer.from(signaturePart, 'base64url'),
  };
}

function parseJsonPart(part: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw new MalformedJwtError(`the ${what} is not base64url-encoded JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new MalformedJwtError(`the ${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

export interface SignJwtOptions {
  /** PEM (PKCS#8 or PKCS#1) or a KeyObject. */
  privateKeyPem: string | KeyObject;
  algorithm?: JwtAlgorithm;
  /** Extra header fields (kid, x5t, x5t#S256, x5c, typ). */
  header?: Omit<JwtHeader, 'alg'>;
}

export function signJwt(payload: JwtClaims, options: SignJwtOptions): string {
  const algorithm = options.algorithm ?? 'RS256';
  const header = { ...options.header, alg: algorithm };
  const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(payload))}`;
  const signature = sign('sha256', Buffer.from(signingInput), {
    key: toPrivateKey(options.privateKeyPem),
    ...paddingFor(algorithm),
  });
  return `${signingInput}.${base64url(signature)}`;
}

/**
 * Checks the signature only; claims are the caller's business. `key` may be a
 * public key, a certificate PEM or a KeyObject. Unknown algorithms never verify.
 */
export function verifyJwtSignature(
  decoded: DecodedJwt,
  key: KeyLike,
  allowed: readonly JwtAlgorithm[] = ['RS256', 'PS256'],
): boolean {
  const algorithm = decoded.header.alg as JwtAlgorithm;
  if (!allowed.includes(algorithm)) return false;
  try {
    return verify(
      'sha256',
      Buffer.from(decoded.signingInput),
      { key: toPublicKey(key), ...paddingFor(algorithm) },
      decoded.signature,
    );
  } catch {
    return false;
  }
}

function paddingFor(algorithm: JwtAlgorithm): { padding: number; saltLength?: number } {
  // RFC 7518 §3.5: PS256 uses MGF1-SHA256 with a salt as long as the hash.
  return algorithm === 'PS256'
    ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }
    : { padding: constants.RSA_PKCS1_PADDING };
}

function toPrivateKey(key: string | KeyObject): KeyObject {
  return typeof key === 'string' ? createPrivateKey(key) : key;
}

function toPublicKey(key: KeyLike): KeyObject {
  // createPublicKey refuses a KeyObject that is already public.
  if (key instanceof KeyObject && key.type === 'public') return key;
  if (typeof key === 'string' && key.includes('BEGIN CERTIFICATE')) {
    return new X509Certificate(key).publicKey;
  }
  return createPublicKey(key);
}

/** The `aud` claim may be a string or an array (RFC 7519 §4.1.3). */
export function audienceIncludes(claims: JwtClaims, audience: string): boolean {
  return Array.isArray(claims.aud) ? claims.aud.includes(audience) : claims.aud === audience;
}
