/**
 * The per-mailbox connection budget shared by every worker: a counting
 * semaphore in Redis whose holders are leases that expire. A worker renews
 * its leases while it lives; when it dies (SIGKILL, machine gone) they run
 * out after `leaseMs` and others take the connections. A throttling reply
 * for a mailbox sets a pause that every worker waits out before its next
 * command on that mailbox.
 *
 * The clock is Redis's (`TIME` inside the scripts), so workers on machines
 * whose clocks disagree still agree on when a lease has run out.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { ConnectionSlots } from '../../clients/connection-limit.js';
import type { Logger } from '../../log/logger.js';
import { KEY_PREFIX } from './redis.js';

/** KEYS[1] the lease set; ARGV lease id, limit, lease ms. 1 when taken. */
const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
  return 1
end
return 0
`;

/** KEYS[1] the lease set; ARGV lease ms, then lease ids. Extends those still held. */
const RENEW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)
return 0
`;

/** KEYS[1] the pause key; ARGV ms. Lengthens a pause, never shortens it. */
const PAUSE = `
local left = redis.call('PTTL', KEYS[1])
if left < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end
return 0
`;

const WAIT_MIN_MS = 50;
const WAIT_MAX_MS = 1_000;
/** How long a pause read from Redis is trusted before asking again. */
const PAUSE_CACHE_MS = 1_000;

export interface ConnectionLeasesOptions {
  /** A lease not renewed for this long is free again. */
  leaseMs: number;
  logger: Logger;
}

export interface ConnectionLeases extends ConnectionSlots {
  /** Releases every lease still held and stops renewing. */
  close(): Promise<void>;
}

export function createConnectionLeases(
  redis: Redis,
  options: ConnectionLeasesOptions,
): ConnectionLeases {
  const { leaseMs, logger } = options;
  /** Lease set key → ids held by this process. */
  const held = new Map<string, Set<string>>();
  const pauses = new Map<string, { until: number; checked: number }>();
  const leaseKey = (key: string) => `${KEY_PREFIX}:leases:${key}`;
  const pauseKey = (key: string) => `${KEY_PREFIX}:pause:${key}`;

  const renew = async () => {
    for (const [key, ids] of held) {
      if (ids.size === 0) continue;
      await redis.eval(RENEW, 1, key, leaseMs, ...ids).catch((error: Error) => {
        logger.log('warn', 'queue: could not renew connection leases', { error: error.message });
      });
    }
  };
  const timer = setInterval(() => void renew(), Math.max(100, Math.floor(leaseMs / 3)));
  timer.unref();

  const pausedFor = async (key: string): Promise<number> => {
    const cached = pauses.get(key);
    const now = Date.now();
    if (cached && now - cached.checked < PAUSE_CACHE_MS) return Math.max(0, cached.until - now);
    const left = await redis.pttl(pauseKey(key)).catch(() => -2);
    pauses.set(key, { until: now + Math.max(0, left), checked: now });
    return Math.max(0, left);
  };

  return {
    async acquire(key, limit) {
      const set = leaseKey(key);
      const id = randomUUID();
      for (let wait = WAIT_MIN_MS; ; wait = Math.min(wait * 2, WAIT_MAX_MS)) {
        const paused = await pausedFor(key);
        if (paused > 0) {
          await sleep(paused);
          continue;
        }
        const taken = await redis
          .eval(ACQUIRE, 1, set, id, limit, leaseMs)
          .catch((error: Error) => {
            logger.log('warn', 'queue: could not take a connection lease; retrying', {
              error: error.message,
            });
            return 0;
          });
        if (taken === 1) break;
        // Jitter, so that waiting workers do not ask in lock-step.
        await sleep(wait / 2 + Math.random() * wait);
      }
      let ids = held.get(set);
      if (!ids) {
        ids = new Set();
        held.set(set, ids);
      }
      ids.add(id);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        held.get(set)?.delete(id);
        // If this fails the lease runs out by itself after leaseMs.
        redis.zrem(set, id).catch(() => {});
      };
    },
    async pause(key, ms) {
      pauses.set(key, { until: Date.now() + ms, checked: Date.now() });
      await redis.eval(PAUSE, 1, pauseKey(key), ms).catch((error: Error) => {
        logger.log('warn', 'queue: could not share a throttling pause', { error: error.message });
      });
    },
    async whenOpen(key) {
      const paused = await pausedFor(key);
      if (paused > 0) await sleep(paused);
    },
    async close() {
      clearInterval(timer);
      const all = [...held.entries()];
      held.clear();
      await Promise.all(
        all.map(([set, ids]) => (ids.size ? redis.zrem(set, ...ids).catch(() => 0) : 0)),
      );
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
