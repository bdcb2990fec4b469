/**
 * The real-server harness must behave like Exchange Online where our code
 * depends on it, or the integration tests built on it prove nothing: these
 * tests pin who may log in (role, mailbox grant, token validity), how a
 * refusal looks on the wire, that mail submitted over SMTP arrives unchanged
 * in the IMAP mailbox, and that nothing listens beyond loopback.
 */
import { existsSync, readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  EXCHANGE_AUDIENCE,
  IMAP_ROLE,
  type MailServers,
  SMTP_ROLE,
  startMailServers,
} from './mail-servers.js';
import { type RegisteredApp, startTokenService, type TokenService } from './token-service.js';

const MAILBOX = 'archive@contoso.example';
const OTHER_MAILBOX = 'sales@fabrikam.example';

let service: TokenService;
let servers: MailServers;
/** How far the token service's clock runs ahead of the wall clock. */
let skew = 0;
/** IMAP and SMTP roles, granted MAILBOX. */
let app: RegisteredApp;

beforeAll(async () => {
  service = await startTokenService({ now: () => Date.now() + skew });
  servers = await startMailServers({ tokenService: service });
  app = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE, SMTP_ROLE] } });
  await servers.grantMailbox(app.clientId, MAILBOX);
});
afterAll(async () => {
  await servers?.stop();
  await service?.close();
});
afterEach((context) => {
  if (context.task.result?.state === 'fail') {
    return servers.logs().then((logs) => console.log(logs));
  }
});

async function tokenFor(client: RegisteredApp, resource = EXCHANGE_AUDIENCE): Promise<string> {
  const res = await fetch(service.tokenEndpoint(client.tenantId), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: client.clientId,
      client_secret: client.secret ?? '',
      scope: `${resource}/.default`,
    }).toString(),
  });
  const body = (await res.json()) as { access_token?: string };
  if (!body.access_token) throw new Error(`no token: ${JSON.stringify(body)}`);
  return body.access_token;
}

function xoauth2(user: string, token: string): string {
  return Buffer.from(`user=${user}\x01auth=Bearer ${token}\x01\x01`).toString('base64');
}

function imapClient(user: string, token: string): ImapFlow {
  return new ImapFlow({
    host: servers.imap.host,
    port: servers.imap.port,
    secure: true,
    auth: { user, accessToken: token },
    logger: false,
  });
}

/** Connects, runs `body`, logs out; connect() throws when the login is refused. */
async function withImap<T>(user: string, token: string, body: (c: ImapFlow) => Promise<T>) {
  const client = imapClient(user, token);
  await client.connect();
  try {
    return await body(client);
  } finally {
    await client.logout();
  }
}

/**
 * Expects imapflow's login to fail on our passdb's refusal: a tagged NO with
 * the passdb's reason, not a TLS error or a temporary failure (`[UNAVAILABLE]`,
 * what Dovecot says when the token service cannot be asked).
 */
async function expectImapRefused(user: string, token: string): Promise<void> {
  const client = imapClient(user, token);
  const err = await client.connect().then(
    async () => {
      await client.logout();
      throw new Error(`login of ${user} was accepted`);
    },
    (e: unknown) => e as Error & { authenticationFailed?: boolean; response?: unknown },
  );
  expect(err.authenticationFailed).toBe(true);
  expect(String(err.response)).toMatch(/ NO \[CONTACTADMIN\] AUTHENTICATE failed\.$/);
}

/** A line-oriented conversation over a socket, for exact protocol replies. */
class Conversation {
  private buffer = '';
  private waiting: (() => void) | undefined;

  constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      this.waiting?.();
    });
  }

  /** Reads until a line matches `last`; returns every line read. */
  async readUntil(last: RegExp): Promise<string[]> {
    const lines: string[] = [];
    for (;;) {
      const end = this.buffer.indexOf('\r\n');
      if (end >= 0) {
        const line = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        lines.push(line);
        if (last.test(line)) return lines;
        continue;
      }
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no line matching ${last}`)), 5_000);
        this.waiting = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  send(line: string): void {
    this.socket.write(`${line}\r\n`);
  }

  close(): void {
    this.socket.destroy();
  }
}

async function imapConversation(): Promise<Conversation> {
  const socket = tlsConnect({ host: servers.imap.host, port: servers.imap.port });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  const conversation = new Conversation(socket);
  await conversation.readUntil(/^\* OK/);
  return conversation;
}

/** `AUTHENTICATE <mech>` with an initial response; answers a `+` challenge with an empty line. */
async function rawAuthenticate(mechanism: string, initialResponse: string): Promise<string[]> {
  const imap = await imapConversation();
  try {
    imap.send(`a1 AUTHENTICATE ${mechanism} ${initialResponse}`);
    const lines = await imap.readUntil(/^(a1 |\+)/);
    if (lines.at(-1)?.startsWith('+')) {
      imap.send('');
      lines.push(...(await imap.readUntil(/^a1 /)));
    }
    return lines;
  } finally {
    imap.close();
  }
}

describe('IMAP', () => {
  it('lets a granted app with IMAP.AccessAsApp list, select and append', async () => {
    const token = await tokenFor(app);
    await withImap(MAILBOX, token, async (client) => {
      const list = await client.list();
      expect(list.map((box) => box.path)).toContain('INBOX');
      const inbox = await client.mailboxOpen('INBOX');
      expect(inbox.path).toBe('INBOX');
      const message = Buffer.from(
        'From: archive@contoso.example\r\nTo: archive@contoso.example\r\n' +
          'Subject: appended\r\n\r\nappended body\r\n',
      );
      const appended = await client.append('INBOX', message, ['\\Seen']);
      if (!appended) throw new Error('APPEND answered no UID');
      expect(appended.uid).toBeGreaterThan(0);
      const fetched = await client.fetchOne(String(appended.uid), { source: true }, { uid: true });
      if (!fetched) throw new Error(`UID ${appended.uid} not found`);
      expect(fetched.source?.equals(message)).toBe(true);
    });
  });

  it('answers a refused AUTHENTICATE with NO, as Exchange does', async () => {
    const lines = await rawAuthenticate('XOAUTH2', xoauth2(MAILBOX, 'not-a-token'));
    // At once, without the "+ <JSON error>" round Dovecot's own refusals take.
    expect(lines).toEqual(['a1 NO [CONTACTADMIN] AUTHENTICATE failed.']);
  });

  it("advertises Exchange Online's capabilities, not Dovecot's", async () => {
    const imap = await imapConversation();
    try {
      imap.send('a1 CAPABILITY');
      const lines = await imap.readUntil(/^a1 /);
      expect(lines[0]).toBe(
        '* CAPABILITY IMAP4 IMAP4rev1 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+ ' +
          'AUTH=XOAUTH2 AUTH=PLAIN',
      );
    } finally {
      imap.close();
    }
    await withImap(MAILBOX, await tokenFor(app), async (client) => {
      expect(client.capabilities.has('CONDSTORE')).toBe(false);
      expect(client.capabilities.has('UIDPLUS')).toBe(true);
    });
  });

  it('answers an accepted AUTHENTICATE with OK', async () => {
    const lines = await rawAuthenticate('XOAUTH2', xoauth2(MAILBOX, await tokenFor(app)));
    expect(lines.at(-1)).toMatch(/^a1 OK /);
  });

  it('refuses a token without IMAP.AccessAsApp', async () => {
    const smtpOnly = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [SMTP_ROLE] } });
    await servers.grantMailbox(smtpOnly.clientId, MAILBOX);
    await expectImapRefused(MAILBOX, await tokenFor(smtpOnly));
  });

  it('refuses an app that was not granted the mailbox, until it is', async () => {
    const other = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE] } });
    const token = await tokenFor(other);
    await expectImapRefused(MAILBOX, token);

    await servers.grantMailbox(other.clientId, MAILBOX);
    await withImap(MAILBOX, token, async (client) => {
      expect((await client.mailboxOpen('INBOX')).path).toBe('INBOX');
    });
    // A grant is for one mailbox only.
    await expectImapRefused(OTHER_MAILBOX, token);

    await servers.revokeMailbox(other.clientId, MAILBOX);
    await expectImapRefused(MAILBOX, token);
  });

  it('matches the mailbox without regard to case', async () => {
    const token = await tokenFor(app);
    await withImap(MAILBOX.toUpperCase(), token, async (client) => {
      expect((await client.mailboxOpen('INBOX')).path).toBe('INBOX');
    });
  });

  it('refuses an expired token', async () => {
    const token = await tokenFor(app);
    // Dovecot asks the token service, whose clock moves past the token's hour.
    skew = 3600_000;
    try {
      await expectImapRefused(MAILBOX, token);
    } finally {
      skew = 0;
    }
  });

  it('refuses a garbage token and a token for another resource', async () => {
    await expectImapRefused(MAILBOX, 'garbage');
    const graph = await tokenFor(app, 'https://graph.microsoft.com');
    await expectImapRefused(MAILBOX, graph);
  });

  it('refuses basic authentication, even with a valid token as the password', async () => {
    const plain = Buffer.from(`\0${MAILBOX}\0${await tokenFor(app)}`).toString('base64');
    const lines = await rawAuthenticate('PLAIN', plain);
    expect(lines).toEqual(['a1 NO [CONTACTADMIN] AUTHENTICATE failed.']);
  });
});

describe('SMTP submission', () => {
  function transport(auth?: { user: string; accessToken: string }) {
    return nodemailer.createTransport({
      host: servers.smtp.host,
      port: servers.smtp.port,
      secure: false,
      requireTLS: true,
      ...(auth ? { auth: { type: 'OAuth2' as const, ...auth } } : {}),
    });
  }

  /** Polls the mailbox until a message with this Message-ID arrives; returns its source. */
  async function waitForMessage(mailbox: string, messageId: string): Promise<Buffer> {
    const imapApp = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE] } });
    await servers.grantMailbox(imapApp.clientId, mailbox);
    const token = await tokenFor(imapApp);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const found = await withImap(mailbox, token, async (client) => {
        await client.mailboxOpen('INBOX');
        const uids = await client.search({ header: { 'message-id': messageId } }, { uid: true });
        if (!uids || uids.length === 0) return undefined;
        const message = await client.fetchOne(String(uids[0]), { source: true }, { uid: true });
        return message ? message.source : undefined;
      });
      if (found) return found;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`${messageId} did not arrive in ${mailbox}`);
  }

  it('delivers an XOAUTH2-authenticated message into the IMAP mailbox unchanged', async () => {
    const messageId = `<${Date.now()}.${Math.random().toString(36).slice(2)}@mailbridge.test>`;
    // A line starting with a dot (SMTP dot-stuffing), trailing spaces and a blank line.
    const body =
      'First line.\r\n.a line that starts with a dot\r\ntrailing spaces   \r\n\r\nlast line\r\n';
    const raw =
      `From: ${MAILBOX}\r\nTo: ${OTHER_MAILBOX}\r\nSubject: submission test\r\n` +
      `Message-ID: ${messageId}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n${body}`;
    const info = await transport({ user: MAILBOX, accessToken: await tokenFor(app) }).sendMail({
      envelope: { from: MAILBOX, to: [OTHER_MAILBOX] },
      raw,
    });
    expect(info.accepted).toEqual([OTHER_MAILBOX]);

    const source = await waitForMessage(OTHER_MAILBOX, messageId);
    const text = source.toString('utf8');
    expect(text.slice(text.indexOf('\r\n\r\n') + 4)).toBe(body);
    // Postfix and Dovecot only prepend trace headers.
    expect(text.endsWith(raw)).toBe(true);
  });

  it('refuses a token without SMTP.SendAsApp with 535', async () => {
    const imapOnly = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE] } });
    await servers.grantMailbox(imapOnly.clientId, MAILBOX);
    const err = await transport({ user: MAILBOX, accessToken: await tokenFor(imapOnly) })
      .sendMail({ from: MAILBOX, to: OTHER_MAILBOX, text: 'x' })
      .catch((e: unknown) => e as { responseCode?: number; code?: string });
    expect(err).toMatchObject({ code: 'EAUTH', responseCode: 535 });
  });

  it('refuses a mailbox the app was not granted with 535', async () => {
    const err = await transport({ user: OTHER_MAILBOX, accessToken: await tokenFor(app) })
      .sendMail({ from: OTHER_MAILBOX, to: MAILBOX, text: 'x' })
      .catch((e: unknown) => e as { responseCode?: number; code?: string });
    expect(err).toMatchObject({ code: 'EAUTH', responseCode: 535 });
  });

  it('refuses unauthenticated submission', async () => {
    const err = await transport()
      .sendMail({ from: MAILBOX, to: OTHER_MAILBOX, text: 'x' })
      .catch((e: unknown) => e as { responseCode?: number; response?: string });
    expect(err).toMatchObject({ responseCode: 553 });
    expect((err as { response: string }).response).toMatch(/not logged in/);
  });

  it('refuses an envelope sender other than the authenticated mailbox', async () => {
    const err = await transport({ user: MAILBOX, accessToken: await tokenFor(app) })
      .sendMail({
        envelope: { from: OTHER_MAILBOX, to: [MAILBOX] },
        raw: 'Subject: x\r\n\r\nx\r\n',
      })
      .catch((e: unknown) => e as { responseCode?: number; response?: string });
    expect(err).toMatchObject({ responseCode: 553 });
    expect((err as { response: string }).response).toMatch(/not owned by user/);
  });

  it('refuses AUTH before STARTTLS and does not offer it', async () => {
    const socket = netConnect({ host: servers.smtp.host, port: servers.smtp.port });
    const smtp = new Conversation(socket);
    try {
      await smtp.readUntil(/^220 /);
      smtp.send('EHLO client.test');
      const ehlo = await smtp.readUntil(/^250 /);
      expect(ehlo).toContain('250-STARTTLS');
      expect(ehlo.some((line) => line.includes('AUTH'))).toBe(false);
      smtp.send(`AUTH XOAUTH2 ${xoauth2(MAILBOX, await tokenFor(app))}`);
      expect((await smtp.readUntil(/^\d{3} /)).at(-1)).toMatch(/^530 5\.7\.0 /);
      smtp.send(`MAIL FROM:<${MAILBOX}>`);
      expect((await smtp.readUntil(/^\d{3} /)).at(-1)).toMatch(/^530 /);
    } finally {
      smtp.close();
    }
  });
});

describe('the harness', () => {
  it('listens only on loopback, on the two ports it reports', async () => {
    const sockets = await servers.listeningSockets();
    expect(sockets.length).toBeGreaterThan(0);
    for (const socket of sockets) expect(socket.address).toBe('127.0.0.1');
    const ports = new Set(sockets.map((s) => s.port));
    expect([...ports].sort()).toEqual([servers.imap.port, servers.smtp.port].sort());
  });

  it('stops every process it started and removes its folder', async () => {
    const other = await startMailServers({ tokenService: service });
    const pids = await other.processIds();
    expect(pids.length).toBeGreaterThan(5);
    await other.stop();
    expect(existsSync(other.dir)).toBe(false);
    expect(pids.filter((pid) => isRunning(pid))).toEqual([]);
  });
});

/** Zombies (exited, not yet reaped by their new parent) count as stopped. */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
