/**
 * Password hashes for the relay's local accounts, in the PHC string format
 * (https://github.com/P-H-C/phc-string-format): `$scrypt$ln=15,r=8,p=1$<salt>$<hash>`,
 * salt and hash in base64 without padding. scrypt comes with Node.js
 * (node:crypto), so no native dependency is needed. argon2id hashes are
 * recognised and refused with a message: Node.js 20 has no argon2.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

export interface ScryptParameters {
  /** log2 of the CPU/memory cost N. */
  ln: number;
  r: number;
  p: number;
}

/** N = 2^15, r = 8, p = 1: OWASP's minimum for scrypt, about 32 MiB and 50-100 ms per check. */
export const DEFAULT_SCRYPT: Readonly<ScryptParameters> = { ln: 15, r: 8, p: 1 };

const SALT_BYTES = 16;
const HASH_BYTES = 32;
/** Bounds for parameters read from a users file: a hash must not be a way to exhaust memory. */
const LIMITS = { ln: [10, 20], r: [1, 32], p: [1, 16] } as const;

export interface ParsedScryptHash {
  algorithm: 'scrypt';
  params: ScryptParameters;
  salt: Buffer;
  hash: Buffer;
}

/** PHC / crypt(3) ids of other algorithms, safe to name in a message: bcrypt, the SHA crypts, MD5 crypt, yescrypt, PBKDF2. */
const OTHER_ALGORITHMS = new Set([
  '2a',
  '2b',
  '2y',
  '1',
  '5',
  '6',
  'y',
  'pbkdf2',
  'pbkdf2-sha256',
  'pbkdf2-sha512',
]);

export type HashParseResult = { ok: true; value: ParsedScryptHash } | { ok: false; reason: string };

/**
 * Parses a PHC scrypt string; the reason says what is wrong without echoing
 * the value, and names `hashCommand` (the relay's or the proxy's) as the way
 * to make one.
 */
export function parsePasswordHash(
  text: string,
  hashCommand = 'mailbridge relay hash-password',
): HashParseResult {
  const value = text.trim();
  if (!value.startsWith('$')) {
    return {
      ok: false,
      reason: `it is not a PHC hash (passwords are never stored in plain text: make one with \`${hashCommand}\`)`,
    };
  }
  const fields = value.split('$');
  // ['', id, (version,) params, salt, hash]
  const id = fields[1] ?? '';
  if (id === 'argon2id' || id === 'argon2i' || id === 'argon2d') {
    return {
      ok: false,
      reason: `${id} hashes are not supported on Node.js 20 (no argon2 in node:crypto): make a scrypt hash with \`${hashCommand}\``,
    };
  }
  if (id !== 'scrypt') {
    return {
      ok: false,
      // Only a well-known id is quoted: a plain password starting with '$' would otherwise show a piece of itself.
      reason: `the hash algorithm ${OTHER_ALGORITHMS.has(id) ? `'${id}' ` : ''}is not supported (scrypt is)`,
    };
  }
  if (fields.length !== 5) {
    return { ok: false, reason: 'a scrypt hash has the form $scrypt$ln=15,r=8,p=1$<salt>$<hash>' };
  }
  const params: Partial<ScryptParameters> = {};
  for (const pair of (fields[2] as string).split(',')) {
    const m = /^(ln|r|p)=(\d{1,3})$/.exec(pair);
    if (!m) {
      return { ok: false, reason: 'the scrypt parameters are not valid (expected ln=N,r=N,p=N)' };
    }
    params[m[1] as keyof ScryptParameters] = Number(m[2]);
  }
  for (const key of ['ln', 'r', 'p'] as const) {
    const v = params[key];
    const [min, max] = LIMITS[key];
    if (v === undefined) return { ok: false, reason: `the scrypt parameter ${key} is missing` };
    if (v < min || v > max) {
      return { ok: false, reason: `the scrypt parameter ${key}=${v} is outside ${min}..${max}` };
    }
  }
  const salt = decodeB64(fields[3] as string);
  const hash = decodeB64(fields[4] as string);
  if (!salt || salt.length < 8) return { ok: false, reason: 'the salt is not valid base64' };
  if (!hash || hash.length < 16) return { ok: false, reason: 'the hash is not valid base64' };
  return {
    ok: true,
    value: { algorithm: 'scrypt', params: params as ScryptParameters, salt, hash },
  };
}

/** A new PHC scrypt hash of `password`. */
export async function hashPassword(
  password: string,
  params: ScryptParameters = DEFAULT_SCRYPT,
): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(password, salt, params, HASH_BYTES);
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${encodeB64(salt)}$${encodeB64(hash)}`;
}

/** Whether `password` matches the parsed hash, compared in constant time. */
export async function verifyPassword(password: string, parsed: ParsedScryptHash): Promise<boolean> {
  const derived = await derive(password, parsed.salt, parsed.params, parsed.hash.length);
  return timingSafeEqual(derived, parsed.hash);
}

function derive(
  password: string,
  salt: Buffer,
  params: ScryptParameters,
  length: number,
): Promise<Buffer> {
  const N = 2 ** params.ln;
  // scrypt needs 128 * N * r bytes; Node refuses more than maxmem (32 MiB by default).
  const maxmem = 128 * N * params.r + 1024 * 1024;
  return new Promise((resolve, reject) => {
    scrypt(
      Buffer.from(password.normalize('NFC'), 'utf8'),
      salt,
      length,
      { N, r: params.r, p: params.p, maxmem },
      (error, key) => (error ? reject(error) : resolve(key)),
    );
  });
}

function encodeB64(bytes: Buffer): string {
  return bytes.toString('base64').replace(/=+$/, '');
}

function decodeB64(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]+$/.test(text)) return undefined;
  return Buffer.from(text, 'base64');
}
