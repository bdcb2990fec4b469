/**
 * The relay's upstream connections are kept, not replaced every 100 messages
 * (nodemailer's default): each new one is a TLS handshake and an XOAUTH2
 * login, time in which that connection carries nothing. Real Postfix behind
 * a TCP proxy that counts connections.
 */
import { mkdtemp, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRelaySettings } from '../../../src/jobs/relay/config.js';
import { startRelay } from '../../../src/jobs/relay/relay.js';
import { createJsonLogger } from '../../../src/log/json-logger.js';
import { collectText, startProxy, startUpstream, type Upstream } from './upstream.js';

const PRINTER = 'printer@contoso.example';
const RECIPIENT = 'kept-connection@contoso.example';
const MESSAGES = 120;

let upstream: Upstream;
let dir: string;

beforeAll(async () => {
  upstream = await startUpstream([PRINTER, RECIPIENT]);
  dir = await mkdtemp(join(tmpdir(), 'relay-upstream-connections-'));
}, 60_000);

afterAll(async () => {
  await upstream?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A relay with one upstream connection, to Postfix through a TCP proxy that counts connections. */
async function relayBehindProxy(spool: string, scanIntervalMs?: number) {
  const proxy = await startProxy(upstream.servers.smtp);
  const log = collectText();
  const relay = await startRelay(
    { ...upstream.config, smtp: { host: '127.0.0.1', port: proxy.port } },
    {
      settings: parseRelaySettings({
        listen: ['127.0.0.1:0'],
        spool: join(dir, spool),
        allowNetworks: ['127.0.0.1/32'],
        policy: [{ network: '127.0.0.1/32', senders: [PRINTER] }],
        rateLimitPerMinute: false,
        connectionsPerMailbox: 1,
      }),
      logger: createJsonLogger(log.stream),
      ...(scanIntervalMs !== undefined ? { scanIntervalMs } : {}),
    },
  );
  return { proxy, relay, log };
}

describe('upstream connections', () => {
  it(`carries ${MESSAGES} messages over one connection (connectionsPerMailbox 1)`, async () => {
    const { proxy, relay } = await relayBehindProxy('spool');
    const client = nodemailer.createTransport({
      host: '127.0.0.1',
      port: relay.listeners[0]?.port,
      ignoreTLS: true,
      pool: true,
      maxConnections: 1,
      maxMessages: Number.POSITIVE_INFINITY,
    });
    try {
      const stamp = Date.now();
      const ids = Array.from({ length: MESSAGES }, (_, i) => `<kept-${i}-${stamp}@printer.lan>`);
      for (const messageId of ids) {
        await client.sendMail({
          from: PRINTER,
          to: RECIPIENT,
          subject: 'scan',
          text: 'x',
          messageId,
        });
      }
      const { missing, duplicates } = await upstream.waitForAll(RECIPIENT, ids, 60_000);
      expect({ missing, duplicates }).toEqual({ missing: [], duplicates: 0 });
      expect(proxy.connections).toBe(1);
    } finally {
      client.close();
      await relay.stop({ timeoutMs: 2000 });
      await proxy.close();
    }
  }, 120_000);

  it('sends again at once, over a new connection, a message whose kept connection the upstream had closed', async () => {
    const { proxy, relay, log } = await relayBehindProxy('spool-stale');
    const client = nodemailer.createTransport({
      host: '127.0.0.1',
      port: relay.listeners[0]?.port,
      ignoreTLS: true,
    });
    try {
      const stamp = Date.now();
      const ids = [`<stale-1-${stamp}@printer.lan>`, `<stale-2-${stamp}@printer.lan>`];
      const send = (messageId: string) =>
        client.sendMail({ from: PRINTER, to: RECIPIENT, subject: 'scan', text: 'x', messageId });
      await send(ids[0] as string);
      await upstream.waitForAll(RECIPIENT, [ids[0] as string], 30_000);
      // The relay still holds the connection it sent the first message on; its other end is gone.
      proxy.stale();
      await send(ids[1] as string);
      const { missing, duplicates } = await upstream.waitForAll(RECIPIENT, ids, 30_000);
      expect({ missing, duplicates }).toEqual({ missing: [], duplicates: 0 });
      expect(proxy.connections).toBe(2);
      const events = log
        .text()
        .split('\n')
        .filter(Boolean)
        .map(
          (line) => JSON.parse(line) as { event?: string; messageId?: string; attempts?: number },
        );
      expect(events.filter((e) => e.event === 'deferred')).toEqual([]);
      expect(events.find((e) => e.event === 'delivered' && e.messageId === ids[1])?.attempts).toBe(
        1,
      );
    } finally {
      client.close();
      await relay.stop({ timeoutMs: 2000 });
      await proxy.close();
    }
  }, 120_000);

  it('a queued message whose spool file is gone goes to dead/ as SPOOL_FILE_MISSING, not retried', async () => {
    const { proxy, relay, log } = await relayBehindProxy('spool-missing', 200);
    const events = () =>
      log
        .text()
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as { event?: string; id?: string; code?: string });
    const until = async <T>(find: () => T | undefined): Promise<T> => {
      for (let i = 0; i < 300; i++) {
        const found = find();
        if (found !== undefined) return found;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`not seen in the log:\n${log.text()}`);
    };
    const client = nodemailer.createTransport({
      host: '127.0.0.1',
      port: relay.listeners[0]?.port,
      ignoreTLS: true,
    });
    try {
      await proxy.down();
      await client.sendMail({ from: PRINTER, to: RECIPIENT, subject: 'scan', text: 'x' });
      const deferred = await until(() => events().find((e) => e.event === 'deferred'));
      const id = deferred.id as string;
      await unlink(relay.spool.queuePath(id, 'eml'));
      await proxy.up();
      expect(await relay.spool.release(id)).toBe('kicked');
      const dead = await until(() => events().find((e) => e.event === 'dead' && e.id === id));
      expect(dead.code).toBe('SPOOL_FILE_MISSING');
      expect(events().filter((e) => e.event === 'deferred')).toHaveLength(1);
    } finally {
      client.close();
      await relay.stop({ timeoutMs: 2000 });
      await proxy.close();
    }
  }, 120_000);
});
