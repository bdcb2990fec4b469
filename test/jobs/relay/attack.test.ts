/**
 * The relay attacked as a hostile client attacks a mail server, against the
 * real upstream (Postfix → Dovecot, read back over IMAP): SMTP smuggling with
 * every end-of-data look-alike, pipelined floods, an oversized message cut
 * off while it streams, open-relay tricks in the envelope sender, and many
 * slow-loris connections beside a legitimate sender. Each test names the
 * defence it stands for.
 */
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseRelaySettings } from '../../../src/jobs/relay/config.js';
import { type RelayHandle, startRelay } from '../../../src/jobs/relay/relay.js';
import { createJsonLogger } from '../../../src/log/json-logger.js';
import { openSmtp } from './smtp-dialog.js';
import { collectText, startUpstream, type Upstream } from './upstream.js';

const PRINTER = 'printer@contoso.example';
const RECIPIENT = 'attack@contoso.example';

let upstream: Upstream;
let dir: string;
const running: RelayHandle[] = [];

beforeAll(async () => {
  upstream = await startUpstream([PRINTER, RECIPIENT]);
  dir = await mkdtemp(join(tmpdir(), 'relay-attack-'));
}, 60_000);

afterEach(async () => {
  for (const relay of running.splice(0)) await relay.stop({ timeoutMs: 1000 });
});

afterAll(async () => {
  await upstream?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const logs = new Map<RelayHandle, () => string>();

/** The relay's JSON log lines so far. */
function logOf(relay: RelayHandle): Record<string, unknown>[] {
  return (logs.get(relay)?.() ?? '')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function startAttackRelay(section: Record<string, unknown> = {}): Promise<RelayHandle> {
  const log = collectText();
  const relay = await startRelay(upstream.config, {
    settings: parseRelaySettings({
      listen: ['127.0.0.1:0'],
      spool: await mkdtemp(join(dir, 'spool-')),
      allowNetworks: ['127.0.0.0/8'],
      policy: [{ network: '127.0.0.0/8', senders: [PRINTER] }],
      retryBackoff: { initial: '200ms', max: '1s' },
      rateLimitPerMinute: false,
      ...section,
    }),
    logger: createJsonLogger(log.stream),
    scanIntervalMs: 100,
  });
  running.push(relay);
  logs.set(relay, log.text);
  return relay;
}

const portOf = (relay: RelayHandle) => relay.listeners[0]?.port as number;

async function until(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Opens a raw connection, writes `text` in one write once the greeting came
 * (earlier is refused as early talking), and collects every reply line until
 * the server closes, or for 10 s at most.
 */
function rawSession(
  port: number,
  text: string | Buffer,
  options: { localAddress?: string } = {},
): Promise<{ lines: string[]; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect({ host: '127.0.0.1', port, ...options });
    let received = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      if (!received) socket.write(text);
      received += chunk;
    });
    socket.once('error', reject);
    const cut = setTimeout(() => socket.destroy(), 10_000);
    socket.once('close', () => {
      clearTimeout(cut);
      resolve({ lines: received.split('\r\n').filter(Boolean), ms: performance.now() - started });
    });
  });
}

async function deliveredIds(relay: RelayHandle): Promise<string[]> {
  const text = await readFile(join(relay.settings.spool, 'delivered.jsonl'), 'utf8').catch(
    () => '',
  );
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { messageId: string }).messageId);
}

describe('SMTP smuggling', () => {
  // Everything a receiver somewhere might take for the end of DATA, except the one that is.
  const ENDINGS: [string, string][] = [
    ['bare LF', '\n.\n'],
    ['bare CR', '\r.\r'],
    ['LF dot CRLF', '\n.\r\n'],
    ['CR dot LF', '\r.\n'],
    ['CRLF dot CR', '\r\n.\r'],
    ['CRLF dot LF', '\r\n.\n'],
    ['NUL before the dot', '\r\n\0.\r\n'],
    ['NUL after the dot', '\r\n.\0\r\n'],
  ];

  it('none of eight end-of-data look-alikes ends the message: no second message in the spool or upstream', async () => {
    const relay = await startAttackRelay();
    const stamp = Date.now();
    const outer = ENDINGS.map((_, i) => `<outer-${i}-${stamp}@printer.lan>`);
    const smuggled = ENDINGS.map((_, i) => `<smuggled-${i}-${stamp}@evil.example>`);
    for (const [i, [name, ending]] of ENDINGS.entries()) {
      const session = [
        'EHLO printer.lan',
        `MAIL FROM:<${PRINTER}>`,
        `RCPT TO:<${RECIPIENT}>`,
        'DATA',
        `Message-ID: ${outer[i]}\r\nSubject: ${name}\r\n\r\nfirst part${ending}MAIL FROM:<${PRINTER}>\r\nRCPT TO:<${RECIPIENT}>\r\nDATA\r\nMessage-ID: ${smuggled[i]}\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.`,
        'QUIT',
        '',
      ].join('\r\n');
      // One write, as an attacker pipelines it: the server sees the bytes exactly as sent.
      const { lines } = await rawSession(portOf(relay), Buffer.from(session, 'latin1'));
      const queued = lines.filter((l) => /^250 2\.0\.0 Ok: queued as /.test(l));
      expect(queued, `${name}: ${lines.join(' | ')}`).toHaveLength(1);
      expect(
        lines.filter((l) => l.startsWith('354')),
        name,
      ).toHaveLength(1);
      expect(lines.at(-1), name).toMatch(/^221 /);
    }
    expect(relay.metrics.accepted).toBe(ENDINGS.length);

    await until(async () => {
      const arrived = await upstream.messageIds(RECIPIENT);
      return outer.every((id) => arrived.has(id));
    }, 'the outer messages upstream');
    await until(() => relay.queueDepth() === 0, 'an empty queue');
    const arrived = await upstream.messageIds(RECIPIENT);
    expect(outer.map((id) => arrived.get(id))).toEqual(outer.map(() => 1));
    expect(smuggled.filter((id) => arrived.has(id))).toEqual([]);
    const recorded = await deliveredIds(relay);
    expect(recorded.sort()).toEqual([...outer].sort());
    // The would-be second message is body text of the first, as sent.
    const first = (await upstream.waitForMessage(RECIPIENT, outer[0] as string)).toString('latin1');
    expect(first).toContain(`Message-ID: ${smuggled[0]}`);
  }, 60_000);
});

describe('pipelined floods', () => {
  it('5 MB of NOOPs in one write from a client that reads nothing: cut after the session deadline, memory bounded, others unaffected', async () => {
    const relay = await startAttackRelay({ sessionTimeout: '2s' });
    const port = portOf(relay);
    const flood = Buffer.from('NOOP\r\n'.repeat(Math.ceil((5 * 1024 * 1024) / 6)), 'latin1');
    const rssBefore = process.memoryUsage().rss;
    let peakRss = rssBefore;
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
    }, 50);
    const started = performance.now();
    const socket = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.9' });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.once('data', () => {
          socket.write(flood);
          // Never read again: the replies back up towards the server.
          socket.pause();
          resolve();
        });
      });
      await new Promise((r) => setTimeout(r, 500));
      // A legitimate sender during the flood.
      const smtp = await openSmtp(port);
      const sendStarted = performance.now();
      await smtp.send('EHLO printer.lan');
      await smtp.send(`MAIL FROM:<${PRINTER}>`);
      await smtp.send(`RCPT TO:<${RECIPIENT}>`);
      const id = `<during-noop-${Date.now()}@printer.lan>`;
      expect(await smtp.data(`Message-ID: ${id}\r\n\r\nok\r\n`)).toMatch(/^250 /);
      const legitimateMs = performance.now() - sendStarted;
      smtp.close();
      // The paused client cannot see the close: the relay's own count says when it is gone.
      await until(() => relay.metrics.connections === 0, 'the flood connection cut', 12_000);
      const floodLasted = performance.now() - started;
      clearInterval(sampler);
      const figures = {
        floodBytes: flood.length,
        floodLastedMs: Math.round(floodLasted),
        legitimateMs: Math.round(legitimateMs),
        rssGrowthMb: Math.round((peakRss - rssBefore) / 1e6),
      };
      console.log(`relay NOOP flood figures: ${JSON.stringify(figures)}`);
      // relay.sessionTimeout, then smtp-server's 5 s for a closed connection to go.
      expect(floodLasted).toBeLessThan(2000 + 5000 + 2000);
      expect(legitimateMs).toBeLessThan(3000);
      expect(peakRss - rssBefore).toBeLessThan(64 * 1024 * 1024);
    } finally {
      clearInterval(sampler);
      socket.destroy();
    }
  }, 30_000);

  it('10,000 RCPTs in one write: maxRecipients taken, the rest refused with 452, the message carries no more', async () => {
    const relay = await startAttackRelay({ maxRecipients: 50 });
    const stamp = Date.now();
    const messageId = `<many-rcpt-${stamp}@printer.lan>`;
    const rcpts = Array.from({ length: 10_000 }, (_, i) =>
      i === 0 ? `RCPT TO:<${RECIPIENT}>` : `RCPT TO:<r${i}@fabrikam.example>`,
    );
    const session = [
      'EHLO printer.lan',
      `MAIL FROM:<${PRINTER}>`,
      ...rcpts,
      'DATA',
      `Message-ID: ${messageId}\r\nSubject: many\r\n\r\nbody\r\n.`,
      'QUIT',
      '',
    ].join('\r\n');
    const { lines, ms } = await rawSession(portOf(relay), session);
    expect(lines.filter((l) => l.startsWith('452 4.5.3 '))).toHaveLength(10_000 - 50);
    expect(lines.filter((l) => /^250 2\.0\.0 Ok: queued as /.test(l))).toHaveLength(1);
    expect(lines.at(-1)).toMatch(/^221 /);
    expect(ms).toBeLessThan(10_000);
    console.log(`relay 10,000 RCPT figures: ${JSON.stringify({ ms: Math.round(ms) })}`);
    const accepted = logOf(relay).filter((e) => e.event === 'accepted');
    expect(accepted).toEqual([expect.objectContaining({ messageId, recipients: 50 })]);
    // The spool envelope held those 50 and no more; the one upstream got it once.
    await upstream.waitForMessage(RECIPIENT, messageId);
    const records = (await readFile(join(relay.settings.spool, 'delivered.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { to: string[] });
    expect(records.flatMap((r) => r.to).length).toBeLessThanOrEqual(50);
  }, 30_000);
});

describe('an oversized message', () => {
  it('is cut off while it streams: the spool file never grows past the limit, 552 at the end, nothing kept', async () => {
    // Above the piece the spool holds in memory before writing (256 KiB), so the file is written.
    const limit = 1024 * 1024;
    const relay = await startAttackRelay({ maxMessageSize: limit });
    const tmp = join(relay.settings.spool, 'tmp');
    // A reception writes its message file straight into queue/ (uncommitted until its envelope joins it).
    const queue = join(relay.settings.spool, 'queue');
    const smtp = await openSmtp(portOf(relay));
    await smtp.send('EHLO printer.lan');
    await smtp.send(`MAIL FROM:<${PRINTER}>`);
    await smtp.send(`RCPT TO:<${RECIPIENT}>`);
    expect(await smtp.send('DATA')).toMatch(/^354/);
    const line = `${'x'.repeat(998)}\r\n`;
    const chunk = line.repeat(1024);
    smtp.write(`Subject: big\r\n\r\n`);
    // 8 MiB, without the final dot yet: the relay has read it all and must have kept no more than the limit.
    for (let i = 0; i < 8; i++) smtp.write(chunk);
    let largest = 0;
    const sizes = async () => {
      for (const folder of [tmp, queue]) {
        for (const name of await readdir(folder).catch(() => [] as string[])) {
          const size = await stat(join(folder, name)).then(
            (s) => s.size,
            () => 0,
          );
          largest = Math.max(largest, size);
        }
      }
    };
    const deadline = Date.now() + 2000;
    while (Date.now() < deadline) {
      await sizes();
      await new Promise((r) => setTimeout(r, 25));
    }
    const started = performance.now();
    const reply = smtp.next();
    smtp.write('.\r\n');
    expect(await reply).toBe(
      `552 5.3.4 Message size exceeds fixed maximum message size (${limit} bytes)`,
    );
    const replyMs = performance.now() - started;
    smtp.close();
    console.log(
      `relay oversized figures: ${JSON.stringify({ sentBytes: 8 * chunk.length, limit, largestSpoolFile: largest, replyMs: Math.round(replyMs) })}`,
    );
    expect(largest).toBeGreaterThan(0);
    // The limit counts the bytes received; the file has the Message-ID line the relay adds on top.
    expect(largest).toBeLessThanOrEqual(limit + 'Message-ID: <>\r\n'.length + 80);
    expect(await readdir(tmp)).toEqual([]);
    expect(await readdir(queue)).toEqual([]);
    expect(relay.queueDepth()).toBe(0);
  }, 30_000);
});

describe('open-relay tricks in the envelope sender', () => {
  it('source routes, % hacks, quoted local parts, address literals and odd senders never pass as the permitted sender', async () => {
    const relay = await startAttackRelay();
    const smtp = await openSmtp(portOf(relay));
    await smtp.send('EHLO printer.lan');
    // A source route is dropped (RFC 5321 4.1.1.3): the sender is then the permitted one, as sent.
    expect(await smtp.send(`MAIL FROM:<@evil.example:${PRINTER}>`)).toMatch(/^250 /);
    await smtp.send('RSET');
    const tricks = [
      `<@contoso.example,@evil.example:victim@fabrikam.example>`,
      `<victim%fabrikam.example@contoso.example>`,
      `<printer%contoso.example@evil.example>`,
      `<"${PRINTER}"@evil.example>`,
      `<"printer"@contoso.example>`,
      `<${PRINTER}@evil.example>`,
      '<printer@[127.0.0.1]>',
      '<printer@[IPv6:::1]>',
      '<>',
      '<postmaster>',
      `<${PRINTER.toUpperCase()}.>`,
      `${PRINTER} <victim@fabrikam.example>`,
    ];
    const replies: string[] = [];
    for (const trick of tricks) {
      const reply = await smtp.send(`MAIL FROM:${trick}`);
      replies.push(`${trick} -> ${reply}`);
      // Accepted or not, the transaction is reset for the next trick.
      await smtp.send('RSET');
    }
    expect(replies.filter((r) => / -> 250/.test(r))).toEqual([]);
    expect(replies.every((r) => / -> 5\d\d /.test(r))).toBe(true);
    // The permitted sender still passes, so the refusals are the policy's, not a broken session.
    expect(await smtp.send(`MAIL FROM:<${PRINTER}>`)).toMatch(/^250 /);
    smtp.close();
  });

  it('a domain rule takes only addresses of that one domain: a second @ or a quoted one is refused', async () => {
    const relay = await startAttackRelay({
      policy: [{ network: '127.0.0.0/8', senders: ['*@contoso.example'], mailbox: PRINTER }],
    });
    const smtp = await openSmtp(portOf(relay));
    await smtp.send('EHLO printer.lan');
    const refused = [
      '<"victim@fabrikam.example"@contoso.example>',
      '<victim@fabrikam.example@contoso.example>',
      '<@contoso.example:victim@fabrikam.example>',
      '<scanner@contoso.example.evil.example>',
      '<scanner@evilcontoso.example>',
      '<scanner@[192.0.2.1]>',
    ];
    for (const sender of refused) {
      expect(await smtp.send(`MAIL FROM:${sender}`), sender).toMatch(/^5\d\d /);
      await smtp.send('RSET');
    }
    // Kept within the policy: a % local part of the domain goes out as the policy's mailbox.
    expect(await smtp.send('MAIL FROM:<victim%fabrikam.example@contoso.example>')).toMatch(/^250 /);
    smtp.close();
  });
});

describe('slow-loris connections', () => {
  it('120 held connections from four addresses leave room for a legitimate sender, and end at the session deadline', async () => {
    const relay = await startAttackRelay({
      maxConnections: 100,
      maxConnectionsPerAddress: 20,
      sessionTimeout: '3s',
    });
    const port = portOf(relay);
    const attackers = ['127.0.0.10', '127.0.0.11', '127.0.0.12', '127.0.0.13'];
    const loris = await Promise.all(
      Array.from({ length: 120 }, (_, i) =>
        openSmtp(port, { localAddress: attackers[i % attackers.length] as string }),
      ),
    );
    const admitted = loris.filter((s) => s.greeting.startsWith('220'));
    const trickle = setInterval(() => {
      for (const s of admitted) s.write('N');
    }, 200);
    try {
      expect(admitted).toHaveLength(80);
      expect(loris.filter((s) => s.greeting.startsWith('421'))).toHaveLength(40);
      // The legitimate sender, from its own address, while they hang on.
      const times: number[] = [];
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const started = performance.now();
        const smtp = await openSmtp(port, { localAddress: '127.0.0.2' });
        expect(smtp.greeting).toMatch(/^220 /);
        await smtp.send('EHLO printer.lan');
        await smtp.send(`MAIL FROM:<${PRINTER}>`);
        await smtp.send(`RCPT TO:<${RECIPIENT}>`);
        const id = `<loris-${i}-${Date.now()}@printer.lan>`;
        ids.push(id);
        expect(await smtp.data(`Message-ID: ${id}\r\n\r\nscan\r\n`)).toMatch(/^250 /);
        smtp.close();
        times.push(performance.now() - started);
      }
      console.log(
        `relay slow-loris figures: ${JSON.stringify({ held: admitted.length, legitimateMs: times.map(Math.round) })}`,
      );
      expect(Math.max(...times)).toBeLessThan(1000);
      // relay.sessionTimeout ends every one of them, however busy they keep.
      const cutStarted = Date.now();
      await Promise.all(admitted.map((s) => s.closed));
      expect(Date.now() - cutStarted).toBeLessThan(5000);
      await until(() => relay.metrics.connections === 0, 'every connection closed', 5000);
      await until(async () => {
        const arrived = await upstream.messageIds(RECIPIENT);
        return ids.every((id) => arrived.has(id));
      }, 'the legitimate messages upstream');
    } finally {
      clearInterval(trickle);
      for (const s of loris) s.close();
    }
  }, 30_000);
});
