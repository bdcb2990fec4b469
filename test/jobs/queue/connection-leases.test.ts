/**
 * The Redis-backed connection budget on its own, against a real Redis: two
 * lease holders stand for two worker machines.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ConnectionLeases,
  createConnectionLeases,
} from '../../../src/jobs/queue/connection-leases.js';
import { silentLogger } from '../../../src/log/logger.js';
import { type RedisServer, startRedisServer } from '../../helpers/redis-server.js';

let server: RedisServer;
const clients: Redis[] = [];

beforeAll(async () => {
  server = await startRedisServer();
});
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await server?.stop();
});

function holder(leaseMs: number): { redis: Redis; leases: ConnectionLeases } {
  const redis = new Redis(server.url, { maxRetriesPerRequest: null });
  clients.push(redis);
  return { redis, leases: createConnectionLeases(redis, { leaseMs, logger: silentLogger }) };
}

describe('connection leases', () => {
  it('never grant more than the limit across holders, and pass a released one on', async () => {
    const a = holder(10_000);
    const b = holder(10_000);
    let open = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const release = await (i % 2 ? a : b).leases.acquire('imap:993/shared@contoso', 3);
        open++;
        most = Math.max(most, open);
        await new Promise((r) => setTimeout(r, 30));
        open--;
        release();
      }),
    );
    expect(most).toBe(3);
    await a.leases.close();
    await b.leases.close();
  });

  it("free a dead holder's leases once they run out, and not before", async () => {
    const dead = holder(1_000);
    const alive = holder(1_000);
    await dead.leases.acquire('k/dead', 1);
    // The holder dies: no release, no renewal.
    dead.redis.disconnect();
    const started = Date.now();
    const release = await alive.leases.acquire('k/dead', 1);
    const waited = Date.now() - started;
    expect(waited).toBeGreaterThanOrEqual(700);
    expect(waited).toBeLessThan(5_000);
    release();
    await alive.leases.close();
  });

  it("keep a living holder's lease past its lease time by renewing it", async () => {
    const a = holder(600);
    const b = holder(600);
    const release = await a.leases.acquire('k/renewed', 1);
    const other = b.leases.acquire('k/renewed', 1).then(() => Date.now());
    await new Promise((r) => setTimeout(r, 2_000));
    const releasedAt = Date.now();
    release();
    expect(await other).toBeGreaterThanOrEqual(releasedAt);
    await a.leases.close();
    await b.leases.close();
  });

  it('make every holder wait out a throttling pause', async () => {
    const a = holder(5_000);
    const b = holder(5_000);
    await a.leases.pause?.('k/throttled', 800);
    const started = Date.now();
    await b.leases.whenOpen?.('k/throttled');
    expect(Date.now() - started).toBeGreaterThanOrEqual(600);
    // A pause is lengthened, never shortened.
    await a.leases.pause?.('k/throttled', 2_000);
    await b.leases.pause?.('k/throttled', 10);
    expect(await b.redis.pttl('mailbridge:pause:k/throttled')).toBeGreaterThan(1_000);
    await a.leases.close();
    await b.leases.close();
  });
});
