/**
 * `mailbridge relay` with an `hve` route as a child process (the built CLI),
 * as the relay durability test runs it: a burst of messages each with an
 * internal and an external recipient, split into an HVE part and a mailbox
 * part, and a SIGKILL while the parts are being delivered (after some HVE
 * parts were recorded but before their mailbox parts). After a restart every
 * acknowledged message reaches both recipients, copies beyond one bounded by
 * the deliveries in flight. And a wrong `routes.hve` stops the relay before
 * it starts, exit 2, naming the key.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killRelayChildren, portOf, spawnRelay, writeRelayConfig } from './relay-process.js';
import { startUpstream, type Upstream } from './upstream.js';

const HVE_ACCOUNT = 'notify@contoso.example';
const PRINTER = 'printer@contoso.example';
const STAFF = 'staff@contoso.example';
const PARTNER = 'partner@fabrikam.example';
const TOTAL = 80;
const CLIENTS = 4;
const KILL_AFTER_HVE_PARTS = 10;
const CONNECTIONS_PER_MAILBOX = 2;

let upstream: Upstream;
let dir: string;

beforeAll(async () => {
  upstream = await startUpstream([PRINTER, STAFF, PARTNER], {
    hve: { account: HVE_ACCOUNT, internalDomains: ['contoso.example'] },
  });
  dir = await mkdtemp(join(tmpdir(), 'relay-hve-durability-'));
}, 60_000);

afterAll(async () => {
  killRelayChildren();
  await upstream?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function hveRoute(extra: Record<string, unknown> = {}) {
  const hve = upstream.servers.hve as { host: string; port: number };
  return {
    hve: {
      account: HVE_ACCOUNT,
      host: hve.host,
      port: hve.port,
      internalDomains: ['contoso.example'],
      ...extra,
    },
  };
}

describe('relay hve route durability', () => {
  it('SIGKILL during split deliveries: every acknowledged message reaches both recipients', async () => {
    const configFile = await writeRelayConfig(dir, PRINTER, {
      rateLimitPerMinute: false,
      connectionsPerMailbox: CONNECTIONS_PER_MAILBOX,
      retryBackoff: { initial: '200ms', max: '1s' },
      shutdownTimeout: '5s',
      routes: hveRoute(),
    });
    const started = Date.now();
    const ids = Array.from({ length: TOTAL }, (_, i) => `<split-${i}-${started}@printer.lan>`);
    const acked = new Set<string>();
    let next = 0;

    const first = spawnRelay(configFile, upstream.env);
    const port = portOf(await first.waitFor('started'));
    const hveParts = () =>
      first.events.filter((e) => e.event === 'delivered' && e.route === 'hve' && e.partial).length;
    let killed = false;
    const sender = async () => {
      const client = nodemailer.createTransport({
        host: '127.0.0.1',
        port,
        secure: false,
        ignoreTLS: true,
      });
      try {
        while (!killed && next < TOTAL) {
          const messageId = ids[next++] as string;
          const info = await client
            .sendMail({
              from: PRINTER,
              to: [STAFF, PARTNER],
              subject: messageId,
              text: 'x',
              messageId,
            })
            .catch(() => undefined);
          // No reply: the relay died under this client, the message was not acknowledged.
          if (!info) return;
          if (/^250 /.test(info.response)) acked.add(messageId);
          if (!killed && hveParts() >= KILL_AFTER_HVE_PARTS) {
            killed = true;
            first.child.kill('SIGKILL');
          }
        }
      } finally {
        client.close();
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, sender));
    if (!killed) {
      // Everything was acknowledged before enough parts went out: kill now, while parts are in flight.
      await new Promise<void>((resolve) => {
        const timer = setInterval(() => {
          if (hveParts() >= KILL_AFTER_HVE_PARTS) {
            clearInterval(timer);
            resolve();
          }
        }, 5);
      });
      killed = true;
      first.child.kill('SIGKILL');
    }
    await first.exited;
    expect(first.child.signalCode).toBe('SIGKILL');
    const completeBeforeKill = first.events.filter(
      (e) => e.event === 'delivered' && e.partial === undefined,
    ).length;
    // Some messages had their HVE part recorded and their mailbox part not yet.
    expect(completeBeforeKill).toBeLessThan(hveParts());

    const second = spawnRelay(configFile, upstream.env);
    const recovered = await second.waitFor('recovered');
    const port2 = portOf(await second.waitFor('started'));
    const client = nodemailer.createTransport({
      host: '127.0.0.1',
      port: port2,
      secure: false,
      ignoreTLS: true,
    });
    for (const messageId of ids.slice(next)) {
      const info = await client.sendMail({
        from: PRINTER,
        to: [STAFF, PARTNER],
        subject: messageId,
        text: 'x',
        messageId,
      });
      if (/^250 /.test(info.response)) acked.add(messageId);
    }
    client.close();

    const staff = await upstream.waitForAll(STAFF, acked);
    const partner = await upstream.waitForAll(PARTNER, acked);
    console.log(
      `relay hve split kill figures: ${JSON.stringify({
        total: TOTAL,
        acked: acked.size,
        hvePartsBeforeKill: hveParts(),
        completeBeforeKill,
        queuedAtRestart: recovered.queued,
        duplicatesStaff: staff.duplicates,
        duplicatesPartner: partner.duplicates,
        seconds: Math.round((Date.now() - started) / 100) / 10,
      })}`,
    );
    expect(staff.missing).toEqual([]);
    expect(partner.missing).toEqual([]);
    expect(acked.size).toBeGreaterThanOrEqual(TOTAL - CLIENTS);
    expect(staff.duplicates).toBeLessThanOrEqual(CONNECTIONS_PER_MAILBOX);
    expect(partner.duplicates).toBeLessThanOrEqual(CONNECTIONS_PER_MAILBOX);
    expect(
      [...staff.arrived.keys(), ...partner.arrived.keys()].every((id) => ids.includes(id)),
    ).toBe(true);

    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect(second.events.find((e) => e.event === 'stopped')?.queued).toBe(0);
  }, 120_000);

  it.each([
    [
      'an hve route without an account',
      { internalDomains: ['contoso.example'], account: undefined },
      /relay\.routes\.hve\.account is required: the address of the HVE account/,
    ],
    [
      'a bad internal domain',
      { internalDomains: ['contoso example'] },
      /relay\.routes\.hve\.internalDomains\[0\]: this entry is not a domain name/,
    ],
  ])('%s: exit 2 before listening, naming the key', async (_name, extra, message) => {
    const configDir = join(dir, `bad-${Math.random().toString(36).slice(2)}`);
    await mkdir(configDir);
    const configFile = await writeRelayConfig(configDir, PRINTER, { routes: hveRoute(extra) });
    const relay = spawnRelay(configFile, upstream.env);
    expect(await relay.exited).toBe(2);
    expect(relay.stderr()).toMatch(/RELAY_CONFIG_INVALID|relay configuration has 1 problem/);
    expect(relay.stderr()).toMatch(message);
    expect(relay.events.map((e) => e.event)).not.toContain('started');
  });
});
