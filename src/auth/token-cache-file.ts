/**
 * A token cache in a file, for tools that start `mailbridge token
 * --show-token` once per connection (mbsync, msmtp, offlineimap, getmail):
 * every run is a new process, so the token provider's memory cache never
 * helps them, and without this each of their logins would be a request to
 * Entra ID.
 *
 * The file holds one token and what it was issued for (authority, app,
 * scope), nothing else: no secret, no claims. It is created 0600 and refused
 * when group or others may read it, when it belongs to another user, or when
 * it is a symbolic link (in a shared folder, a link placed by someone else
 * would redirect where the token is written).
 *
 * Concurrent runs take an exclusive kernel lock on the file (fcntl open file
 * description lock on Linux, through fs-native-extensions) around read,
 * request and write, so twenty processes started together make one token
 * request: the first fetches and writes, the others wait and then read it.
 * The kernel drops the lock when its holder dies, so a crash leaves no stale
 * lock behind.
 */
import { constants } from 'node:fs';
import { type FileHandle, mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { MailbridgeConfig } from '../config/types.js';
import { ConfigurationError } from '../errors.js';
import { type Logger, silentLogger } from '../log/logger.js';
import { displayText } from '../util/display-text.js';
import { type NativeFileLocks, nativeFileLocks } from '../util/file-lock.js';
import type { AccessToken, TokenProvider } from './token-provider.js';

export interface TokenCacheFileOptions {
  path: string;
  /**
   * A cached token is served only while it has more than this left to live.
   * @default 300_000 (5 minutes, the token provider's own margin)
   */
  minValidityMs?: number;
  logger?: Logger;
  now?: () => number;
}

/** What a cached token was issued for: another app's token is never served. */
type Identity = Pick<MailbridgeConfig, 'authority' | 'clientId' | 'scope'>;

interface CacheRecord extends Identity {
  version: 1;
  accessToken: string;
  expiresOn: string;
}

const DEFAULT_MIN_VALIDITY_MS = 5 * 60_000;
/** A record is a few KB; anything larger is not ours. */
const MAX_RECORD_BYTES = 64 * 1024;

/**
 * A token for `config` from the cache file when one there lives longer than
 * the margin, else from `provider`, written to the file for the next run.
 *
 * @throws ConfigurationError `TOKEN_CACHE_INSECURE` (mode, owner, link) or
 *   `TOKEN_CACHE_UNUSABLE` (cannot be created, opened or locked)
 */
export async function tokenThroughCacheFile(
  provider: TokenProvider,
  config: Identity,
  options: TokenCacheFileOptions,
): Promise<AccessToken> {
  const logger = options.logger ?? silentLogger;
  const now = options.now ?? Date.now;
  const minValidityMs = options.minValidityMs ?? DEFAULT_MIN_VALIDITY_MS;
  const identity: Identity = {
    authority: config.authority,
    clientId: config.clientId,
    scope: config.scope,
  };
  const { waitForLock } = await osLocks(options.path);
  const handle = await openCacheFile(options.path);
  try {
    // Closing the handle releases the lock, on every path out of here.
    await waitForLock(handle.fd);
    const cached = await readRecord(handle);
    if (cached && sameIdentity(cached, identity)) {
      const expiresOn = Date.parse(cached.expiresOn);
      if (expiresOn - now() > minValidityMs) {
        logger.log('debug', 'token served from the cache file', { expiresOn: cached.expiresOn });
        return { accessToken: cached.accessToken, expiresOn: new Date(expiresOn) };
      }
    }
    const token = await provider.getToken();
    const record: CacheRecord = {
      version: 1,
      ...identity,
      accessToken: token.accessToken,
      expiresOn: token.expiresOn.toISOString(),
    };
    await handle.truncate(0);
    await handle.write(JSON.stringify(record), 0);
    logger.log('debug', 'token written to the cache file', { expiresOn: record.expiresOn });
    return token;
  } finally {
    await handle.close();
  }
}

/** Opens (creating 0600) the file, refusing one that others could read or redirect. */
async function openCacheFile(path: string): Promise<FileHandle> {
  const shown = displayText(path);
  let handle: FileHandle;
  try {
    // A missing folder is created private; an existing one is left as it is.
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    handle = await open(
      path,
      constants.O_RDWR | constants.O_CREAT | (constants.O_NOFOLLOW ?? 0),
      0o600,
    );
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code ?? 'error';
    if (code === 'ELOOP') {
      throw insecure(
        `The token cache ${shown} is a symbolic link`,
        'Name the file itself with --cache (MAILBRIDGE_TOKEN_CACHE), in a folder only you can write to.',
        cause,
      );
    }
    throw new ConfigurationError({
      code: 'TOKEN_CACHE_UNUSABLE',
      message: `The token cache ${shown} cannot be opened or created (${code})`,
      remedy:
        'Check that its folder exists and that this user may write there; --cache (MAILBRIDGE_TOKEN_CACHE) names the file.',
      cause,
    });
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) {
      throw insecure(
        `The token cache ${shown} is not a regular file`,
        'Name a file with --cache (MAILBRIDGE_TOKEN_CACHE).',
      );
    }
    const uid = process.getuid?.();
    // Windows has no owner or mode bits to compare.
    if (uid !== undefined && stat.uid !== uid) {
      throw insecure(
        `The token cache ${shown} belongs to another user (uid ${stat.uid}), who could read the token`,
        'Use a token cache file of your own, in a folder only you can write to.',
      );
    }
    if (uid !== undefined && (stat.mode & 0o077) !== 0) {
      const mode = (stat.mode & 0o777).toString(8).padStart(4, '0');
      throw insecure(
        `The token cache ${shown} can be read or written by group or others (mode ${mode}); it holds a live access token`,
        `Make it private with \`chmod 600 ${shown}\`, or delete it: mailbridge creates it with mode 0600.`,
      );
    }
    return handle;
  } catch (error) {
    await handle.close();
    throw error;
  }
}

function insecure(message: string, remedy: string, cause?: unknown): ConfigurationError {
  return new ConfigurationError({
    code: 'TOKEN_CACHE_INSECURE',
    message,
    remedy,
    ...(cause !== undefined ? { cause } : {}),
  });
}

/** The record in the file, or undefined for an empty, cut or foreign file (it is then rewritten). */
async function readRecord(handle: FileHandle): Promise<CacheRecord | undefined> {
  const buffer = Buffer.alloc(MAX_RECORD_BYTES + 1);
  const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
  if (bytesRead === 0 || bytesRead > MAX_RECORD_BYTES) return undefined;
  try {
    const value = JSON.parse(
      buffer.subarray(0, bytesRead).toString('utf8'),
    ) as Partial<CacheRecord>;
    const fields = [
      value.authority,
      value.clientId,
      value.scope,
      value.accessToken,
      value.expiresOn,
    ];
    if (value.version !== 1 || !fields.every((field) => typeof field === 'string' && field)) {
      return undefined;
    }
    return value as CacheRecord;
  } catch {
    return undefined;
  }
}

function sameIdentity(a: Identity, b: Identity): boolean {
  return a.authority === b.authority && a.clientId === b.clientId && a.scope === b.scope;
}

/** The native lock calls: without a build for this platform only the cache is lost. */
function osLocks(path: string): Promise<NativeFileLocks> {
  return nativeFileLocks().catch((cause: Error) => {
    throw new ConfigurationError({
      code: 'TOKEN_CACHE_UNUSABLE',
      message: `The token cache ${displayText(path)} cannot be locked: ${cause.message}`,
      remedy:
        'Run without --cache (MAILBRIDGE_TOKEN_CACHE); every run then asks Entra ID for a token.',
      cause,
    });
  });
}
