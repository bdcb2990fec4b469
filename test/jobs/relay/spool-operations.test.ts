/**
 * The spool as an operator meets it: start-up recovery of an unreadable
 * envelope (quarantine, shown by `relay status`), `relay status` printing what
 * devices sent without letting it drive the terminal, a client that hangs up
 * mid-DATA, and the spool lock between whole relay processes (two started at
 * once, a restart right after SIGKILL, a lock file naming a live pid).
 * `relay status` runs through the CLI's entry in this process: what it reads
 * is on disk, and the relay processes are the child processes here.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import type { MailbridgeConfig } from '../../../src/config/types.js';
import { parseRelaySettings } from '../../../src/jobs/relay/config.js';
import type { DeliveryTransport } from '../../../src/jobs/relay/delivery.js';
import { type RelayHandle, startRelay } from '../../../src/jobs/relay/relay.js';
import { Spool, type SpoolEnvelope } from '../../../src/jobs/relay/spool.js';
import { createJsonLogger } from '../../../src/log/json-logger.js';
import { runCliInProcess } from '../../helpers/run-cli-in-process.js';
import { killRelayChildren, spawnRelay, writeRelayConfig } from './relay-process.js';
import { collectText } from './upstream.js';

const APP_ENV = {
  AZURE_TENANT_ID: 'contoso.onmicrosoft.com',
  AZURE_CLIENT_ID: '11111111-2222-3333-4444-555555555555',
  AZURE_CLIENT_SECRET: 'not-used-here',
};
const PRINTER = 'printer@contoso.com';
const POLICY = [{ network: '127.0.0.1/32', senders: [PRINTER], mailbox: PRINTER }];

let dir: string;
let config: MailbridgeConfig;
const running: RelayHandle[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'relay-spool-ops-'));
  config = await loadConfig({ env: APP_ENV });
});
afterEach(async () => {
  for (const relay of running.splice(0)) await relay.stop({ timeoutMs: 1000 });
  killRelayChildren();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** An upstream that answers every message with a temporary failure: everything stays queued. */
const deferring = (): DeliveryTransport => ({
  async sendMail() {
    throw Object.assign(new Error('451 4.3.0 try later'), {
      code: 'EMESSAGE',
      responseCode: 451,
      response: '451 4.3.0 try later',
      command: 'DATA',
    });
  },
  close() {},
});

async function start(spool: string, logger = collectText()): Promise<RelayHandle> {
  const relay = await startRelay(config, {
    settings: parseRelaySettings({
      spool,
      listen: ['127.0.0.1:0'],
      allowNetworks: ['127.0.0.1/32'],
      policy: POLICY,
      retryBackoff: { initial: '1m', max: '1m' },
    }),
    transportFor: deferring,
    tokenProvider: {
      scope: 'x',
      getToken: async () => ({ accessToken: 'unused', expiresOn: new Date() }),
    },
    logger: createJsonLogger(logger.stream),
    scanIntervalMs: 100,
  });
  running.push(relay);
  return relay;
}

async function spoolMessage(
  spool: Spool,
  message: string,
  to = ['archive@contoso.com'],
): Promise<SpoolEnvelope> {
  const result = await spool.receive(Readable.from([Buffer.from(message, 'latin1')]), {
    from: PRINTER,
    to,
    mailbox: PRINTER,
    client: { address: '127.0.0.1' },
    maxBytes: 1024 * 1024,
  });
  if (!result.ok) throw new Error('refused');
  return result.envelope;
}

describe('an envelope truncated on disk', () => {
  it('is quarantined at start-up and shown by relay status, instead of vanishing', async () => {
    const path = join(dir, 'spool-truncated');
    const spool = new Spool(path);
    await spool.init();
    const queued: SpoolEnvelope[] = [];
    for (let i = 0; i < 5; i++) {
      queued.push(
        await spoolMessage(spool, `Message-ID: <t${i}@printer.lan>\r\n\r\nscan ${i}\r\n`),
      );
    }
    const bad = queued[2] as SpoolEnvelope;
    await truncate(spool.queuePath(bad.id, 'json'), 40);

    const relay = await start(path);
    expect(relay.recovery).toMatchObject({ queued: 4, quarantined: 1 });
    expect(relay.queueDepth()).toBe(4);

    const human = await runCliInProcess(['relay', 'status', '--spool', path], {});
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`relay running (pid ${process.pid})`);
    expect(human.stdout).toMatch(/Queue: 4 message\(s\)/);
    expect(human.stdout).toContain('Quarantine: 1 message(s), envelope unreadable');
    expect(human.stdout).toContain(`${bad.id}  `);
    expect(human.stdout).toContain(join(path, 'quarantine', `${bad.id}.eml`));
    expect(human.stdout).toMatch(/cannot be read \(not JSON \(40 bytes\)\)/);
    const json = JSON.parse(
      (await runCliInProcess(['relay', 'status', '--spool', path, '--json'], {})).stdout,
    );
    expect(json).toMatchObject({ running: true, pid: process.pid, quarantine: [{ id: bad.id }] });
    expect(await readFile(join(path, 'quarantine', `${bad.id}.eml`), 'latin1')).toContain('scan 2');
  });
});

describe('relay status', () => {
  it('shows Message-IDs, replies and reasons from outside as visible escapes, never as terminal control', async () => {
    const path = join(dir, 'spool-escapes');
    const spool = new Spool(path);
    await spool.init();
    const hostile = '<\x1b]0;owned\x07\x1b[2Jscan@x>';
    const queued = await spoolMessage(spool, `Message-ID: ${hostile}\r\n\r\nx\r\n`);
    expect(queued.messageId).toBe(hostile);
    await spool.updateEnvelope({
      ...queued,
      attempts: 1,
      lastError: {
        code: 'SMTP_TEMPORARY',
        reply: '451 \x1b[31mred\u202e\x1b[0m',
        at: queued.since,
      },
    });
    const dead = await spoolMessage(spool, `Message-ID: ${hostile}\r\n\r\ny\r\n`);
    await spool.moveToDead(dead, 'permanent failure 550 \x1b]0;title\x07');

    const status = await runCliInProcess(['relay', 'status', '--spool', path], {});
    expect(status.code).toBe(0);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: asserting their absence.
    expect(status.stdout).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f\u202e]/);
    const shown = '<\\x1b]0;owned\\x07\\x1b[2Jscan@x>';
    expect(status.stdout.split(shown)).toHaveLength(3);
    expect(status.stdout).toContain('last: SMTP_TEMPORARY: 451 \\x1b[31mred\\u202e\\x1b[0m');
    expect(status.stdout).toContain('permanent failure 550 \\x1b]0;title\\x07');
  });
});

describe('a client that disconnects during DATA', () => {
  it('is logged and counted as a disconnect, not as a spool failure', async () => {
    const log = collectText();
    const relay = await start(join(dir, 'spool-hangup'), log);
    const socket = connect(relay.listeners[0]?.port as number, '127.0.0.1');
    let received = '';
    socket.setEncoding('latin1').on('data', (chunk: string) => {
      received += chunk;
    });
    const until = async (pattern: RegExp) => {
      const deadline = Date.now() + 5000;
      while (!pattern.test(received) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(received).toMatch(pattern);
    };
    await until(/^220 /m);
    socket.write(`EHLO x\r\nMAIL FROM:<${PRINTER}>\r\nRCPT TO:<a@contoso.com>\r\nDATA\r\n`);
    await until(/^354 /m);
    socket.write('Subject: half a scan\r\n\r\nfirst part of the pages');
    await new Promise((r) => setTimeout(r, 100));
    socket.destroy();

    const deadline = Date.now() + 5000;
    while (!log.text().includes('"reason":"disconnected"') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(log.text()).toMatch(/"event":"refused".*"reason":"disconnected"/);
    expect(log.text()).not.toContain('spool write failed');
    const metrics = relay.metrics.render();
    expect(metrics).toContain('mailbridge_relay_refused_total{reason="disconnected"} 1');
    expect(metrics).toContain('mailbridge_relay_refused_total{reason="spool"} 0');
  });
});

describe('the spool lock between relay processes', { tags: ['soak'] }, () => {
  it('two relays started at once on one spool: exactly one runs, the other names it; a restart right after SIGKILL runs, and an immediate SIGTERM stops it gracefully', async () => {
    const home = join(dir, 'two-relays');
    await mkdir(home);
    const configFile = await writeRelayConfig(home, PRINTER);
    await mkdir(join(home, 'spool'));
    // A lock file naming a process that is alive (pid 1) but holds no lock blocks nothing.
    await writeFile(join(home, 'spool', 'lock'), '1\n');
    for (let trial = 0; trial < 3; trial++) {
      const pair = [spawnRelay(configFile, APP_ENV), spawnRelay(configFile, APP_ENV)];
      const outcomes = await Promise.all(
        pair.map((relay) =>
          Promise.race([
            relay.waitFor('started', 60_000).then(() => 'runs' as const),
            relay.exited.then((code) => code),
          ]),
        ),
      );
      expect(
        outcomes.filter((o) => o === 'runs'),
        pair.map((r) => r.stderr()).join('\n'),
      ).toHaveLength(1);
      const winner = pair[outcomes.indexOf('runs')];
      const loser = pair[outcomes.findIndex((o) => o !== 'runs')];
      expect(outcomes.find((o) => o !== 'runs')).toBe(2);
      expect(loser?.stderr()).toContain('RELAY_SPOOL_LOCKED');
      expect(loser?.stderr()).toContain(`in use by process ${winner?.child.pid}`);
      expect(loser?.stderr()).toContain(`kill -TERM ${winner?.child.pid}`);

      // The winner dies without cleaning up; the next start must not wait for anything.
      winner?.child.kill('SIGKILL');
      await winner?.exited;
      const next = spawnRelay(configFile, APP_ENV);
      await next.waitFor('started', 60_000);
      // SIGTERM the moment it says `started`: a graceful stop (exit 0), not death by the signal.
      next.child.kill('SIGTERM');
      expect(await next.exited).toBe(0);
      expect(next.events.map((e) => e.event)).toContain('stopped');
    }
  }, 180_000);
});

describe('a partial delivery while the spool cannot be written', () => {
  it('never sends again to the recipients Exchange accepted', { timeout: 60_000 }, async () => {
    const sent: string[][] = [];
    const transport: DeliveryTransport = {
      async sendMail(message) {
        const to = [...(message.envelope as { to: string[] }).to];
        sent.push(to);
        // a@ is accepted, b@ deferred, every time.
        return {
          accepted: to.filter((r) => r.startsWith('a@')),
          rejected: to.filter((r) => r.startsWith('b@')),
          rejectedErrors: to
            .filter((r) => r.startsWith('b@'))
            .map((recipient) =>
              Object.assign(new Error('450 4.2.1 try later'), {
                recipient,
                code: 'EENVELOPE',
                responseCode: 450,
                response: '450 4.2.1 try later',
                command: 'RCPT TO',
              }),
            ),
          response: '250 2.0.0 queued',
        };
      },
      close() {},
    };
    const path = join(dir, 'spool-partial');
    const relay = await startRelay(config, {
      settings: parseRelaySettings({
        spool: path,
        listen: ['127.0.0.1:0'],
        allowNetworks: ['127.0.0.1/32'],
        policy: POLICY,
        retryBackoff: { initial: '100ms', max: '100ms' },
      }),
      transportFor: () => transport,
      tokenProvider: {
        scope: 'x',
        getToken: async () => ({ accessToken: 'unused', expiresOn: new Date() }),
      },
      scanIntervalMs: 100,
    });
    running.push(relay);
    // Neither the delivery record nor an envelope update can be written (as on a full disk).
    await mkdir(join(path, 'delivered.jsonl'));
    const queued = await spoolMessage(relay.spool, 'Message-ID: <partial@x>\r\n\r\nx\r\n', [
      'a@contoso.com',
      'b@contoso.com',
    ]);
    await rm(join(path, 'tmp'), { recursive: true });
    await writeFile(join(path, 'tmp'), '');
    expect(await relay.spool.release(queued.id)).toBe('kicked');
    const deadline = Date.now() + 5000;
    while (!relay.spool.deliveryBlocked && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(relay.spool.deliveryBlocked).toBe(true);
    expect(sent).toEqual([['a@contoso.com', 'b@contoso.com']]);

    // Space again; the relay tries the message again after its first spool-error pause
    // (about a second: it used to be a fixed 30 s).
    await rm(join(path, 'tmp'));
    await mkdir(join(path, 'tmp'));
    await rm(join(path, 'delivered.jsonl'), { recursive: true });
    const spaceAgain = Date.now();
    const again = spaceAgain + 10_000;
    while (sent.length < 2 && Date.now() < again) await new Promise((r) => setTimeout(r, 100));
    expect(sent[1]).toEqual(['b@contoso.com']);
    expect(Date.now() - spaceAgain).toBeLessThan(10_000);
    expect(sent.filter((to) => to.includes('a@contoso.com'))).toHaveLength(1);
  });
});

describe('relay retry racing a delivery', () => {
  it('sends once, and the .kick left on the delivered message is cleared by the next scan', async () => {
    const path = join(dir, 'spool-kick-race');
    let relay: RelayHandle | undefined;
    const sent: string[] = [];
    const transport: DeliveryTransport = {
      async sendMail(message) {
        const id = String(message.messageId ?? sent.length);
        sent.push(id);
        // `mailbridge relay retry` run while the message is with the upstream.
        const [queued] = await (relay as RelayHandle).spool.listQueue();
        expect(await (relay as RelayHandle).spool.release(queued?.id ?? '')).toBe('kicked');
        return { accepted: ['a@contoso.com'], rejected: [], response: '250 2.0.0 queued' };
      },
      close() {},
    };
    relay = await startRelay(config, {
      settings: parseRelaySettings({
        spool: path,
        listen: ['127.0.0.1:0'],
        allowNetworks: ['127.0.0.1/32'],
        policy: POLICY,
      }),
      transportFor: () => transport,
      tokenProvider: {
        scope: 'x',
        getToken: async () => ({ accessToken: 'unused', expiresOn: new Date() }),
      },
      scanIntervalMs: 50,
    });
    running.push(relay);
    const queued = await spoolMessage(relay.spool, 'Message-ID: <kick@x>\r\n\r\nx\r\n');
    // Spooled behind the relay's back: a first `relay retry` hands it to the worker.
    expect(await relay.spool.release(queued.id)).toBe('kicked');
    const deadline = Date.now() + 5000;
    let left = await readdir(join(path, 'queue'));
    while ((sent.length === 0 || left.length > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      left = await readdir(join(path, 'queue'));
    }
    expect(sent).toHaveLength(1);
    expect(left).toEqual([]);
    const records = await relay.spool.readDeliveryRecords(new Set([queued.id]));
    expect(records.get(queued.id)?.complete).toBe(true);
    await new Promise((r) => setTimeout(r, 200));
    expect(sent).toHaveLength(1);
  });
});
