/**
 * What Exchange does to the proxy's own sessions, played by the IMAP fault
 * proxy in front of Dovecot: a session ended at token expiry (`* BYE
 * Session invalidated - AccessTokenExpired`) ends for the client too, and
 * its next login is served at once with a fresh token; a login Exchange
 * refuses (Dovecot, the app's grant revoked)
 * reaches the client as `NO [AUTHENTICATIONFAILED]` (POP3: `-ERR [AUTH]`)
 * and the admin's log as the diagnosis.
 */
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProxyHandle } from '../../../src/jobs/proxy/proxy.js';
import { type ImapFaultProxy, startImapFaultProxy } from '../../helpers/imap-fault-proxy.js';
import { ALICE, ALICE_MAILBOX, type ProxyFixture, seed, startFixture } from './fixture.js';

const TOKEN_SECONDS = 3;
let fx: ProxyFixture;
let fault: ImapFaultProxy;
let proxy: ProxyHandle;

beforeAll(async () => {
  // No SMTP here: submission by this process, not Postfix (about 1 s of CPU a start).
  fx = await startFixture({
    tokenLifetimeSeconds: TOKEN_SECONDS,
    mailServers: { submission: 'node' },
  });
  fault = await startImapFaultProxy(fx.servers.imap);
  proxy = await fx.start(
    { imap: { listen: ['imaps://127.0.0.1:0'] }, pop3: { listen: [] } },
    { imap: { host: fault.host, port: fault.port } },
  );
  await seed(fx, ALICE_MAILBOX, 1, 'expiry');
}, 60_000);
afterAll(async () => {
  await fault?.close();
  await fx?.stop();
});

/** Logs in through the proxy and selects INBOX; resolves with the session's transcript so far. */
async function session() {
  const socket = tlsConnect({ host: '127.0.0.1', port: proxy.listeners[0]?.port as number });
  let text = '';
  socket.setEncoding('utf8').on('data', (chunk: string) => {
    text += chunk;
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const waitFor = async (pattern: RegExp, timeoutMs = 10_000) => {
    const until = Date.now() + timeoutMs;
    while (!pattern.test(text)) {
      if (Date.now() > until) throw new Error(`no ${pattern} in ${JSON.stringify(text)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await waitFor(/^\* OK/);
  socket.write(`a LOGIN ${ALICE.name} "${ALICE.password}"\r\n`);
  await waitFor(/\r\na (OK|NO)[^\r]*\r\n/);
  return { socket, closed, waitFor, text: () => text };
}

describe('upstream session ends', () => {
  it('passes the BYE of an expired token on, and serves the next login at once', async () => {
    const first = await session();
    expect(first.text()).toMatch(/a OK \[CAPABILITY/);
    first.socket.write('b SELECT INBOX\r\n');
    await first.waitFor(/b OK/);
    await first.waitFor(
      /\* BYE Session invalidated - AccessTokenExpired/,
      (TOKEN_SECONDS + 3) * 1000,
    );
    await first.closed;
    const requests = fx.service.tokenRequests;
    const started = Date.now();
    const second = await session();
    expect(second.text()).toMatch(/a OK \[CAPABILITY/);
    expect(Date.now() - started).toBeLessThan(3000);
    // The expired token was not handed out again.
    expect(fx.service.tokenRequests).toBeGreaterThan(requests);
    second.socket.destroy();
  }, 30_000);

  it('answers NO [AUTHENTICATIONFAILED] when Exchange refuses the app, with the diagnosis in the log', async () => {
    // What Exchange does when the app lost FullAccess on the mailbox.
    await fx.servers.revokeMailbox(fx.app.clientId, ALICE_MAILBOX);
    const refused = await session();
    await fx.servers.grantMailbox(fx.app.clientId, ALICE_MAILBOX);
    expect(refused.text()).toMatch(
      /a NO \[AUTHENTICATIONFAILED\] The mail service refused the login\r\n/,
    );
    refused.socket.destroy();
    const line = fx.logs.filter((l) => l.event === 'login').at(-1);
    expect(line).toMatchObject({
      outcome: 'upstream_refused',
      mailbox: ALICE_MAILBOX,
      diagnosis: 'IMAP_AUTH_FAILED',
    });
    expect(String(line?.fix)).toContain('mailbridge token');
    expect(proxy.metrics.render()).toContain(
      'mailbridge_proxy_upstream_errors_total{code="IMAP_AUTH_FAILED"} 2',
    );
  });
});

describe('upstream POP3 refusal', () => {
  it('answers -ERR [AUTH] without the upstream text, and logs the diagnosis for the admin', async () => {
    const pop3 = await fx.start({
      imap: { listen: [] },
      pop3: { listen: ['pop3s://127.0.0.1:0'] },
    });
    await fx.servers.revokeMailbox(fx.app.clientId, ALICE_MAILBOX);
    const socket = tlsConnect({ host: '127.0.0.1', port: pop3.listeners[0]?.port as number });
    let text = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
    });
    const waitFor = async (pattern: RegExp) => {
      const until = Date.now() + 10_000;
      while (!pattern.test(text)) {
        if (Date.now() > until) throw new Error(`no ${pattern} in ${JSON.stringify(text)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    try {
      await waitFor(/^\+OK/);
      socket.write(`USER ${ALICE.name}\r\n`);
      await waitFor(/\r\n\+OK\r\n$/);
      socket.write(`PASS ${ALICE.password}\r\n`);
      await waitFor(/-ERR[^\r]*\r\n$/);
    } finally {
      await fx.servers.grantMailbox(fx.app.clientId, ALICE_MAILBOX);
      socket.destroy();
    }
    // The client hears the proxy's words, not Dovecot's (nor anything Exchange said).
    expect(text).toMatch(/\r\n-ERR \[AUTH\] The mail service refused the login\r\n$/);
    expect(text).not.toContain('Authentication failed');
    const line = fx.logs.filter((l) => l.event === 'login').at(-1);
    expect(line).toMatchObject({
      protocol: 'pop3',
      outcome: 'upstream_refused',
      mailbox: ALICE_MAILBOX,
      diagnosis: 'POP3_AUTH_FAILED',
      reply: '-ERR [AUTH] Authentication failed.',
    });
    expect(String(line?.fix)).toContain('POP.AccessAsApp');
    expect(pop3.metrics.render()).toContain(
      'mailbridge_proxy_upstream_errors_total{code="POP3_AUTH_FAILED"} 2',
    );
  });
});
