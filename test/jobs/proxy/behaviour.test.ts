/**
 * The proxy's behaviour under its limits, with real clients: IDLE seeing a
 * message Postfix delivers, fetchmail over POP3 STLS and IMAP, TLS 1.0
 * refused unless asked for, one token for many logins, a fresh token after
 * short-lived ones, and a slow-loris client cut off at the login timeout
 * while others are served.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import nodemailer from 'nodemailer';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ProxyHandle } from '../../../src/jobs/proxy/proxy.js';
import { testCaPath } from '../../helpers/test-ca.js';
import {
  ALICE,
  ALICE_MAILBOX,
  BOB,
  listenerPort,
  type ProxyFixture,
  seed,
  showLogs,
  startFixture,
} from './fixture.js';
import { runTool } from './tools.js';

let fx: ProxyFixture;
let proxy: ProxyHandle;

beforeAll(async () => {
  fx = await startFixture();
  proxy = await fx.start({ loginTimeout: '2s' });
  await seed(fx, ALICE_MAILBOX, 2, 'behaviour');
}, 60_000);
afterAll(async () => {
  await fx?.stop();
});
afterEach((context) => {
  if (context.task.result?.state === 'fail') return showLogs(fx);
});

const port = listenerPort;

/** A line-oriented IMAP client over TLS, to watch what the proxy relays. */
async function imapsSession(portNumber: number) {
  const socket: TLSSocket = tlsConnect({ host: '127.0.0.1', port: portNumber });
  let text = '';
  socket.setEncoding('utf8').on('data', (chunk: string) => {
    text += chunk;
  });
  await new Promise((resolve, reject) =>
    socket.once('secureConnect', resolve).once('error', reject),
  );
  const waitFor = async (pattern: RegExp, timeoutMs = 5000) => {
    const until = Date.now() + timeoutMs;
    while (!pattern.test(text)) {
      if (Date.now() > until) throw new Error(`no ${pattern} in ${JSON.stringify(text)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return {
    socket,
    waitFor,
    send: (line: string) => socket.write(`${line}\r\n`),
    get text() {
      return text;
    },
  };
}

describe('sessions', () => {
  it('relays IDLE: a message Postfix delivers shows within 2 s', async () => {
    const session = await imapsSession(port(proxy, 'imap', true));
    await session.waitFor(/^\* OK/);
    session.send(`a LOGIN ${ALICE.name} "${ALICE.password}"`);
    await session.waitFor(/a OK \[CAPABILITY [^\]]*IDLE/);
    session.send('b SELECT INBOX');
    await session.waitFor(/b OK/);
    session.send('c IDLE');
    await session.waitFor(/\+ idling/i);
    const transport = nodemailer.createTransport({
      host: fx.servers.smtp.host,
      port: fx.servers.smtp.port,
      requireTLS: true,
      auth: { type: 'OAuth2', user: ALICE_MAILBOX, accessToken: await fx.token() },
    });
    await transport.sendMail({
      from: ALICE_MAILBOX,
      to: ALICE_MAILBOX,
      subject: 'idle',
      text: 'arrives while idling',
    });
    transport.close();
    const accepted = Date.now();
    await session.waitFor(/\* 3 EXISTS/, 2000);
    expect(Date.now() - accepted).toBeLessThan(2000);
    session.send('DONE');
    await session.waitFor(/c OK/);
    session.socket.destroy();
  });

  it('serves fetchmail over POP3 with USER/PASS after STLS, and over IMAP', async () => {
    const rc = join(fx.dir, 'fetchmailrc');
    const out = join(fx.dir, 'fetched.mbox');
    const poll = (protocol: 'pop3' | 'imap', portNumber: number) =>
      [
        `poll 127.0.0.1 with proto ${protocol === 'pop3' ? 'POP3' : 'IMAP'} port ${portNumber}`,
        `  user "${BOB.name}" there with password "${BOB.password}" is "nobody" here`,
        `  sslproto tls1.2+ sslcertck sslcommonname localhost sslcertfile "${testCaPath()}" keep fetchall`,
        `  mda "cat >> ${out}"`,
        '',
      ].join('\n');
    const bobMessages = await seed(fx, 'bob@contoso.example', 2, 'fetchmail');
    for (const [protocol, portNumber] of [
      ['pop3', port(proxy, 'pop3', false)],
      ['imap', port(proxy, 'imap', false)],
    ] as const) {
      writeFileSync(rc, poll(protocol, portNumber), { mode: 0o600 });
      writeFileSync(out, '');
      const result = await runTool(
        'fetchmail',
        ['-f', rc, '--nodetach', '--nosyslog', '-v', '--pidfile', join(fx.dir, 'fetchmail.pid')],
        { env: { ...process.env, HOME: fx.dir } },
      );
      expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
      // STARTTLS/STLS was used: fetchmail with sslproto and no ssl upgrades itself.
      expect(`${result.stdout}${result.stderr}`).toMatch(/STLS|STARTTLS/);
      const fetched = readFileSync(out, 'utf8');
      for (const message of bobMessages) {
        expect(fetched).toContain(message.split('\r\n').at(-2));
      }
    }
  });
});

describe('TLS versions', () => {
  const tls1 = (portNumber: number) =>
    runTool(
      'openssl',
      [
        's_client',
        '-connect',
        `127.0.0.1:${portNumber}`,
        '-tls1',
        '-cipher',
        'DEFAULT:@SECLEVEL=0',
        '-CAfile',
        testCaPath(),
      ],
      { input: 'a LOGOUT\r\n', timeoutMs: 10_000 },
    );

  it('refuses a TLS 1.0 client by default', async () => {
    const result = await tls1(port(proxy, 'imap', true));
    expect(result.stdout).not.toContain('* OK');
    expect(`${result.stdout}${result.stderr}`).toMatch(/alert|no protocols available|handshake/i);
  });

  it('accepts it with minVersion: TLSv1, and warns at start-up which listeners do', async () => {
    const old = await fx.start({
      imap: { listen: ['imaps://127.0.0.1:0'] },
      pop3: { listen: [] },
      tls: { ...fx.tls, minVersion: 'TLSv1' },
    });
    const result = await tls1(port(old, 'imap', true));
    expect(result.stdout).toMatch(/Protocol\s*: TLSv1\b/);
    expect(result.stdout).toContain('* OK [CAPABILITY');
    expect(fx.logs.find((l) => l.event === 'tls-warning')).toMatchObject({
      minVersion: 'TLSv1',
      listeners: 'imap imaps://127.0.0.1:0',
    });
    await old.close();
  });
});

const LOGINS = Number(process.env.PROXY_LOGINS ?? 100);

describe('tokens', () => {
  it('makes one token request for 100 consecutive logins', async () => {
    const fresh = await fx.start({ pop3: { listen: [] } });
    const before = fx.service.tokenRequests;
    const url = `imaps://127.0.0.1:${port(fresh, 'imap', true)}/INBOX`;
    for (let i = 0; i < LOGINS; i++) {
      const result = await runTool('curl', [
        '-sS',
        '--cacert',
        testCaPath(),
        '--user',
        `${ALICE.name}:${ALICE.password}`,
        '-X',
        'NOOP',
        url,
      ]);
      expect(result.code, result.stderr).toBe(0);
    }
    expect(fx.service.tokenRequests - before).toBe(1);
    const ms = fx.logs
      .filter((l) => l.event === 'login' && l.outcome === 'ok')
      .slice(-LOGINS)
      .map((l) => Number(l.ms));
    console.log(
      `100 logins: proxy login time mean ${ms.reduce((a, b) => a + b, 0) / ms.length} ms`,
    );
    await fresh.close();
  }, 400_000);
});

describe('limits', () => {
  it('cuts a silent client off at the login timeout while others are served', async () => {
    const silent = await imapsSession(port(proxy, 'imap', true));
    await silent.waitFor(/^\* OK/);
    // Trickles a byte now and then: never idle, never done.
    const trickle = setInterval(() => silent.socket.write('x'), 300);
    const closed = new Promise<number>((resolve) => {
      const started = Date.now();
      silent.socket.once('close', () => resolve(Date.now() - started));
    });
    const served = await runTool('curl', [
      '-sS',
      '--cacert',
      testCaPath(),
      '--user',
      `${ALICE.name}:${ALICE.password}`,
      `imaps://127.0.0.1:${port(proxy, 'imap', true)}/INBOX;UID=1`,
    ]);
    expect(served.code, served.stderr).toBe(0);
    const ms = await closed;
    clearInterval(trickle);
    expect(ms).toBeGreaterThan(1500);
    expect(ms).toBeLessThan(4000);
    expect(silent.text).toContain('* BYE Autologout');
  });

  it('cuts a client off at a 1 MB line', async () => {
    const session = await imapsSession(port(proxy, 'imap', true));
    await session.waitFor(/^\* OK/);
    session.socket.write(`a LOGIN ${'x'.repeat(1024 * 1024)}\r\n`);
    await session.waitFor(/\* BYE Line too long/);
  });
});
