/**
 * The relay end to end on its SMTP side, with a scripted upstream in place of
 * Exchange: refusals (network, password, policy, size, recipients, open
 * relay), spooling and delivery records, retries, dead letters, bounces,
 * status endpoints, graceful stop, and the status/retry commands. The real
 * Postfix upstream is in postfix.test.ts.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import nodemailer from 'nodemailer';
import type Mail from 'nodemailer/lib/mailer/index.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { COMMON_FLAGS, parseCommandArgs } from '../../../src/cli/args.js';
import type { Command, CommandContext } from '../../../src/cli/command.js';
import {
  relayCommand,
  relayHashPasswordCommand,
  relayRetryCommand,
  relayStatusCommand,
} from '../../../src/cli/commands/relay.js';
import { reportError } from '../../../src/cli/output.js';
import { loadConfig } from '../../../src/config/load.js';
import type { MailbridgeConfig } from '../../../src/config/types.js';
import { ConfigurationError } from '../../../src/errors.js';
import {
  hashPassword,
  parsePasswordHash,
  verifyPassword,
} from '../../../src/jobs/listener/password.js';
import { parseRelaySettings } from '../../../src/jobs/relay/config.js';
import type { DeliveryTransport } from '../../../src/jobs/relay/delivery.js';
import { type RelayHandle, startRelay } from '../../../src/jobs/relay/relay.js';
import { authOffered } from '../../../src/jobs/relay/server.js';
import { createJsonLogger } from '../../../src/log/json-logger.js';
import type { LogFields, Logger, LogLevel } from '../../../src/log/logger.js';
import { issueServerCertificate } from '../../helpers/pki.js';
import { loadTestCa } from '../../helpers/test-ca.js';
import { openSmtp } from './smtp-dialog.js';

const SCANNER_PASSWORD = 'Scan-2-Mail!';

let dir: string;
let config: MailbridgeConfig;
let usersFile: string;
const running: RelayHandle[] = [];

interface Sent {
  mailbox: string;
  from: string;
  to: string[];
  raw: Buffer;
  /** Where the relay took the bytes from: memory (just accepted) or its spool file. */
  source: 'memory' | 'file';
}

type Behaviour = (
  message: Sent,
  attempt: number,
) => Promise<Awaited<ReturnType<DeliveryTransport['sendMail']>>>;

/** An upstream that records what it gets and answers as the test scripts it. */
function upstream(behaviour?: Behaviour) {
  const sent: Sent[] = [];
  /** Every attempt, refused ones included. */
  const tried: Sent[] = [];
  const attempts = new Map<string, number>();
  let script: Behaviour =
    behaviour ?? (async (m) => ({ accepted: m.to, rejected: [], response: '250 2.0.0 OK queued' }));
  return {
    sent,
    tried,
    set(next: Behaviour) {
      script = next;
    },
    transportFor(mailbox: string): DeliveryTransport {
      return {
        async sendMail(message: Mail.Options) {
          const envelope = message.envelope as { from: string; to: string[] };
          // A message just accepted comes from memory, a retried one from its spool file.
          const raw = Buffer.isBuffer(message.raw)
            ? message.raw
            : await readFile((message.raw as { path: string }).path);
          const source = Buffer.isBuffer(message.raw) ? ('memory' as const) : ('file' as const);
          const record = { mailbox, from: envelope.from, to: [...envelope.to], raw, source };
          const key = raw.toString('latin1').slice(0, 200);
          const n = (attempts.get(key) ?? 0) + 1;
          attempts.set(key, n);
          tried.push(record);
          const info = await script(record, n);
          sent.push(record);
          return info;
        },
        close() {},
      };
    },
  };
}

function smtpFailure(code: string, responseCode: number, response: string, extra = {}) {
  return Object.assign(new Error(response), {
    code,
    responseCode,
    response,
    command: 'DATA',
    ...extra,
  });
}

function captureLogger(): Logger & { lines: Record<string, unknown>[]; text(): string } {
  let text = '';
  const stream = new PassThrough();
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    text += chunk;
  });
  const inner = createJsonLogger(stream, { level: 'debug' });
  return {
    log(level: LogLevel, message: string, fields?: LogFields) {
      inner.log(level, message, fields);
    },
    get lines() {
      return text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    text: () => text,
  };
}

async function startTestRelay(
  section: Record<string, unknown>,
  options: { transportFor?: (mailbox: string) => DeliveryTransport; logger?: Logger } = {},
): Promise<RelayHandle> {
  const spool = await mkdtemp(join(dir, 'spool-'));
  const settings = parseRelaySettings(
    {
      spool,
      listen: ['127.0.0.1:0'],
      hostname: 'relay.test',
      retryBackoff: { initial: '50ms', max: '200ms' },
      authPenalty: { initial: '50ms', max: '200ms' },
      ...section,
    },
    {},
  );
  const relay = await startRelay(config, {
    settings,
    transportFor: options.transportFor ?? upstream().transportFor,
    scanIntervalMs: 100,
    tokenProvider: {
      scope: 'x',
      getToken: async () => ({ accessToken: 'unused', expiresOn: new Date() }),
    },
    ...(options.logger ? { logger: options.logger } : {}),
  });
  running.push(relay);
  return relay;
}

const portOf = (relay: RelayHandle) => relay.listeners[0]?.port as number;

async function waitFor<T>(probe: () => T | Promise<T>, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const NETWORK_POLICY = [
  { network: '127.0.0.1/32', senders: ['printer@contoso.com'], mailbox: 'printer@contoso.com' },
];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'relay-test-'));
  config = await loadConfig({
    env: {
      AZURE_TENANT_ID: 'contoso.onmicrosoft.com',
      AZURE_CLIENT_ID: '11111111-2222-3333-4444-555555555555',
      AZURE_CLIENT_SECRET: 'not-used-here',
    },
  });
  usersFile = join(dir, 'users');
  await writeFile(
    usersFile,
    `scanner:${await hashPassword(SCANNER_PASSWORD, { ln: 10, r: 8, p: 1 })}\n`,
  );
});

afterEach(async () => {
  for (const relay of running.splice(0)) await relay.stop({ timeoutMs: 1000 });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('accepting', () => {
  it('spools, answers 250 with the spool id, delivers as the policy mailbox, keeps the bytes', async () => {
    const up = upstream();
    const logger = captureLogger();
    const relay = await startTestRelay(
      { allowNetworks: ['127.0.0.1/32'], policy: NETWORK_POLICY },
      { transportFor: up.transportFor, logger },
    );
    const smtp = await openSmtp(portOf(relay));
    expect(smtp.greeting).toMatch(/^220 relay\.test ESMTP mailbridge relay$/);
    expect(await smtp.send('EHLO printer.lan')).toMatch(/250[- ]SIZE 36700160/);
    expect(await smtp.send('MAIL FROM:<printer@contoso.com>')).toMatch(/^250/);
    expect(await smtp.send('RCPT TO:<archive@contoso.com>')).toMatch(/^250/);
    const message =
      'Message-ID: <scan-42@printer.lan>\r\nSubject: scan\r\n\r\n.leading dot\r\nbody\r\n';
    const reply = await smtp.data(message);
    expect(reply).toMatch(/^250 2\.0\.0 Ok: queued as [0-9a-z]{19}$/);
    const id = reply.split(' ').at(-1) as string;
    smtp.close();

    await waitFor(() => up.sent.length === 1, 'delivery');
    expect(up.sent[0]).toMatchObject({
      mailbox: 'printer@contoso.com',
      from: 'printer@contoso.com',
      to: ['archive@contoso.com'],
    });
    expect(up.sent[0]?.raw.toString('latin1')).toBe(message);
    await waitFor(() => relay.queueDepth() === 0, 'queue drained');
    const record = JSON.parse(
      (await readFile(join(relay.settings.spool, 'delivered.jsonl'), 'utf8')).trim(),
    );
    expect(record).toMatchObject({ id, messageId: '<scan-42@printer.lan>', complete: true });

    const accepted = logger.lines.find((l) => l.event === 'accepted');
    const delivered = logger.lines.find((l) => l.event === 'delivered');
    expect(accepted).toMatchObject({
      id,
      messageId: '<scan-42@printer.lan>',
      size: message.length,
      recipients: 1,
    });
    expect(delivered).toMatchObject({ id, mailbox: 'printer@contoso.com', attempts: 1 });
    expect(typeof delivered?.latencyMs).toBe('number');
    expect(logger.text()).not.toContain('leading dot');
    expect(relay.metrics.render()).toMatch(/^mailbridge_relay_delivered_total 1$/m);
  });

  it('accepts AUTH PLAIN and LOGIN on loopback and refuses a wrong password with 535', async () => {
    const relay = await startTestRelay({
      users: usersFile,
      policy: [{ user: 'scanner', senders: ['scans@contoso.com'] }],
    });
    const plain = Buffer.from(`\0scanner\0${SCANNER_PASSWORD}`).toString('base64');
    const a = await openSmtp(portOf(relay));
    expect(await a.send('EHLO x')).toMatch(/AUTH PLAIN LOGIN/);
    expect(await a.send(`AUTH PLAIN ${plain}`)).toBe('235 Authentication successful');
    expect(await a.send('MAIL FROM:<scans@contoso.com>')).toMatch(/^250/);
    a.close();

    const b = await openSmtp(portOf(relay));
    await b.send('EHLO x');
    expect(await b.send('AUTH LOGIN')).toMatch(/^334/);
    expect(await b.send(Buffer.from('scanner').toString('base64'))).toMatch(/^334/);
    expect(await b.send(Buffer.from('wrong').toString('base64'))).toBe(
      '535 5.7.8 Authentication credentials invalid',
    );
    expect(await b.send('MAIL FROM:<scans@contoso.com>')).toBe('530 5.7.0 Authentication required');
    const bad = Buffer.from('\0scanner\0nope').toString('base64');
    expect(await b.send(`AUTH PLAIN ${bad}`)).toMatch(/^535/);
    expect(await b.send(`AUTH PLAIN ${bad}`)).toBe(
      '421 4.7.0 Too many authentication failures, closing connection',
    );
    await b.closed;
    expect(relay.metrics.render()).toMatch(/mailbridge_relay_refused_total\{reason="auth"\} 3/);
  });

  it('refuses an unauthenticated client from an address outside allowNetworks', async () => {
    // With accounts: it may connect but must authenticate before MAIL FROM.
    const withUsers = await startTestRelay({
      users: usersFile,
      allowNetworks: ['127.0.0.1/32'],
      policy: [...NETWORK_POLICY, { user: 'scanner', senders: ['scans@contoso.com'] }],
    });
    const a = await openSmtp(portOf(withUsers), { localAddress: '127.0.0.2' });
    await a.send('EHLO x');
    expect(await a.send('MAIL FROM:<printer@contoso.com>')).toBe(
      '530 5.7.0 Authentication required',
    );
    a.close();
    // Without accounts: refused at once.
    const networkOnly = await startTestRelay({
      allowNetworks: ['127.0.0.1/32'],
      policy: NETWORK_POLICY,
    });
    const b = await openSmtp(portOf(networkOnly), { localAddress: '127.0.0.2' });
    expect(b.greeting).toBe('554 5.7.1 Access denied: 127.0.0.2 may not use this relay');
    await b.closed;
  });

  it('refuses a sender outside the policy at MAIL FROM with 550 5.7.1 and the reason', async () => {
    const relay = await startTestRelay({ allowNetworks: ['127.0.0.1/32'], policy: NETWORK_POLICY });
    const smtp = await openSmtp(portOf(relay));
    await smtp.send('EHLO x');
    expect(await smtp.send('MAIL FROM:<ceo@contoso.com>')).toBe(
      '550 5.7.1 Sender <ceo@contoso.com> is not permitted for clients from 127.0.0.1 by the relay policy',
    );
    smtp.close();
  });

  it('refuses an oversized message: declared with SIZE, and sent anyway', async () => {
    const up = upstream();
    const relay = await startTestRelay(
      { allowNetworks: ['127.0.0.1/32'], policy: NETWORK_POLICY, maxMessageSize: 1000 },
      { transportFor: up.transportFor },
    );
    const smtp = await openSmtp(portOf(relay));
    await smtp.send('EHLO x');
    expect(await smtp.send('MAIL FROM:<printer@contoso.com> SIZE=5000')).toMatch(/^552 /);
    expect(await smtp.send('MAIL FROM:<printer@contoso.com>')).toMatch(/^250/);
    await smtp.send('RCPT TO:<a@contoso.com>');
    expect(await smtp.data(`Subject: big\r\n\r\n${'x'.repeat(3000)}\r\n`)).toBe(
      '552 5.3.4 Message size exceeds fixed maximum message size (1000 bytes)',
    );
    // The session goes on: a small one is accepted.
    await smtp.send('MAIL FROM:<printer@contoso.com>');
    await smtp.send('RCPT TO:<a@contoso.com>');
    expect(await smtp.data('Subject: small\r\n\r\nok\r\n')).toMatch(/^250/);
    smtp.close();
    await waitFor(() => up.sent.length === 1, 'the small message');
    expect(await relay.spool.listDead()).toEqual([]);
  });

  it('refuses recipients beyond maxRecipients with 452 4.5.3', async () => {
    const relay = await startTestRelay({
      allowNetworks: ['127.0.0.1/32'],
      policy: NETWORK_POLICY,
      maxRecipients: 2,
    });
    const smtp = await openSmtp(portOf(relay));
    await smtp.send('EHLO x');
    await smtp.send('MAIL FROM:<printer@contoso.com>');
    expect(await smtp.send('RCPT TO:<a@x.com>')).toMatch(/^250/);
    expect(await smtp.send('RCPT TO:<b@x.com>')).toMatch(/^250/);
    expect(await smtp.send('RCPT TO:<c@x.com>')).toMatch(/^452 4\.5\.3 Too many recipients/);
    smtp.close();
  });

  it('offers AUTH only after STARTTLS on a listener beyond loopback, so no client sends its password in clear', async () => {
    const tls = issueServerCertificate(loadTestCa());
    await writeFile(join(dir, 'cert.pem'), tls.certificatePem);
    await writeFile(join(dir, 'key.pem'), tls.keys.privateKeyPem);
    const logger = captureLogger();
    const up = upstream();
    const relay = await startTestRelay(
      {
        // 0.0.0.0 is beyond loopback (isLoopbackAddress of the listener's host), though the test connects over 127.0.0.1.
        listen: ['0.0.0.0:0'],
        tls: { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') },
        users: usersFile,
        policy: [{ user: 'scanner', senders: ['scans@contoso.com'] }],
      },
      { logger, transportFor: up.transportFor },
    );
    const smtp = await openSmtp(portOf(relay));
    const ehlo = await smtp.send('EHLO x');
    expect(ehlo).toMatch(/250-STARTTLS/);
    expect(ehlo).not.toMatch(/AUTH/);
    // A client that sends AUTH anyway is not heard: no password check runs.
    const plain = Buffer.from(`\0scanner\0${SCANNER_PASSWORD}`).toString('base64');
    expect(await smtp.send(`AUTH PLAIN ${plain}`)).toMatch(/^5\d\d /);
    smtp.close();
    expect(logger.lines.filter((l) => String(l.event).startsWith('auth'))).toEqual([]);

    // swaks, a real legacy client, asked to authenticate without TLS: it sees no AUTH and gives up before sending it.
    const clear = await runProgram('swaks', [
      ...['--server', `127.0.0.1:${portOf(relay)}`, '--auth', 'PLAIN'],
      ...['--auth-user', 'scanner', '--auth-password', SCANNER_PASSWORD],
      ...['--from', 'scans@contoso.com', '--to', 'archive@contoso.com'],
    ]);
    expect(clear.code).not.toBe(0);
    expect(clear.output).toContain('Host did not advertise authentication');
    expect(clear.output).not.toMatch(/~> AUTH/);
    // With STARTTLS, AUTH is offered and the message goes through.
    const secured = await runProgram('swaks', [
      ...['--server', `127.0.0.1:${portOf(relay)}`, '--tls', '--auth', 'PLAIN'],
      ...['--auth-user', 'scanner', '--auth-password', SCANNER_PASSWORD],
      ...['--from', 'scans@contoso.com', '--to', 'archive@contoso.com'],
    ]);
    expect(secured.output).toMatch(/<~ {1,2}250-AUTH PLAIN LOGIN/);
    expect(secured.output).toMatch(/<~ {1,2}235 /);
    expect(secured.code).toBe(0);
    await waitFor(() => up.sent.length === 1, 'delivery');

    const listener = { host: '0.0.0.0', port: 25, implicitTls: false, text: '0.0.0.0:25' };
    expect(authOffered(listener, { users: '/u', allowPlaintextAuth: false })).toBe(false);
    expect(authOffered(listener, { users: '/u', allowPlaintextAuth: true })).toBe(true);
    expect(
      authOffered(listener, {
        users: '/u',
        tls: { cert: 'c', key: 'k' },
        allowPlaintextAuth: false,
      }),
    ).toBe(true);
    expect(
      authOffered({ ...listener, host: '127.0.0.1' }, { users: '/u', allowPlaintextAuth: false }),
    ).toBe(true);
  });

  it('speaks implicit TLS on an smtps:// listener', async () => {
    const tls = issueServerCertificate(loadTestCa());
    await writeFile(join(dir, 'cert2.pem'), tls.certificatePem);
    await writeFile(join(dir, 'key2.pem'), tls.keys.privateKeyPem);
    const up = upstream();
    const relay = await startTestRelay(
      {
        listen: ['smtps://127.0.0.1:0'],
        tls: { cert: join(dir, 'cert2.pem'), key: join(dir, 'key2.pem') },
        users: usersFile,
        policy: [{ user: 'scanner', senders: ['scans@contoso.com'] }],
      },
      { transportFor: up.transportFor },
    );
    expect(relay.listeners[0]?.implicitTls).toBe(true);
    // Verified against the test CA (NODE_EXTRA_CA_CERTS), as a device with the CA installed would.
    const client = nodemailer.createTransport({
      host: '127.0.0.1',
      port: portOf(relay),
      secure: true,
      auth: { user: 'scanner', pass: SCANNER_PASSWORD },
    });
    const info = await client.sendMail({
      from: 'scans@contoso.com',
      to: 'archive@contoso.com',
      subject: 'over TLS',
      text: 'x',
    });
    client.close();
    expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as/);
    await waitFor(() => up.sent.length === 1, 'delivery');
  });

  it('refuses to start as an open relay', async () => {
    const spool = join(dir, 'never');
    // Through the config section, as the CLI does it.
    const viaSection = await startRelay(
      {
        ...config,
        sections: {
          relay: {
            spool,
            listen: ['0.0.0.0:2525'],
            policy: [{ user: 'scanner', senders: ['*'] }],
            users: usersFile,
          },
        },
      },
      {},
    ).catch((e: unknown) => e);
    expect(viaSection).toBeInstanceOf(ConfigurationError);
    expect((viaSection as ConfigurationError).problems).toContainEqual({
      field: 'relay.listen',
      message:
        "Refusing to listen on 0.0.0.0:2525 (beyond loopback) as an open relay: set relay.allowNetworks to the devices' networks, or relay.tls so that clients must authenticate over TLS.",
    });
  });
});

describe('limits and hostile input', () => {
  it('refuses an 8-bit address unless MAIL FROM announced SMTPUTF8', async () => {
    const relay = await startTestRelay({
      allowNetworks: ['127.0.0.1/32'],
      policy: [
        { network: '127.0.0.1/32', senders: ['*@contoso.test'], mailbox: 'printer@contoso.test' },
      ],
    });
    const smtp = await openSmtp(portOf(relay));
    expect(await smtp.send('EHLO x')).toMatch(/250-SMTPUTF8/);
    expect(await smtp.send('MAIL FROM:<árchive@contoso.test>')).toBe(
      '553 5.6.7 Non-ASCII address <?rchive@contoso.test> needs SMTPUTF8: send MAIL FROM with the SMTPUTF8 parameter',
    );
    expect(await smtp.send('MAIL FROM:<printer@contoso.test>')).toMatch(/^250/);
    expect(await smtp.send('RCPT TO:<árchive@contoso.test>')).toMatch(/^553 5\.6\.7 /);
    await smtp.send('RSET');
    expect(await smtp.send('MAIL FROM:<printer@contoso.test> SMTPUTF8')).toMatch(/^250/);
    expect(await smtp.send('RCPT TO:<árchive@contoso.test>')).toMatch(/^250/);
    smtp.close();
    expect(relay.metrics.render()).toMatch(/refused_total\{reason="smtputf8"\} 2$/m);
  });

  it('logs a failed user name only when it is an account, else as a keyed hash', async () => {
    const logger = captureLogger();
    const relay = await startTestRelay(
      { users: usersFile, policy: [{ user: 'scanner', senders: ['scans@contoso.com'] }] },
      { logger },
    );
    const smtp = await openSmtp(portOf(relay));
    await smtp.send('EHLO x');
    // A password typed into the user field.
    const typo = Buffer.from('\0Winter-2026!\0Winter-2026!').toString('base64');
    expect(await smtp.send(`AUTH PLAIN ${typo}`)).toMatch(/^535/);
    const wrong = Buffer.from('\0scanner\0nope').toString('base64');
    expect(await smtp.send(`AUTH PLAIN ${wrong}`)).toMatch(/^535/);
    smtp.close();
    const failed = logger.lines.filter((l) => l.event === 'auth-failed');
    expect(failed.map((l) => l.user)).toEqual([
      expect.stringMatching(/^unknown:[0-9a-f]{12}$/),
      'scanner',
    ]);
    expect(logger.text()).not.toContain('Winter');
  });

  it('refuses AUTH unchecked, with 421 and a log line, from an address whose next slot is beyond the penalty', async () => {
    const logger = captureLogger();
    const relay = await startTestRelay(
      {
        users: usersFile,
        policy: [{ user: 'scanner', senders: ['scans@contoso.com'] }],
        authPenalty: { initial: '1s', max: '1s' },
      },
      { logger },
    );
    const open = async () => {
      const smtp = await openSmtp(portOf(relay));
      await smtp.send('EHLO bot');
      return smtp;
    };
    const bad = Buffer.from('\0scanner\0nope').toString('base64');
    const [a, b, c] = [await open(), await open(), await open()];
    expect(await a.send(`AUTH PLAIN ${bad}`)).toMatch(/^535/);
    // b waits its 1 s slot; c would have to wait 2 s, more than the maximum of 1 s.
    const waited = b.send(`AUTH PLAIN ${bad}`);
    expect(await c.send(`AUTH PLAIN ${bad}`)).toBe(
      '421 4.7.0 Too many failed logins from your address, try again later',
    );
    expect(await waited).toMatch(/^535/);
    for (const smtp of [a, b, c]) smtp.close();
    expect(logger.lines.find((l) => l.reason === 'auth_throttled')).toMatchObject({
      event: 'refused',
      client: '127.0.0.1',
      user: 'scanner',
    });
    expect(relay.metrics.render()).toMatch(/refused_total\{reason="auth_throttled"\} 1$/m);
    expect(relay.metrics.refused.get('auth')).toBe(2);
  });

  it('refuses connections beyond the per-address and the total limit with 421, a log line and a metric', async () => {
    const logger = captureLogger();
    const relay = await startTestRelay(
      {
        allowNetworks: ['127.0.0.0/8'],
        policy: NETWORK_POLICY,
        maxConnections: 3,
        maxConnectionsPerAddress: 2,
      },
      { logger },
    );
    const port = portOf(relay);
    const a1 = await openSmtp(port);
    const a2 = await openSmtp(port);
    const a3 = await openSmtp(port);
    expect(a3.greeting).toBe('421 4.7.0 Too many connections from 127.0.0.1, try again later');
    await a3.closed;
    const b1 = await openSmtp(port, { localAddress: '127.0.0.2' });
    expect(b1.greeting).toMatch(/^220 /);
    const c1 = await openSmtp(port, { localAddress: '127.0.0.3' });
    expect(c1.greeting).toBe('421 4.3.2 Too many connections, try again later');
    await c1.closed;
    expect(logger.lines.filter((l) => l.event === 'refused')).toEqual([
      expect.objectContaining({ reason: 'connections_per_address', client: '127.0.0.1', limit: 2 }),
      expect.objectContaining({ reason: 'connections', client: '127.0.0.3', limit: 3 }),
    ]);
    const metrics = relay.metrics.render();
    expect(metrics).toMatch(/refused_total\{reason="connections_per_address"\} 1$/m);
    expect(metrics).toMatch(/refused_total\{reason="connections"\} 1$/m);
    expect(metrics).toMatch(/^mailbridge_relay_connections 3$/m);
    // A closed connection frees its place.
    a1.close();
    await waitFor(() => relay.metrics.connections === 2, 'the place freed');
    const a4 = await openSmtp(port);
    expect(a4.greeting).toMatch(/^220 /);
    for (const c of [a2, b1, a4]) c.close();
  });

  it('cuts a slow sender at the session deadline', async () => {
    const logger = captureLogger();
    const relay = await startTestRelay(
      { allowNetworks: ['127.0.0.1/32'], policy: NETWORK_POLICY, sessionTimeout: '600ms' },
      { logger },
    );
    const smtp = await openSmtp(portOf(relay));
    const started = Date.now();
    await smtp.send('EHLO x');
    await smtp.send('MAIL FROM:<printer@contoso.com>');
    await smtp.send('RCPT TO:<a@contoso.com>');
    const go = await smtp.send('DATA');
    expect(go).toMatch(/^354/);
    // One byte every 100 ms: never idle long enough for the idle timeout.
    let cut = '';
    const reply = smtp.next().then((r) => {
      cut = r;
    });
    const trickle = setInterval(() => smtp.write('x'), 100);
    await smtp.closed;
    clearInterval(trickle);
    await reply;
    const lasted = Date.now() - started;
    expect(cut).toBe('421 4.4.2 relay.test Session time limit exceeded, closing connection');
    expect(lasted).toBeGreaterThanOrEqual(550);
    expect(lasted).toBeLessThan(2000);
    expect(logger.lines.find((l) => l.reason === 'session_timeout')).toMatchObject({
      event: 'refused',
      client: '127.0.0.1',
      limit: 600,
    });
    expect(relay.metrics.render()).toMatch(/refused_total\{reason="session_timeout"\} 1$/m);
    await waitFor(() => relay.metrics.connections === 0, 'the session closed');
    expect(await relay.spool.listQueue()).toEqual([]);
  });
});

describe('under an AUTH flood', () => {
  it('keeps DATA and a legitimate AUTH fast while 24 connections guess passwords, and penalises the guessers', async () => {
    // Hashes at the real cost (scrypt ln=15), as `relay hash-password` makes them.
    const realUsers = join(dir, 'users-real-cost');
    await writeFile(realUsers, `scanner:${await hashPassword(SCANNER_PASSWORD)}\n`);
    const up = upstream();
    const relay = await startTestRelay(
      {
        users: realUsers,
        allowNetworks: ['127.0.0.1/32'],
        policy: [...NETWORK_POLICY, { user: 'scanner', senders: ['scans@contoso.com'] }],
        authPenalty: { initial: '1s', max: '15s' },
      },
      { transportFor: up.transportFor },
    );
    const port = portOf(relay);
    const login = async (localAddress: string) => {
      const smtp = await openSmtp(port, { localAddress });
      await smtp.send('EHLO device');
      const plain = Buffer.from(`\0scanner\0${SCANNER_PASSWORD}`).toString('base64');
      const started = performance.now();
      const reply = await smtp.send(`AUTH PLAIN ${plain}`);
      const ms = performance.now() - started;
      smtp.close();
      return { reply, ms };
    };
    // The device signs in from its usual address before the flood; that time is one scrypt here.
    const quiet = await login('127.0.0.2');
    expect(quiet.reply).toMatch(/^235/);

    const floodMs = 3000;
    const until = Date.now() + floodMs;
    const over = new Promise<'over'>((r) => setTimeout(() => r('over'), floodMs));
    let guesses = 0;
    const attacker = async (localAddress: string) => {
      while (Date.now() < until) {
        const smtp = await openSmtp(port, { localAddress }).catch(() => undefined);
        if (!smtp) continue;
        await smtp.send('EHLO bot');
        while (Date.now() < until) {
          const guess = Buffer.from(`\0scanner\0guess-${guesses++}`).toString('base64');
          const reply = await Promise.race([smtp.send(`AUTH PLAIN ${guess}`), smtp.closed, over]);
          if (typeof reply !== 'string' || !reply.startsWith('535')) break;
        }
        smtp.close();
      }
    };
    // 24 connections, 3 from each of 8 addresses.
    const flood = Array.from({ length: 24 }, (_, i) => attacker(`127.0.0.${10 + (i % 8)}`));
    await new Promise((r) => setTimeout(r, 500));

    const dataMs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const smtp = await openSmtp(port);
      await smtp.send('EHLO printer');
      await smtp.send('MAIL FROM:<printer@contoso.com>');
      await smtp.send('RCPT TO:<archive@contoso.com>');
      const started = performance.now();
      expect(await smtp.data(`Message-ID: <flood-${i}@x>\r\n\r\n${i}\r\n`)).toMatch(/^250/);
      dataMs.push(performance.now() - started);
      smtp.close();
    }
    const known = await login('127.0.0.2');
    // The same user from an address it never used: delayed by scanner's penalty, not locked out.
    const fresh = await login('127.0.0.3');
    await Promise.all(flood);

    expect(Math.max(...dataMs)).toBeLessThan(500);
    expect(known.reply).toMatch(/^235/);
    // Its own check on the place kept for trusted logins, never a queue of guesses; on a loaded
    // test machine one scrypt check alone takes up to a second (0.05-0.1 s when quiet).
    expect(known.ms).toBeLessThan(Math.max(1000, 2 * quiet.ms + 500));
    expect(fresh.reply).toMatch(/^235/);
    // relay.authPenalty.max, then at most the check in progress ahead of its own.
    expect(fresh.ms).toBeLessThan(15_000 + 2 * quiet.ms + 1000);
    // One check at a time and 1, 2, 4 … s between an address's guesses: a few per address.
    expect(relay.metrics.refused.get('auth') ?? 0).toBeLessThanOrEqual(8 * 4);
  }, 40_000);
});

describe('delivering', () => {
  it('retries a temporary failure with backoff and then delivers', async () => {
    const up = upstream(async (m, attempt) => {
      if (attempt < 3) throw smtpFailure('EMESSAGE', 451, '451 4.3.0 Try again later');
      return { accepted: m.to, rejected: [], response: '250 OK' };
    });
    const logger = captureLogger();
    const relay = await startTestRelay(
      { allowNetworks: ['127.0.0.1/32'], policy: NETWORK_POLICY },
      { transportFor: up.transportFor, logger },
    );
    await sendOne(portOf(relay), 'Message-ID: <retry@x>\r\n\r\nr\r\n');
    await waitFor(
      () => logger.lines.some((l) => l.event === 'delivered'),
      'delivery after retries',
    );
    const deferred = logger.lines.filter((l) => l.event === 'deferred');
    expect(deferred).toHaveLength(2);
    expect(deferred[0]).toMatchObject({
      code: 'SMTP_TEMPORARY_FAILURE',
      responseCode: 451,
      attempts: 1,
    });
    expect(relay.metrics.deferred).toBe(2);
    // The first attempt sends the bytes the server just spooled, without reading the file back;
    // a retry reads the file.
    expect(up.tried.map((m) => m.source)).toEqual(['memory', 'file', 'file']);
    expect(new Set(up.tried.map((m) => m.raw.toString('latin1'))).size).toBe(1);
  });

  it('moves a permanent failure to dead/ with the reply beside it, and bounces it when asked', async () => {
    const up = upstream(async (m) => {
      if (m.to.includes('printer@contoso.com'))
        return { accepted: m.to, rejected: [], response: '250 OK' };
      throw smtpFailure(
        'EENVELOPE',
        550,
        '550 5.7.60 SMTP; Client does not have permissions to send as this sender',
        {
          command: 'MAIL FROM',
        },
      );
    });
    const logger = captureLogger();
    const relay = await startTestRelay(
      { allowNetworks: ['127.0.0.1/32'], policy: NETWORK_POLICY, bounce: true },
      { transportFor: up.transportFor, logger },
    );
    const id = await sendOne(
      portOf(relay),
      'Message-ID: <perm@x>\r\nSubject: report\r\n\r\nsecret body\r\n',
    );
    await waitFor(() => logger.lines.some((l) => l.event === 'bounce'), 'bounce queued');
    const dead = await relay.spool.listDead();
    expect(dead.map((e) => e.id)).toEqual([id]);
    const reason = await readFile(relay.spool.deadPath(id, 'reason.txt'), 'utf8');
    expect(reason).toContain(
      '550 5.7.60 SMTP; Client does not have permissions to send as this sender',
    );
    expect(reason).toContain('SMTP_SEND_AS_NOT_PERMITTED');
    expect(logger.lines.find((l) => l.event === 'dead')).toMatchObject({
      id,
      code: 'SMTP_SEND_AS_NOT_PERMITTED',
      responseCode: 550,
    });
    // The bounce goes to the original sender, from the mailbox, with the headers but not the body.
    await waitFor(() => up.sent.some((s) => s.to[0] === 'printer@contoso.com'), 'bounce sent');
    const bounce = up.sent.find((s) => s.to[0] === 'printer@contoso.com') as Sent;
    const text = bounce.raw.toString('latin1');
    expect(text).toMatch(/^Auto-Submitted: auto-replied$/m);
    expect(text).toMatch(/^Status: 5\.7\.60$/m);
    expect(text).toContain('Message-ID: <perm@x>');
    expect(text).not.toContain('secret body');
    expect(relay.metrics.render()).toMatch(/^mailbridge_relay_failed_total 1$/m);
  });

  it('delivers to the recipients Exchange accepts and keeps the deferred ones', async () => {
    let round = 0;
    const up = upstream(async (m) => {
      round++;
      if (round === 1) {
        return {
          accepted: ['a@x.com'],
          rejected: ['b@x.com', 'c@x.com'],
          rejectedErrors: [
            Object.assign(smtpFailure('EENVELOPE', 452, '452 4.2.2 Mailbox full'), {
              recipient: 'b@x.com',
            }),
            Object.assign(smtpFailure('EENVELOPE', 550, '550 5.1.1 User unknown'), {
              recipient: 'c@x.com',
            }),
          ],
          response: '250 OK',
        };
      }
      return { accepted: m.to, rejected: [], response: '250 OK' };
    });
    const relay = await startTestRelay(
      { allowNetworks: ['127.0.0.1/32'], policy: NETWORK_POLICY },
      { transportFor: up.transportFor },
    );
    const id = await sendOne(portOf(relay), 'Message-ID: <partial@x>\r\n\r\np\r\n', [
      'a@x.com',
      'b@x.com',
      'c@x.com',
    ]);
    await waitFor(() => up.sent.length === 2 && relay.queueDepth() === 0, 'second round');
    expect(up.sent[1]?.to).toEqual(['b@x.com']);
    const dead = await relay.spool.listDead();
    expect(dead).toMatchObject([{ id: `${id}-1`, to: ['c@x.com'] }]);
    const records = (await readFile(join(relay.settings.spool, 'delivered.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(records.map((r) => [r.to, r.complete])).toEqual([
      [['a@x.com'], false],
      [['b@x.com'], true],
    ]);
  });

  it('waits out an unreachable upstream with one probe at a time, then sends everything', async () => {
    let down = true;
    let attemptsWhileDown = 0;
    const up = upstream(async (m) => {
      if (down) {
        attemptsWhileDown++;
        throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), {
          code: 'ECONNECTION',
          command: 'CONN',
        });
      }
      return { accepted: m.to, rejected: [], response: '250 OK' };
    });
    const relay = await startTestRelay(
      {
        allowNetworks: ['127.0.0.1/32'],
        policy: NETWORK_POLICY,
        retryBackoff: { initial: '300ms', max: '400ms' },
      },
      { transportFor: up.transportFor },
    );
    for (let i = 0; i < 10; i++)
      await sendOne(portOf(relay), `Message-ID: <down-${i}@x>\r\n\r\n${i}\r\n`);
    await new Promise((r) => setTimeout(r, 600));
    // 10 messages, but a paused mailbox is probed by one delivery at a time.
    expect(attemptsWhileDown).toBeLessThanOrEqual(6);
    expect(relay.queueDepth()).toBe(10);
    down = false;
    await waitFor(() => relay.queueDepth() === 0, 'queue drained after recovery', 3000);
    expect(up.sent.length).toBe(10);
  });

  it('stops gracefully: in-flight deliveries finish, the rest stays spooled', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const up = upstream(async (m) => {
      await gate;
      return { accepted: m.to, rejected: [], response: '250 OK' };
    });
    const relay = await startTestRelay(
      { allowNetworks: ['127.0.0.1/32'], policy: NETWORK_POLICY, connectionsPerMailbox: 1 },
      { transportFor: up.transportFor },
    );
    await sendOne(portOf(relay), 'Message-ID: <g1@x>\r\n\r\n1\r\n');
    await sendOne(portOf(relay), 'Message-ID: <g2@x>\r\n\r\n2\r\n');
    const stopped = relay.stop({ timeoutMs: 2000 });
    setTimeout(release, 100);
    expect(await stopped).toEqual({ unfinished: 0 });
    running.splice(running.indexOf(relay), 1);
    expect(up.sent).toHaveLength(1);
    const left = await relay.spool.listQueue();
    expect(left.map((e) => e.messageId)).toEqual(['<g2@x>']);
    await expect(openSmtp(portOf(relay))).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('operations', () => {
  it('serves /healthz and Prometheus /metrics on loopback', async () => {
    const relay = await startTestRelay({
      allowNetworks: ['127.0.0.1/32'],
      policy: NETWORK_POLICY,
      http: '127.0.0.1:0',
    });
    await sendOne(portOf(relay), 'Message-ID: <m@x>\r\n\r\nm\r\n');
    await waitFor(() => relay.metrics.delivered === 1, 'delivery');
    const base = `http://127.0.0.1:${relay.http?.port}`;
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({
      status: 'ok',
      accepting: true,
      queueDepth: 0,
      inFlight: 0,
      credential: { status: 'ok' },
    });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    for (const line of [
      'mailbridge_relay_queue_depth 0',
      'mailbridge_relay_accepted_total 1',
      'mailbridge_relay_delivered_total 1',
      'mailbridge_relay_deferred_total 0',
      'mailbridge_relay_failed_total 0',
      'mailbridge_relay_delivery_latency_seconds_count 1',
      '# TYPE mailbridge_relay_delivery_latency_seconds histogram',
    ]) {
      expect(metrics.split('\n')).toContain(line);
    }
    expect((await fetch(`${base}/other`)).status).toBe(404);
  });

  it('relay status and relay retry work on the spool of a running relay', async () => {
    const up = upstream(async () => {
      throw smtpFailure('EENVELOPE', 553, '553 5.7.1 Sender address rejected: not owned by user', {
        command: 'MAIL FROM',
      });
    });
    const relay = await startTestRelay(
      { allowNetworks: ['127.0.0.1/32'], policy: NETWORK_POLICY },
      { transportFor: up.transportFor },
    );
    const id = await sendOne(portOf(relay), 'Message-ID: <st@x>\r\n\r\ns\r\n');
    await waitFor(async () => (await relay.spool.listDead()).length === 1, 'dead letter');

    const status = await runCommand(relayStatusCommand, [
      '--spool',
      relay.settings.spool,
      '--json',
    ]);
    expect(status.code).toBe(0);
    const report = JSON.parse(status.stdout);
    expect(report).toMatchObject({ running: true, pid: process.pid, queue: [] });
    expect(report.dead).toMatchObject([
      { id, messageId: '<st@x>', reason: expect.stringContaining('553 5.7.1') },
    ]);
    const human = await runCommand(relayStatusCommand, ['--spool', relay.settings.spool]);
    expect(human.stdout).toMatch(
      /relay running \(pid \d+\)\nQueue: 0 message\(s\)\nDead: 1 message\(s\)/,
    );

    up.set(async (m) => ({ accepted: m.to, rejected: [], response: '250 OK' }));
    const retried = await runCommand(relayRetryCommand, ['--spool', relay.settings.spool, id]);
    expect(retried).toMatchObject({
      code: 0,
      stdout: `${id}  moved from dead back to the queue\n`,
    });
    await waitFor(() => relay.metrics.delivered === 1, 'delivery after retry');
    expect(await relay.spool.listDead()).toEqual([]);

    expect((await runCommand(relayRetryCommand, ['--spool', relay.settings.spool])).code).toBe(2);
    expect(
      (await runCommand(relayRetryCommand, ['--spool', relay.settings.spool, '../x'])).code,
    ).toBe(2);
    expect((await runCommand(relayStatusCommand, ['--spool', dir])).code).toBe(2);
  });
});

describe('commands', () => {
  it('relay hash-password reads stdin and prints a PHC scrypt hash, or a users-file line', async () => {
    const hashed = await runCommand(relayHashPasswordCommand, [], {
      stdin: Readable.from([Buffer.from('pa ss:word\n')]),
    });
    expect(hashed.code).toBe(0);
    const parsed = parsePasswordHash(hashed.stdout.trim());
    if (!parsed.ok) throw new Error(parsed.reason);
    expect(await verifyPassword('pa ss:word', parsed.value)).toBe(true);
    const line = await runCommand(relayHashPasswordCommand, ['--user', 'printer'], {
      stdin: Readable.from([Buffer.from('x')]),
    });
    expect(line.stdout).toMatch(/^printer:\$scrypt\$ln=15,r=8,p=1\$/);
    expect(line.stdout).not.toContain('x\n');
    const empty = await runCommand(relayHashPasswordCommand, [], { stdin: Readable.from([]) });
    expect(empty).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('the password is empty'),
    });
  });

  it('mailbridge relay refuses an open relay at start-up with exit 2 and a clear error', async () => {
    const configFile = join(dir, 'relay.yaml'); // named only: loadConfig below stands in for reading it
    const result = await runCommand(
      relayCommand,
      ['--config', configFile, '--listen', '0.0.0.0:2525'],
      {
        loadConfig: async () => ({
          ...config,
          sections: {
            relay: {
              spool: join(dir, 'cli-spool'),
              policy: [{ network: '10.0.0.0/8', senders: ['*'] }],
            },
          },
        }),
      },
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      'mailbridge: error RELAY_CONFIG_INVALID: the configuration has problems:',
    );
    expect(result.stderr).toContain(
      "  - relay.listen: Refusing to listen on 0.0.0.0:2525 (beyond loopback) as an open relay: set relay.allowNetworks to the devices' networks, or relay.tls and relay.users so that clients must authenticate over TLS.",
    );
  });
});

async function sendOne(
  port: number,
  message: string,
  to = ['archive@contoso.com'],
): Promise<string> {
  const smtp = await openSmtp(port);
  await smtp.send('EHLO x');
  await smtp.send('MAIL FROM:<printer@contoso.com>');
  for (const r of to) await smtp.send(`RCPT TO:<${r}>`);
  const reply = await smtp.data(message);
  smtp.close();
  if (!reply.startsWith('250')) throw new Error(reply);
  return reply.split(' ').at(-1) as string;
}

/** Runs a real client program, its stdout and stderr as one text. */
function runProgram(command: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => {
      output += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      output += c.toString();
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, output }));
  });
}

async function runCommand(
  command: Command,
  argv: string[],
  extra: { loadConfig?: () => Promise<MailbridgeConfig>; stdin?: NodeJS.ReadableStream } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = new PassThrough();
  out.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  const err = new PassThrough();
  err.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const io = { stdout: out, stderr: err, env: {}, ...(extra.stdin ? { stdin: extra.stdin } : {}) };
  try {
    const args = parseCommandArgs(argv, [...COMMON_FLAGS, ...command.flags]);
    const context: CommandContext = {
      args,
      io,
      logger: { log() {} },
      loadConfig: extra.loadConfig ?? (() => Promise.reject(new Error('not used'))),
    };
    const code = await command.run(context);
    return { code, stdout, stderr };
  } catch (error) {
    const code = reportError(error, io, { json: false, debug: false });
    return { code, stdout, stderr };
  }
}
