/**
 * Connections to the queue's Redis. A worker keeps retrying while Redis is
 * away (a restart loses no job with AOF on, and BullMQ needs commands to
 * wait rather than fail); a command (`jobs status`, `archive --queue`) gives
 * up soon with QUEUE_UNREACHABLE.
 */
import { Redis } from 'ioredis';
import { NetworkError } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import type { QueueSettings } from './settings.js';

/** Every key of ours and BullMQ's starts with it, so one Redis can serve other apps too. */
export const KEY_PREFIX = 'mailbridge';

const COMMAND_CONNECT_TIMEOUT_MS = 5_000;

/** For a worker: waits for Redis for ever, reconnecting with a back-off up to 5 s. */
export function connectForWorker(settings: QueueSettings, logger: Logger): Redis {
  const redis = new Redis(settings.url, {
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

export function unreachable(settings: QueueSettings, error: Error): NetworkError {
  const reason = (error as NodeJS.ErrnoException).code ?? error.message;
  return new NetworkError({
    code: 'QUEUE_UNREACHABLE',
    message: `The job queue's Redis at ${settings.shownUrl} did not answer (${reason})`,
    remedy:
      'Check that Redis runs there, the password (MAILBRIDGE_REDIS_URL or queue.url) and, for rediss://, its certificate.',
    cause: error,
  });
}
