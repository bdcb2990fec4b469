/**
 * The spool's disk fills up while Exchange (here SMTP submission → Dovecot)
 * accepts messages: the delivery record cannot be written. Nothing may be
 * sent twice for that, however long the disk stays full, and everything is
 * delivered once by itself when space comes back. And a disk already full
 * when a message arrives: 451, nothing half-written, nothing lost. The spool
 * lives on a 1 MiB tmpfs mounted by the test (root only) and removed after it.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, open, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRelaySettings } from '../../../src/jobs/relay/config.js';
import { type RelayHandle, startRelay } from '../../../src/jobs/relay/relay.js';
import { createJsonLogger } from '../../../src/log/json-logger.js';
import {
  collectText,
  startProxy,
  startUpstream,
  type TcpProxy,
  type Upstream,
} from './upstream.js';

const run = promisify(execFile);
const PRINTER = 'printer@contoso.example';
const RECIPIENT = 'full-disk@contoso.example';
const MESSAGES = 9;
/** Longer than the 30 s the relay used to wait before sending a message again after a spool error. */
const FULL_FOR_MS = 36_000;
const isRoot = process.getuid?.() === 0;

let upstream: Upstream;
let dir: string;
let mountPoint: string;
let mounted = false;

beforeAll(async () => {
  if (!isRoot) return;
  upstream = await startUpstream([PRINTER, RECIPIENT], { submission: 'node' });
  dir = await mkdtemp(join(tmpdir(), 'relay-disk-full-'));
  mountPoint = join(dir, 'fs');
  await run('mkdir', [mountPoint]);
  await run('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', mountPoint]);
  mounted = true;
}, 60_000);

afterAll(async () => {
  if (mounted) await run('umount', [mountPoint]);
  await upstream?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Writes a file until the file system has no room left; returns its path. */
async function fillDisk(where: string): Promise<string> {
  const path = join(where, 'filler');
  const handle = await open(path, 'w');
  const page = Buffer.alloc(4096, 0x61);
  try {
    for (;;) await handle.write(page);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    await handle.close();
  }
  return path;
}

async function until(check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A relay on `spool` whose upstream is reached through `proxy`, and a sender for it. */
async function startRelayBehind(proxy: TcpProxy, spool: string, body = 'scan') {
  const log = collectText();
  const relay = await startRelay(
    { ...upstream.config, smtp: { host: '127.0.0.1', port: proxy.port } },
    {
      settings: parseRelaySettings({
        listen: ['127.0.0.1:0'],
        spool,
        allowNetworks: ['127.0.0.1/32'],
        policy: [{ network: '127.0.0.1/32', senders: [PRINTER] }],
        retryBackoff: { initial: '200ms', max: '1s' },
        rateLimitPerMinute: false,
      }),
      logger: createJsonLogger(log.stream),
      scanIntervalMs: 200,
    },
  );
  const send = (messageId: string) => {
    const client = nodemailer.createTransport({
      host: '127.0.0.1',
      port: relay.listeners[0]?.port,
      secure: false,
      ignoreTLS: true,
    });
    return client
      .sendMail({ from: PRINTER, to: RECIPIENT, subject: messageId, text: body, messageId })
      .finally(() => client.close());
  };
  const events = () =>
    log
      .text()
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { relay, send, events };
}

async function deliveredIds(spool: string): Promise<string[]> {
  return (await readFile(join(spool, 'delivered.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((line) => (JSON.parse(line) as { messageId: string }).messageId)
    .sort();
}

describe.skipIf(!isRoot)('a full disk under the spool', () => {
  it('never sends a message twice while the delivery record cannot be written, and resumes by itself', {
    tags: ['soak'],
    timeout: 120_000,
  }, async () => {
    const proxy: TcpProxy = await startProxy(upstream.servers.smtp);
    const spool = join(mountPoint, 'spool');
    let relay: RelayHandle | undefined;
    try {
      const started = await startRelayBehind(proxy, spool);
      relay = started.relay;
      const { send, events } = started;

      // Exchange unreachable: nine messages acknowledged and waiting.
      await proxy.down();
      const stamp = Date.now();
      const ids = Array.from({ length: MESSAGES }, (_, i) => `<full-${i}-${stamp}@printer.lan>`);
      for (const id of ids) expect((await send(id)).response).toMatch(/^250 /);

      // The disk fills up, then Exchange comes back.
      const filler = await fillDisk(mountPoint);
      await proxy.up();
      // The first message Exchange accepts has a delivery record the disk refuses.
      await until(async () => (await upstream.messageIds(RECIPIENT)).size > 0, 20_000);

      // While the record cannot be written: nothing more is accepted, nothing is sent twice.
      await expect(send(`<while-full-${stamp}@printer.lan>`)).rejects.toMatchObject({
        responseCode: 451,
      });
      await new Promise((r) => setTimeout(r, FULL_FOR_MS));
      const duringFull = await upstream.messageIds(RECIPIENT);
      const sentTwice = [...duringFull].filter(([, n]) => n > 1);
      expect(sentTwice).toEqual([]);
      const arrivedWhileFull = ids.filter((id) => duringFull.has(id)).length;
      // Only the deliveries already in flight when the first record failed went out.
      expect(arrivedWhileFull).toBeLessThanOrEqual(relay.settings.connectionsPerMailbox);
      expect(events().filter((e) => e.event === 'spool-blocked')).toHaveLength(1);

      // Space again: the held records are written, delivery and acceptance resume.
      await rm(filler);
      await until(() => events().some((e) => e.event === 'spool-resumed'), 10_000);
      const late = `<after-full-${stamp}@printer.lan>`;
      expect((await send(late)).response).toMatch(/^250 /);
      const all = [...ids, late];
      await until(async () => {
        const arrived = await upstream.messageIds(RECIPIENT);
        return all.every((id) => arrived.has(id));
      }, 30_000);
      await until(async () => (await readdir(join(spool, 'queue'))).length === 0, 10_000);
      await new Promise((r) => setTimeout(r, 2000));
      const arrived = await upstream.messageIds(RECIPIENT);
      expect(all.map((id) => arrived.get(id))).toEqual(all.map(() => 1));
      expect(await deliveredIds(spool)).toEqual([...all].sort());
      console.log(
        `relay disk-full figures: ${JSON.stringify({ messages: all.length, arrivedWhileFull, fullForMs: FULL_FOR_MS, copies: [...arrived.values()].reduce((a, b) => a + b, 0) })}`,
      );
    } finally {
      await relay?.stop({ timeoutMs: 2000 });
      await proxy.close();
    }
  });

  it('answers 451 to a message that arrives while the disk is full, keeps nothing half-written, and loses nothing', async () => {
    const proxy: TcpProxy = await startProxy(upstream.servers.smtp);
    const spool = join(mountPoint, 'spool-receive');
    let relay: RelayHandle | undefined;
    let filler: string | undefined;
    try {
      const started = await startRelayBehind(
        proxy,
        spool,
        'Scanned page, line of text.\r\n'.repeat(700),
      );
      relay = started.relay;
      const { send, events } = started;
      // Exchange unreachable: three messages acknowledged and waiting in the queue.
      await proxy.down();
      const stamp = Date.now();
      const before = [0, 1, 2].map((i) => `<before-full-${i}-${stamp}@printer.lan>`);
      for (const id of before) expect((await send(id)).response).toMatch(/^250 /);

      filler = await fillDisk(mountPoint);
      const refused = `<while-full-${stamp}@printer.lan>`;
      await expect(send(refused)).rejects.toMatchObject({
        responseCode: 451,
        response: '451 4.3.0 Could not store the message, try again later',
      });
      expect(await readdir(join(spool, 'tmp'))).toEqual([]);
      expect((await relay.spool.listQueue()).map((e) => e.messageId).sort()).toEqual(
        [...before].sort(),
      );
      expect(events().find((e) => e.event === 'spool-error')?.error).toMatch(/ENOSPC/);

      // Space again, Exchange back: the client sends the refused one again.
      await rm(filler);
      filler = undefined;
      await proxy.up();
      expect((await send(refused)).response).toMatch(/^250 /);
      const all = [...before, refused];
      await until(async () => {
        const arrived = await upstream.messageIds(RECIPIENT);
        return all.every((id) => arrived.has(id));
      }, 30_000);
      await until(() => relay?.queueDepth() === 0, 10_000);
      const arrived = await upstream.messageIds(RECIPIENT);
      expect(all.map((id) => arrived.get(id))).toEqual(all.map(() => 1));
      expect(await deliveredIds(spool)).toEqual([...all].sort());
    } finally {
      if (filler) await rm(filler);
      await relay?.stop({ timeoutMs: 2000 });
      await proxy.close();
    }
  }, 60_000);
});
