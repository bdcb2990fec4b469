/**
 * Connections to the queue's Redis. A worker keeps retrying while Redis is
 * away (a restart loses no job with AOF on, and BullMQ needs commands to
 * wait rather than fail); a command (`jobs status`, `archive --queue`) gives
 * up soon with QUEUE_UNREACHABLE.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { NetworkError } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import { isTlsVerificationError, networkErrorCode } from '../../util/network-errors.js';
import type { QueueSettings } from './settings.js';

/** Every key of ours and BullMQ's starts with it, so one Redis can serve other apps too. */
export const KEY_PREFIX = 'mailbridge';

const COMMAND_CONNECT_TIMEOUT_MS = 5_000;

/** For a worker: waits for Redis for ever, reconnecting with a back-off up to 5 s. */
export function connectForWorker(settings: QueueSettings, logger: Logger): Redis {
  const redis = new Redis(settings.url, {
    ...tlsOptions(settings),
    maxRetriesPerRequest: null,
    retryStrategy: (times) => Math.min(200 * times, 5_000),
  });
  let down = false;
  redis.on('error', (error: Error) => {
    if (down) return;
    down = true;
    logger.log('warn', 'queue: Redis unreachable; retrying', {
      redis: settings.shownUrl,
      error: (error as NodeJS.ErrnoException).code ?? error.message,
    });
  });
  redis.on('ready', () => {
    if (down) logger.log('info', 'queue: Redis reachable again', { redis: settings.shownUrl });
    down = false;
  });
  return redis;
}

/** For a command: fails with QUEUE_UNREACHABLE when Redis does not answer within 5 s. */
export async function connectForCommand(settings: QueueSettings): Promise<Redis> {
  const redis = new Redis(settings.url, {
    ...tlsOptions(settings),
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    connectTimeout: COMMAND_CONNECT_TIMEOUT_MS,
    retryStrategy: () => null,
  });
  let last: Error | undefined;
  redis.on('error', (error: Error) => {
    last = error;
  });
  try {
    await redis.connect();
    await redis.ping();
    return redis;
  } catch (error) {
    redis.disconnect();
    throw unreachable(settings, (last ?? error) as Error);
  }
}

/**
 * Resolves once the worker's Redis is ready the first time. Redis being away
 * is waited out, but a certificate nobody trusts does not mend by waiting:
 * that stops the worker (TLS_CERTIFICATE_UNTRUSTED) instead of a silent retry loop.
 */
export function firstReady(redis: Redis, settings: QueueSettings): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => {
      if (!isTlsVerificationError(error)) return;
      done();
      reject(unreachable(settings, error));
    };
    const onReady = () => {
      done();
      resolve();
    };
    const done = () => {
      redis.off('error', onError);
      redis.off('ready', onReady);
    };
    redis.on('error', onError);
    redis.on('ready', onReady);
  });
}

function tlsOptions(settings: QueueSettings): Pick<RedisOptions, 'tls'> {
  return settings.tls ? { tls: settings.tls } : {};
}

export function unreachable(settings: QueueSettings, error: Error): NetworkError {
  if (isTlsVerificationError(error)) {
    return new NetworkError({
      code: 'TLS_CERTIFICATE_UNTRUSTED',
      message: `The TLS certificate of the job queue's Redis at ${settings.shownUrl} could not be verified (${networkErrorCode(error)})`,
      remedy:
        'If Redis uses a private CA, name a PEM file holding that CA with queue.caFile in the --config file (or NODE_EXTRA_CA_CERTS). TLS verification is never switched off.',
      cause: error,
    });
  }
  const reason = (error as NodeJS.ErrnoException).code ?? error.message;
  return new NetworkError({
    code: 'QUEUE_UNREACHABLE',
    message: `The job queue's Redis at ${settings.shownUrl} did not answer (${reason})`,
    remedy:
      'Check that Redis runs there, the password (MAILBRIDGE_REDIS_URL or queue.url) and, for rediss://, its certificate.',
    cause: error,
  });
}
