/**
 * Durability: the relay runs as a child process (`mailbridge relay`, through
 * the built CLI), 200 messages arrive from several clients at once, and the
 * relay is killed with SIGKILL in the middle of the burst while it is
 * delivering. After a restart, every message that was acknowledged with 250
 * must arrive at the real upstream (SMTP submission → Dovecot, read over
 * IMAP), and the copies beyond one may number no more than the upstream
 * deliveries that were in flight at the kill (connectionsPerMailbox ×
 * mailboxes). Then the same again and again: four kills in one burst of 120,
 * each restart taking the rest of the burst.
 *
 * The counts are what a kill in the middle of work needs, not a load test
 * (500 and 240 before: more CPU for the same assertions).
 * Submission is smtp-server in the test process, not Postfix: these tests are
 * about the relay's spool, and Postfix spends CPU on every message
 * (test/jobs/relay/postfix.test.ts covers the relay in front of Postfix).
 */
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killRelayChildren, portOf, spawnRelay, writeRelayConfig } from './relay-process.js';
import { startUpstream, type Upstream } from './upstream.js';

const PRINTER = 'printer@contoso.example';
const RECIPIENT = 'burst@contoso.example';
const TOTAL = 200;
const CLIENTS = 8;
const KILL_AFTER_ACKS = 80;
const CONNECTIONS_PER_MAILBOX = 2;
/** The repeated-kill burst goes to a mailbox of its own. */
const KILLS_RECIPIENT = 'kills@contoso.example';
const KILLS = 4;
const KILLS_TOTAL = 120;
const ACKS_PER_LIFE = 20;
const KILLS_CLIENTS = 4;

let upstream: Upstream;
let dir: string;
let configFile: string;

beforeAll(async () => {
  upstream = await startUpstream([PRINTER, RECIPIENT, KILLS_RECIPIENT], { submission: 'node' });
  dir = await mkdtemp(join(tmpdir(), 'relay-durability-'));
  configFile = await writeRelayConfig(dir, PRINTER, {
    rateLimitPerMinute: false,
    connectionsPerMailbox: CONNECTIONS_PER_MAILBOX,
    retryBackoff: { initial: '200ms', max: '1s' },
    shutdownTimeout: '5s',
  });
}, 60_000);

/** A pooled SMTP client of the relay on `port`, with at most `connections` open. */
function pooledClient(port: number, connections: number) {
  return nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    secure: false,
    ignoreTLS: true,
    pool: true,
    maxConnections: connections,
  });
}

afterAll(async () => {
  killRelayChildren();
  await upstream?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('durability', { tags: ['soak'] }, () => {
  it(`SIGKILL during a burst of ${TOTAL}: every 250-acknowledged message arrives, duplicates bounded by deliveries in flight`, async () => {
    const started = Date.now();
    const first = spawnRelay(configFile, upstream.env);
    const port = portOf(await first.waitFor('started'));

    const acked = new Set<string>();
    const ids = Array.from({ length: TOTAL }, (_, i) => `<burst-${i}-${started}@printer.lan>`);
    let next = 0;
    let killed = false;
    const body = `${'Scanned page, line of text.\r\n'.repeat(60)}`;
    const sender = async (): Promise<void> => {
      const client = pooledClient(port, 1);
      try {
        while (!killed && next < TOTAL) {
          const messageId = ids[next++] as string;
          try {
            const info = await client.sendMail({
              from: PRINTER,
              to: RECIPIENT,
              subject: `burst ${messageId}`,
              text: body,
              messageId,
            });
            if (/^250 /.test(info.response)) acked.add(messageId);
          } catch {
            // The relay died under this client: the message was not acknowledged.
            return;
          }
          if (!killed && acked.size >= KILL_AFTER_ACKS) {
            killed = true;
            first.child.kill('SIGKILL');
          }
        }
      } finally {
        client.close();
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, sender));
    await first.exited;
    const ackedBeforeKill = acked.size;
    const deliveredBeforeKill = first.events.filter((e) => e.event === 'delivered').length;
    expect(first.child.signalCode).toBe('SIGKILL');
    // The kill came while messages were still waiting to go upstream.
    expect(deliveredBeforeKill).toBeLessThan(ackedBeforeKill);

    // Restart on the same spool; the rest of the burst goes to the new process.
    const second = spawnRelay(configFile, upstream.env);
    const recovered = await second.waitFor('recovered');
    const port2 = portOf(await second.waitFor('started'));
    const rest = ids.slice(next);
    const client = pooledClient(port2, 4);
    await Promise.all(
      rest.map(async (messageId) => {
        const info = await client.sendMail({
          from: PRINTER,
          to: RECIPIENT,
          subject: `burst ${messageId}`,
          text: body,
          messageId,
        });
        if (/^250 /.test(info.response)) acked.add(messageId);
      }),
    );
    client.close();

    // Everything acknowledged arrives.
    const { arrived, missing, duplicates } = await upstream.waitForAll(RECIPIENT, acked);
    expect(missing).toEqual([]);
    const figures = {
      total: TOTAL,
      ackedBeforeKill,
      deliveredBeforeKill,
      queuedAtRestart: recovered.queued,
      discardedAtRestart: recovered.discarded,
      alreadyDeliveredAtRestart: recovered.alreadyDelivered,
      ackedTotal: acked.size,
      arrivedDistinct: arrived.size,
      duplicates,
      inFlightBound: CONNECTIONS_PER_MAILBOX,
      seconds: Math.round((Date.now() - started) / 100) / 10,
    };
    console.log(`relay durability figures: ${JSON.stringify(figures)}`);
    expect(acked.size).toBeGreaterThanOrEqual(TOTAL - CLIENTS);
    expect(duplicates).toBeLessThanOrEqual(CONNECTIONS_PER_MAILBOX);
    // Nothing arrived that nobody sent, and the spool is empty again.
    expect([...arrived.keys()].every((id) => ids.includes(id))).toBe(true);

    // Graceful stop on SIGTERM: exit 0, spool lock released.
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect(second.events.map((e) => e.event)).toContain('stopped');
    await expect(readFile(join(dir, 'spool', 'lock'), 'utf8')).rejects.toThrow(/ENOENT/);
    const queueLeft = second.events.find((e) => e.event === 'stopped')?.queued;
    expect(queueLeft).toBe(0);
  }, 120_000);

  it(`${KILLS} SIGKILLs in a burst of ${KILLS_TOTAL}: every acknowledged message arrives, duplicates bounded`, async () => {
    const killsDir = join(dir, 'kills');
    await mkdir(killsDir);
    const killsConfig = await writeRelayConfig(killsDir, PRINTER, {
      rateLimitPerMinute: false,
      connectionsPerMailbox: CONNECTIONS_PER_MAILBOX,
      retryBackoff: { initial: '200ms', max: '1s' },
    });
    const started = Date.now();
    const ids = Array.from({ length: KILLS_TOTAL }, (_, i) => `<kill-${i}-${started}@printer.lan>`);
    const acked = new Set<string>();
    let next = 0;
    let last: ReturnType<typeof spawnRelay> | undefined;
    for (let life = 0; life <= KILLS && next < KILLS_TOTAL; life++) {
      const relay = spawnRelay(killsConfig, upstream.env);
      last = relay;
      const port = portOf(await relay.waitFor('started'));
      const killAt = life < KILLS ? acked.size + ACKS_PER_LIFE : Number.POSITIVE_INFINITY;
      let killed = false;
      const sender = async () => {
        const client = pooledClient(port, 1);
        try {
          while (!killed && next < KILLS_TOTAL) {
            const messageId = ids[next++] as string;
            const info = await client
              .sendMail({
                from: PRINTER,
                to: KILLS_RECIPIENT,
                subject: messageId,
                text: 'scan',
                messageId,
              })
              .catch(() => undefined);
            // No reply: the relay died under this client, the message was not acknowledged.
            if (!info) return;
            if (/^250 /.test(info.response)) acked.add(messageId);
            if (!killed && acked.size >= killAt) {
              killed = true;
              relay.child.kill('SIGKILL');
            }
          }
        } finally {
          client.close();
        }
      };
      await Promise.all(Array.from({ length: KILLS_CLIENTS }, sender));
      if (killed) await relay.exited;
    }

    const { arrived, missing, duplicates } = await upstream.waitForAll(KILLS_RECIPIENT, acked);
    console.log(
      `relay repeated-kill figures: ${JSON.stringify({ total: KILLS_TOTAL, kills: KILLS, acked: acked.size, arrived: arrived.size, duplicates, seconds: Math.round((Date.now() - started) / 100) / 10 })}`,
    );
    expect(missing).toEqual([]);
    expect(acked.size).toBeGreaterThanOrEqual(KILLS_TOTAL - KILLS * KILLS_CLIENTS);
    expect(duplicates).toBeLessThanOrEqual(KILLS * CONNECTIONS_PER_MAILBOX);
    expect([...arrived.keys()].every((id) => ids.includes(id))).toBe(true);
    last?.child.kill('SIGTERM');
    expect(await last?.exited).toBe(0);
  }, 90_000);
});
