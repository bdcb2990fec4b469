/**
 * `mailbridge proxy` as a process, as systemd runs it: 500 idle IMAP
 * sessions open at once (each with its own upstream connection to Dovecot),
 * its memory then, a new client still served and the per-user cap refusing
 * the one too many; and SIGTERM: no new connections, BYE to clients not
 * logged in, a FETCH in flight finished before its session's BYE, a session
 * that never reads cut at proxy.shutdownTimeout, exit 0.
 */
import { writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../../src/jobs/listener/password.js';
import { type ProxyFixture, startFixture } from './fixture.js';
import {
  killProxyChildren,
  type ProxyProcess,
  residentBytes,
  spawnProxy,
} from './proxy-process.js';

const SESSIONS = 500;
/** Exchange allows about 16-20 connections per mailbox: 500 sessions are many mailboxes' worth. */
const PER_USER = 10;
const USERS = SESSIONS / PER_USER;
const RSS_GOAL = 200 * 1024 * 1024;
const PASSWORD = 'device password';
const LATE = 'late';
const OPEN_AT_ONCE = 25;
const END = '-- end of the big message --\r\n';

let fx: ProxyFixture;
let users: { name: string; passwordHash: string; mailboxes: string[] }[];

beforeAll(async () => {
  // No SMTP here: submission by this process, not Postfix (about 1 s of CPU a start).
  fx = await startFixture({
    mailServers: { maxUserConnections: PER_USER * 2, submission: 'node' },
  });
  const hash = await hashPassword(PASSWORD, { ln: 10, r: 8, p: 1 });
  users = [...Array.from({ length: USERS }, (_, i) => `dev${i}`), LATE].map((name) => ({
    name,
    passwordHash: hash,
    mailboxes: [`${name}@contoso.example`],
  }));
  for (const user of users)
    await fx.servers.grantMailbox(fx.app.clientId, user.mailboxes[0] as string);
}, 60_000);
afterAll(async () => {
  killProxyChildren();
  await fx?.stop();
});

function startProxyProcess(name: string, section: Record<string, unknown> = {}): ProxyProcess {
  const file = join(fx.dir, `${name}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      proxy: {
        imap: { listen: ['127.0.0.1:0'] },
        users,
        // All of this test's clients come from 127.0.0.1.
        maxConnectionsPerAddress: SESSIONS * 2,
        maxConnectionsPerUser: PER_USER,
        ...section,
      },
    }),
  );
  return spawnProxy(file, fx.env);
}

/** A line-oriented IMAP client over plain loopback. */
async function imapClient(port: number) {
  const socket: Socket = connect({ host: '127.0.0.1', port });
  let text = '';
  socket.setEncoding('latin1').on('data', (chunk: string) => {
    text += chunk;
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => {});
  const waitFor = async (pattern: RegExp, timeoutMs = 15_000) => {
    const until = Date.now() + timeoutMs;
    while (!pattern.test(text)) {
      if (Date.now() > until)
        throw new Error(`no ${pattern} in ${JSON.stringify(text.slice(-300))}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await waitFor(/^\* OK/);
  return {
    socket,
    closed,
    waitFor,
    send: (line: string) => socket.write(`${line}\r\n`),
    get text() {
      return text;
    },
  };
}

async function loggedIn(port: number, user: string) {
  const client = await imapClient(port);
  client.send(`a LOGIN ${user} "${PASSWORD}"`);
  await client.waitFor(/\r\na (OK|NO)[^\r]*\r\n/);
  return client;
}

let proxy: ProxyProcess | undefined;
afterEach(async (context) => {
  if (context.task.result?.state === 'fail' && proxy) {
    console.log(JSON.stringify(proxy.events.slice(-10), null, 1), proxy.stderr());
  }
});

describe('the proxy process under load', () => {
  it(`holds ${SESSIONS} idle IMAP sessions under ${RSS_GOAL / 2 ** 20} MB, still serves a new client, and refuses a user's session too many`, async () => {
    proxy = startProxyProcess('load');
    const port = (await proxy.ports()).imap as number;
    const atRest = await residentBytes(proxy.pid);
    const clients: Awaited<ReturnType<typeof loggedIn>>[] = [];
    const started = Date.now();
    try {
      const names = Array.from({ length: SESSIONS }, (_, i) => `dev${i % USERS}`);
      let next = 0;
      await Promise.all(
        Array.from({ length: OPEN_AT_ONCE }, async () => {
          while (next < names.length) {
            const client = await loggedIn(port, names[next++] as string);
            clients.push(client);
            expect(client.text).toMatch(/\r\na OK \[CAPABILITY/);
          }
        }),
      );
      const opened = Date.now() - started;
      const loaded = await residentBytes(proxy.pid);
      console.log(
        `${SESSIONS} sessions open in ${opened} ms; proxy RSS ${(atRest / 2 ** 20).toFixed(0)} MB at rest, ${(loaded / 2 ** 20).toFixed(0)} MB with ${SESSIONS} sessions`,
      );
      expect(loaded).toBeLessThan(RSS_GOAL);

      // Another mailbox's client, while the 500 stay open: served at once.
      const late = await loggedIn(port, LATE);
      expect(late.text).toMatch(/\r\na OK \[CAPABILITY/);
      late.send('b SELECT INBOX');
      await late.waitFor(/\r\nb OK/, 5000);
      late.socket.destroy();

      // dev0 holds its 10: the 11th is refused as unavailable, not as a wrong password.
      const extra = await loggedIn(port, 'dev0');
      expect(extra.text).toMatch(/\r\na NO \[UNAVAILABLE\] Too many sessions for this user\r\n/);
      extra.socket.destroy();
      expect(proxy.events.filter((e) => e.outcome === 'too_many')).toHaveLength(1);

      // The sessions are alive: each still answers through to Dovecot.
      const sample = clients.filter((_, i) => i % 50 === 0);
      for (const client of sample) client.send('n NOOP');
      for (const client of sample) await client.waitFor(/\r\nn OK/);
    } finally {
      for (const client of clients) client.socket.destroy();
    }
    proxy.child.kill('SIGTERM');
    expect(await proxy.exited).toBe(0);
  }, 90_000);
});

describe('SIGTERM', () => {
  it('stops accepting, says BYE before login, finishes a FETCH in flight, cuts a stuck session at the bound, exits 0', async () => {
    // 8 MB twice: more than loopback's socket buffers hold for a client that does not read.
    const big = `From: a@fabrikam.example\r\nSubject: big\r\n\r\n${`${'x'.repeat(76)}\r\n`.repeat(100_000)}${END}`;
    const direct = await fx.direct(`${LATE}@contoso.example`);
    await direct.append('INBOX', big);
    await direct.append('INBOX', big);
    await direct.logout();

    const SHUTDOWN_MS = 6000;
    proxy = startProxyProcess('stop', { shutdownTimeout: `${SHUTDOWN_MS}ms` });
    const port = (await proxy.ports()).imap as number;
    const waiting = await imapClient(port);
    const idle = await loggedIn(port, 'dev1');
    idle.send('b SELECT INBOX');
    await idle.waitFor(/\r\nb OK/);
    const fetchBoth = async () => {
      const client = await loggedIn(port, LATE);
      client.send('b SELECT INBOX');
      await client.waitFor(/\r\nb OK/);
      client.socket.pause();
      client.send('c UID FETCH 1:* BODY.PEEK[]');
      return client;
    };
    // Reads its FETCH only after the signal: the reply is in flight when the stop begins.
    const fetching = await fetchBoth();
    // Never reads: its FETCH cannot finish, the bound ends it.
    const stuck = await fetchBoth();

    await new Promise((r) => setTimeout(r, 500));
    const signalled = Date.now();
    proxy.child.kill('SIGTERM');
    await proxy.waitFor('stopping');
    // Not listening any more.
    await expect(
      new Promise((resolve, reject) =>
        connect({ host: '127.0.0.1', port }).once('connect', resolve).once('error', reject),
      ),
    ).rejects.toThrow(/ECONNREFUSED/);
    await waiting.closed;
    expect(waiting.text).toMatch(/\* BYE mailbridge proxy shutting down\r\n$/);
    await idle.closed;
    expect(idle.text).toMatch(/\r\nb OK[^\r]*\r\n\* BYE mailbridge proxy shutting down\r\n$/);

    setTimeout(() => fetching.socket.resume(), 300);
    await fetching.closed;
    // Both messages whole, the tagged OK, then the BYE.
    expect(fetching.text.split(END).length).toBe(3);
    expect(fetching.text).toMatch(/\r\nc OK [^\r]*\r\n\* BYE mailbridge proxy shutting down\r\n$/);

    expect(await proxy.exited).toBe(0);
    const ms = Date.now() - signalled;
    // The stuck session held the stop up to the bound, and no longer.
    expect(ms).toBeGreaterThanOrEqual(SHUTDOWN_MS - 100);
    expect(ms).toBeLessThan(SHUTDOWN_MS + 5000);
    // Cut inside its reply: no tagged OK, and no BYE in the middle of a message.
    stuck.socket.resume();
    await stuck.closed;
    expect(stuck.text).not.toMatch(/\r\nc OK/);
    expect(stuck.text).not.toContain('shutting down');
    expect(proxy.events.map((e) => e.event)).toContain('stopped');
  }, 60_000);
});
