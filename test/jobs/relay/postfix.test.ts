/**
 * A real legacy client (Debian's swaks) sends through the relay, which
 * submits over SMTP with XOAUTH2 to the local Postfix; what arrives is read
 * back over IMAP from Dovecot. Also: refusals as swaks sees them, a
 * permanent 5xx from upstream ending in dead/, and an upstream that is
 * unavailable for a while.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../../src/jobs/listener/password.js';
import { parseRelaySettings } from '../../../src/jobs/relay/config.js';
import { type RelayHandle, startRelay } from '../../../src/jobs/relay/relay.js';
import { createJsonLogger } from '../../../src/log/json-logger.js';
import { issueServerCertificate } from '../../helpers/pki.js';
import { loadTestCa } from '../../helpers/test-ca.js';
import {
  collectText,
  startProxy,
  startUpstream,
  type TcpProxy,
  type Upstream,
} from './upstream.js';

const SENDER = 'scans@contoso.example';
const PRINTER = 'printer@contoso.example';
const OTHER = 'someone-else@contoso.example';
const RECIPIENT = 'archive@contoso.example';
const PASSWORD = 'Sc4nner pass';

let upstream: Upstream;
let dir: string;
let relay: RelayHandle;
const output = collectText();
const logText = () => output.text();

interface SwaksResult {
  code: number;
  output: string;
}

function swaks(args: string[]): Promise<SwaksResult> {
  return new Promise((resolve) => {
    execFile(
      'swaks',
      ['--server', `127.0.0.1:${relay.listeners[0]?.port}`, ...args],
      (error, stdout, stderr) => {
        resolve({
          code: error ? ((error as { code?: number }).code ?? 1) : 0,
          output: stdout + stderr,
        });
      },
    );
  });
}

beforeAll(async () => {
  upstream = await startUpstream([SENDER, PRINTER, RECIPIENT]);
  dir = await mkdtemp(join(tmpdir(), 'relay-postfix-'));
  const tls = issueServerCertificate(loadTestCa());
  await writeFile(join(dir, 'cert.pem'), tls.certificatePem);
  await writeFile(join(dir, 'key.pem'), tls.keys.privateKeyPem, { mode: 0o600 });
  await writeFile(join(dir, 'users'), `scanner:${await hashPassword(PASSWORD)}\n`);
  const settings = parseRelaySettings(
    {
      listen: ['127.0.0.1:0'],
      spool: 'spool',
      tls: { cert: 'cert.pem', key: 'key.pem' },
      users: 'users',
      allowNetworks: ['127.0.0.1/32'],
      policy: [
        { user: 'scanner', senders: [SENDER, OTHER], mailbox: SENDER },
        { network: '127.0.0.1/32', senders: [PRINTER] },
      ],
      retryBackoff: { initial: '200ms', max: '1s' },
      hostname: 'relay.test',
    },
    { baseDir: dir },
  );
  relay = await startRelay(upstream.config, {
    settings,
    logger: createJsonLogger(output.stream),
    scanIntervalMs: 200,
  });
}, 60_000);

afterAll(async () => {
  await relay?.stop({ timeoutMs: 2000 });
  await upstream?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('swaks through the relay to Postfix (XOAUTH2), read back over IMAP', () => {
  it('AUTH LOGIN over STARTTLS: body and a binary attachment intact, Message-ID kept', async () => {
    const attachment = Buffer.alloc(40 * 1024);
    for (let i = 0; i < attachment.length; i++) attachment[i] = (i * 37 + 11) % 256;
    await writeFile(join(dir, 'scan.pdf'), attachment);
    const messageId = `<swaks-login-${Date.now()}@scanner.lan>`;
    const { code, output } = await swaks([
      '--tls',
      '--auth',
      'LOGIN',
      '--auth-user',
      'scanner',
      '--auth-password',
      PASSWORD,
      '--from',
      SENDER,
      '--to',
      RECIPIENT,
      '--header',
      `Message-Id: ${messageId}`,
      '--header',
      'Subject: Scan from 2F',
      '--body',
      'Scanned document attached.\nLine two, with a dot:\n.\nend',
      '--attach-type',
      'application/pdf',
      '--attach',
      `@${join(dir, 'scan.pdf')}`,
    ]);
    expect(output).toContain('=== TLS started with cipher');
    expect(output).toContain('235 Authentication successful');
    expect(output).toMatch(/<~ {1,2}250 2\.0\.0 Ok: queued as [0-9a-z]{19}/);
    expect(code).toBe(0);

    const raw = await upstream.waitForMessage(RECIPIENT, messageId);
    const parsed = await simpleParser(raw);
    expect(parsed.messageId).toBe(messageId);
    expect(parsed.subject).toBe('Scan from 2F');
    expect(parsed.text?.replace(/\r\n/g, '\n').trim()).toBe(
      'Scanned document attached.\nLine two, with a dot:\n.\nend',
    );
    expect(parsed.attachments).toHaveLength(1);
    expect(parsed.attachments[0]?.contentType).toBe('application/pdf');
    expect(parsed.attachments[0]?.filename).toBe('scan.pdf');
    expect(Buffer.compare(parsed.attachments[0]?.content ?? Buffer.alloc(0), attachment)).toBe(0);
  });

  it('AUTH PLAIN without TLS on loopback', async () => {
    const messageId = `<swaks-plain-${Date.now()}@app.lan>`;
    const { code, output } = await swaks([
      '--auth',
      'PLAIN',
      '--auth-user',
      'scanner',
      '--auth-password',
      PASSWORD,
      '--from',
      SENDER,
      '--to',
      RECIPIENT,
      '--header',
      `Message-Id: ${messageId}`,
      '--header',
      'Subject: plain',
      '--body',
      'Überweisung bestätigt\n',
    ]);
    expect(code, output).toBe(0);
    const parsed = await simpleParser(await upstream.waitForMessage(RECIPIENT, messageId));
    expect(parsed.messageId).toBe(messageId);
    expect(parsed.subject).toBe('plain');
  });

  it('no AUTH from an allowed network, sending as itself', async () => {
    const messageId = `<swaks-noauth-${Date.now()}@printer.lan>`;
    const { code, output } = await swaks([
      '--from',
      PRINTER,
      '--to',
      RECIPIENT,
      '--header',
      `Message-Id: ${messageId}`,
      '--header',
      'Subject: printer status',
      '--body',
      'Toner low.\n',
    ]);
    expect(code, output).toBe(0);
    const parsed = await simpleParser(await upstream.waitForMessage(RECIPIENT, messageId));
    expect(parsed.text?.trim()).toBe('Toner low.');
    const delivered = logText()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.event === 'delivered' && l.messageId === messageId);
    expect(delivered).toMatchObject({ mailbox: PRINTER, attempts: 1, recipients: 1 });
  });
});

describe('refusals, as swaks sees them', () => {
  it('a wrong password', async () => {
    const { code, output } = await swaks([
      '--auth',
      'LOGIN',
      '--auth-user',
      'scanner',
      '--auth-password',
      'wrong',
      '--from',
      SENDER,
      '--to',
      RECIPIENT,
    ]);
    expect(code).not.toBe(0);
    expect(output).toContain('535 5.7.8 Authentication credentials invalid');
    expect(output).not.toContain('250 2.0.0 Ok: queued');
  });

  it('an unauthenticated client from an address outside allowNetworks', async () => {
    const { code, output } = await swaks([
      '--local-interface',
      '127.0.0.2',
      '--from',
      PRINTER,
      '--to',
      RECIPIENT,
    ]);
    expect(code).not.toBe(0);
    expect(output).toContain('530 5.7.0 Authentication required');
  });

  it('a sender outside the policy', async () => {
    const { code, output } = await swaks([
      '--auth',
      'PLAIN',
      '--auth-user',
      'scanner',
      '--auth-password',
      PASSWORD,
      '--from',
      'ceo@contoso.example',
      '--to',
      RECIPIENT,
    ]);
    expect(code).not.toBe(0);
    expect(output).toContain(
      '550 5.7.1 Sender <ceo@contoso.example> is not permitted for user scanner by the relay policy',
    );
  });
});

describe('upstream failures', () => {
  it('a permanent 5xx from upstream goes to dead/ with the reason', async () => {
    const messageId = `<swaks-553-${Date.now()}@scanner.lan>`;
    // The policy lets scanner use OTHER, but the mailbox may not send as it: Postfix says 553.
    const { code, output } = await swaks([
      '--auth',
      'PLAIN',
      '--auth-user',
      'scanner',
      '--auth-password',
      PASSWORD,
      '--from',
      OTHER,
      '--to',
      RECIPIENT,
      '--header',
      `Message-Id: ${messageId}`,
    ]);
    expect(code, output).toBe(0);
    const deadline = Date.now() + 15_000;
    let dead = await relay.spool.listDead();
    while (!dead.some((e) => e.messageId === messageId) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      dead = await relay.spool.listDead();
    }
    const entry = dead.find((e) => e.messageId === messageId);
    expect(entry).toBeDefined();
    const reason = await readFile(relay.spool.deadPath(entry?.id as string, 'reason.txt'), 'utf8');
    // Postfix refuses the sender at RCPT TO (smtpd_delay_reject), so the reason names the recipient.
    expect(reason).toMatch(
      /Reason: +permanent failure <archive@contoso\.example>: SMTP_PERMANENT_FAILURE: 553 5\.7\.1 <someone-else@contoso\.example>: Sender address rejected: not owned by user scans@contoso\.example/,
    );
    expect(logText()).toMatch(
      /"event":"dead".*"code":"SMTP_PERMANENT_FAILURE".*"responseCode":553/,
    );
  });

  it('an upstream unavailable for a while gets everything once it returns', async () => {
    const proxy: TcpProxy = await startProxy(upstream.servers.smtp);
    const spool = join(dir, 'spool-outage');
    const outage = collectText();
    const second = await startRelay(
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
        logger: createJsonLogger(outage.stream),
      },
    );
    try {
      await proxy.down();
      const client = nodemailer.createTransport({
        host: '127.0.0.1',
        port: second.listeners[0]?.port,
        secure: false,
        ignoreTLS: true,
      });
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) {
        const messageId = `<outage-${i}-${Date.now()}@printer.lan>`;
        ids.push(messageId);
        const info = await client.sendMail({
          from: PRINTER,
          to: RECIPIENT,
          subject: `outage ${i}`,
          text: `message ${i}`,
          messageId,
        });
        expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as/);
      }
      client.close();
      await new Promise((r) => setTimeout(r, 1500));
      expect(second.queueDepth()).toBe(20);
      expect(outage.text()).toMatch(/"event":"deferred".*"code":"SMTP_UNREACHABLE"/);
      await proxy.up();
      const deadline = Date.now() + 20_000;
      while (second.queueDepth() > 0 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      expect(second.queueDepth()).toBe(0);
      const arrived = await upstream.messageIds(RECIPIENT);
      const wait = Date.now() + 10_000;
      let missing = ids.filter((id) => !arrived.has(id));
      while (missing.length > 0 && Date.now() < wait) {
        await new Promise((r) => setTimeout(r, 250));
        const now = await upstream.messageIds(RECIPIENT);
        missing = ids.filter((id) => !now.has(id));
      }
      expect(missing).toEqual([]);
      const deferred = outage
        .text()
        .split('\n')
        .filter((l) => l.includes('"event":"deferred"')).length;
      // One probe per pause while it was down, not one attempt per message per round.
      expect(deferred).toBeLessThan(20);
    } finally {
      await second.stop({ timeoutMs: 2000 });
      await proxy.close();
    }
  });
});

describe('logs', () => {
  it('hold one JSON line per event, and no password, token or message content', () => {
    const text = logText();
    const lines = text.trim().split('\n');
    const events = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.filter((e) => e.event === 'accepted').length).toBeGreaterThanOrEqual(4);
    expect(events.filter((e) => e.event === 'delivered').length).toBeGreaterThanOrEqual(3);
    for (const e of events.filter((x) => x.event === 'accepted')) {
      expect(Object.keys(e)).toEqual(
        expect.arrayContaining([
          'time',
          'id',
          'messageId',
          'from',
          'recipients',
          'mailbox',
          'size',
        ]),
      );
    }
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/);
    expect(text).not.toContain('Scanned document attached');
    expect(text).not.toContain('Toner low');
  });
});
