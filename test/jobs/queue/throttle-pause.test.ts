/**
 * Exchange's throttling reply for a mailbox, met by one worker's session,
 * pauses that mailbox for every worker's session: two sessions on two Redis
 * lease holders, Dovecot behind the Exchange-like fault proxy.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createImapSession } from '../../../src/clients/imap-session.js';
import { createConnectionLeases } from '../../../src/jobs/queue/connection-leases.js';
import { silentLogger } from '../../../src/log/logger.js';
import { type RedisServer, startRedisServer } from '../../helpers/redis-server.js';
import { type ArchiveTestEnv, startArchiveTestEnv } from '../archive/support.js';

const MAILBOX = 'shared@contoso.example';
let env: ArchiveTestEnv;
let redis: RedisServer;

beforeAll(async () => {
  [env, redis] = await Promise.all([startArchiveTestEnv([MAILBOX]), startRedisServer()]);
}, 60_000);
afterAll(async () => {
  await env?.close();
  await redis?.stop();
});

function workerSession() {
  const client = new Redis(redis.url, { maxRetriesPerRequest: null });
  const leases = createConnectionLeases(client, { leaseMs: 5_000, logger: silentLogger });
  const session = createImapSession(env.config, {
    mailbox: MAILBOX,
    connectionSlots: leases,
    maxThrottleWaitMs: 10_000,
  });
  return {
    session,
    async close() {
      await session.close();
      await leases.close();
      client.disconnect();
    },
  };
}

it('a throttling reply to one worker pauses the mailbox for the others', async () => {
  const a = workerSession();
  const b = workerSession();
  try {
    await Promise.all([a.session.open('INBOX'), b.session.open('INBOX')]);
    env.proxy.throttleNext(1, 3_000, /UID SEARCH/i);
    const started = Date.now();
    const throttled = a.session.run((c) => c.search({ all: true }, { uid: true }));
    while (env.proxy.throttlesSent === 0) await new Promise((r) => setTimeout(r, 10));
    // The other worker last looked at the pause over a second ago: it reads it afresh.
    await new Promise((r) => setTimeout(r, 1_100));
    await b.session.run((c) => c.search({ all: true }, { uid: true }));
    const bDone = Date.now() - started;
    await throttled;
    const aDone = Date.now() - started;
    // B waited for the end of the server's 3 s, as A did; A did not wait twice.
    expect(bDone).toBeGreaterThanOrEqual(2_800);
    expect(aDone).toBeGreaterThanOrEqual(2_800);
    expect(aDone).toBeLessThan(5_500);
    expect(a.session.stats.retries).toBe(1);
    expect(b.session.stats.retries).toBe(0);
  } finally {
    await a.close();
    await b.close();
  }
}, 60_000);
