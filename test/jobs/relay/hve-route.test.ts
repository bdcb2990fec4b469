/**
 * The relay with an `hve` route against the Postfix harness: a second
 * submission port stands in for High Volume Email (the app's token needs
 * Mail.Send and access to the HVE account, MAIL FROM must be the account,
 * external recipients get `550 5.5.105`). Internal recipients go through it,
 * external ones through the mailbox route, a mixed message is split by
 * recipient and each part delivered once; what arrives is read back over IMAP.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenProvider } from '../../../src/auth/token-provider.js';
import { loadConfig } from '../../../src/config/load.js';
import { parseRelaySettings } from '../../../src/jobs/relay/config.js';
import { type RelayHandle, startRelay } from '../../../src/jobs/relay/relay.js';
import type { DeliveryRecord } from '../../../src/jobs/relay/spool.js';
import { createJsonLogger } from '../../../src/log/json-logger.js';
import { appEnvironment } from '../../helpers/app-env.js';
import { EXCHANGE_AUDIENCE, IMAP_ROLE, SMTP_ROLE } from '../../helpers/mail-servers.js';
import { collectText, startUpstream, type Upstream } from './upstream.js';

const HVE_ACCOUNT = 'notify@contoso.example';
const PRINTER = 'printer@contoso.example';
const STAFF = ['staff1@contoso.example', 'staff2@contoso.example', 'staff3@contoso.example'];
const PARTNER = 'partner@fabrikam.example';
const OUTSIDER = 'someone@outside.example';

let upstream: Upstream;
let dir: string;
let relay: RelayHandle;
const output = collectText();

beforeAll(async () => {
  upstream = await startUpstream([PRINTER, ...STAFF, PARTNER, OUTSIDER], {
    hve: { account: HVE_ACCOUNT, internalDomains: ['contoso.example'] },
  });
  dir = await mkdtemp(join(tmpdir(), 'relay-hve-'));
  const hve = upstream.servers.hve as { host: string; port: number };
  const settings = parseRelaySettings(
    {
      listen: ['127.0.0.1:0'],
      spool: 'spool',
      allowNetworks: ['127.0.0.1/32'],
      policy: [{ network: '127.0.0.1/32', senders: [PRINTER] }],
      retryBackoff: { initial: '200ms', max: '1s' },
      routes: {
        hve: {
          account: HVE_ACCOUNT,
          host: hve.host,
          port: hve.port,
          internalDomains: ['contoso.example'],
          // Small, so that a message to three internal recipients takes two HVE submissions.
          maxRecipients: 2,
        },
      },
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

async function send(to: string[], messageId: string): Promise<string> {
  const client = nodemailer.createTransport({
    host: '127.0.0.1',
    port: relay.listeners[0]?.port,
    secure: false,
    ignoreTLS: true,
  });
  try {
    const info = await client.sendMail({
      from: PRINTER,
      to,
      subject: 'meter reading',
      text: 'The printer counted 1234 pages.',
      messageId,
    });
    return /queued as (\S+)/.exec(info.response)?.[1] as string;
  } finally {
    client.close();
  }
}

async function recordsOf(id: string): Promise<DeliveryRecord[]> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const text = await readFile(join(relay.settings.spool, 'delivered.jsonl'), 'utf8').catch(
      () => '',
    );
    const records = text
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as DeliveryRecord)
      .filter((r) => r.id === id);
    if (records.some((r) => r.complete) || Date.now() > deadline) return records;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The envelope sender Postfix recorded (Return-Path) on the copy in `mailbox`. */
async function returnPath(mailbox: string, messageId: string): Promise<string | undefined> {
  const raw = (await upstream.waitForMessage(mailbox, messageId)).toString('latin1');
  return /^Return-Path: <([^>]*)>/im.exec(raw)?.[1];
}

describe('relay.routes.hve against the HVE stand-in', () => {
  it('internal-only: through HVE as the HVE account, in parts of maxRecipients, one record each', async () => {
    const messageId = `<internal-${Date.now()}@printer.lan>`;
    const id = await send(STAFF, messageId);
    const records = await recordsOf(id);
    expect(records.map((r) => [r.route, r.mailbox, r.from, r.to, r.complete])).toEqual([
      ['hve', HVE_ACCOUNT, HVE_ACCOUNT, [STAFF[0], STAFF[1]], false],
      ['hve', HVE_ACCOUNT, HVE_ACCOUNT, [STAFF[2]], true],
    ]);
    for (const mailbox of STAFF) {
      expect(await returnPath(mailbox, messageId)).toBe(HVE_ACCOUNT);
      expect((await upstream.messageIds(mailbox)).get(messageId)).toBe(1);
    }
    expect(relay.queueDepth()).toBe(0);
  });

  it('external-only: through the mailbox route, as before', async () => {
    const messageId = `<external-${Date.now()}@printer.lan>`;
    const id = await send([PARTNER], messageId);
    const records = await recordsOf(id);
    expect(records.map((r) => [r.route, r.mailbox, r.to, r.complete])).toEqual([
      [undefined, PRINTER, [PARTNER], true],
    ]);
    expect(await returnPath(PARTNER, messageId)).toBe(PRINTER);
  });

  it('mixed: split by recipient, each part recorded and delivered once', async () => {
    const messageId = `<mixed-${Date.now()}@printer.lan>`;
    const id = await send([PARTNER, STAFF[0] as string], messageId);
    const records = await recordsOf(id);
    // The first recipient's route goes first.
    expect(records.map((r) => [r.route, r.to, r.complete])).toEqual([
      [undefined, [PARTNER], false],
      ['hve', [STAFF[0]], true],
    ]);
    expect(await returnPath(STAFF[0] as string, messageId)).toBe(HVE_ACCOUNT);
    expect(await returnPath(PARTNER, messageId)).toBe(PRINTER);
    // Once each, also after the relay had time to send anything twice.
    await new Promise((r) => setTimeout(r, 500));
    expect((await upstream.messageIds(STAFF[0] as string)).get(messageId)).toBe(1);
    expect((await upstream.messageIds(PARTNER)).get(messageId)).toBe(1);
    expect(relay.queueDepth()).toBe(0);
    expect(await relay.spool.listDead()).toEqual([]);
  });
});

/** A relay of its own on `spool` under the test folder, its HVE route as given. */
function startOtherRelay(
  name: string,
  hve: Record<string, unknown>,
  extra: Record<string, unknown> = {},
  log = collectText(),
) {
  return startRelay(upstream.config, {
    settings: parseRelaySettings(
      {
        listen: ['127.0.0.1:0'],
        spool: 'spool',
        allowNetworks: ['127.0.0.1/32'],
        policy: [{ network: '127.0.0.1/32', senders: [PRINTER] }],
        retryBackoff: { initial: '200ms', max: '1s' },
        routes: { hve: { account: HVE_ACCOUNT, internalDomains: ['contoso.example'], ...hve } },
        ...extra,
      },
      { baseDir: join(dir, name) },
    ),
    logger: createJsonLogger(log.stream),
    scanIntervalMs: 200,
  });
}

describe('an HVE part that fails for now', () => {
  it('does not hold back the mailbox part: it goes at once, the HVE part waits for its retry', async () => {
    // Nothing listens there: every HVE attempt fails to connect.
    const closed = await new Promise<number>((resolve) => {
      const server = createServer();
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo;
        server.close(() => resolve(port));
      });
    });
    const log = collectText();
    const other = await startOtherRelay(
      'hve-down',
      { host: '127.0.0.1', port: closed },
      // A backoff longer than the test: the mailbox part must not wait for it.
      { retryBackoff: { initial: '1h', max: '1h' } },
      log,
    );
    try {
      const client = nodemailer.createTransport({
        host: '127.0.0.1',
        port: other.listeners[0]?.port,
        secure: false,
        ignoreTLS: true,
      });
      const messageId = `<hve-down-${Date.now()}@printer.lan>`;
      await client
        .sendMail({ from: PRINTER, to: [STAFF[1] as string, OUTSIDER], text: 'x', messageId })
        .finally(() => client.close());
      expect(await returnPath(OUTSIDER, messageId)).toBe(PRINTER);
      // The HVE part waits for its route's retry (paused an hour by the refused connection).
      await new Promise((r) => setTimeout(r, 1000));
      const [queued] = await other.spool.listQueue();
      expect(queued).toMatchObject({ to: [STAFF[1]], delivered: [OUTSIDER] });
      const deferred = log
        .text()
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((e) => e.event === 'deferred');
      expect(deferred[0]).toMatchObject({ code: 'SMTP_UNREACHABLE', mailbox: HVE_ACCOUNT });
      expect((await upstream.messageIds(STAFF[1] as string)).get(messageId)).toBeUndefined();
    } finally {
      await other.stop({ timeoutMs: 2000 });
    }
  });
});

describe('a domain counted internal that HVE finds external', () => {
  it('550 5.5.105 sends that recipient to dead/ with the diagnosis; the mailbox part still goes', async () => {
    const hve = upstream.servers.hve as { host: string; port: number };
    // fabrikam.example is not internal for HVE: a mistake in the config.
    const wrong = await startOtherRelay('wrong-domains', {
      host: hve.host,
      port: hve.port,
      internalDomains: ['contoso.example', 'fabrikam.example'],
    });
    try {
      const client = nodemailer.createTransport({
        host: '127.0.0.1',
        port: wrong.listeners[0]?.port,
        secure: false,
        ignoreTLS: true,
      });
      const messageId = `<wrong-domain-${Date.now()}@printer.lan>`;
      await client
        .sendMail({ from: PRINTER, to: [PARTNER, OUTSIDER], text: 'x', messageId })
        .finally(() => client.close());
      expect(await returnPath(OUTSIDER, messageId)).toBe(PRINTER);
      const deadline = Date.now() + 20_000;
      while (wrong.queueDepth() > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
      }
      const dead = await wrong.spool.listDead();
      expect(dead).toMatchObject([{ to: [PARTNER] }]);
      expect(dead[0]?.reason).toMatch(
        /<partner@fabrikam\.example>: SMTP_HVE_EXTERNAL_RECIPIENT: 550 5\.5\.105/,
      );
      expect(wrong.queueDepth()).toBe(0);
      expect((await upstream.messageIds(PARTNER)).get(messageId)).toBeUndefined();
    } finally {
      await wrong.stop({ timeoutMs: 2000 });
    }
  });
});

describe('the HVE stand-in refuses as HVE does', () => {
  const submit = (from: string, to: string, token: string, user = from) => {
    const hve = upstream.servers.hve as { host: string; port: number };
    const client = nodemailer.createTransport({
      host: hve.host,
      port: hve.port,
      requireTLS: true,
      tls: { ca: upstream.config.extraCaCertificates },
      auth: { type: 'OAuth2', user, accessToken: token },
    });
    return client.sendMail({ from, to, text: 'x' }).finally(() => client.close());
  };

  it('an external recipient with 550 5.5.105, a MAIL FROM other than the account with 550 5.7.62', async () => {
    const { accessToken } = await tokenOf(upstream);
    await expect(submit(HVE_ACCOUNT, PARTNER, accessToken)).rejects.toMatchObject({
      responseCode: 550,
      response: expect.stringMatching(/5\.5\.105/),
    });
    await expect(submit(PRINTER, STAFF[0] as string, accessToken, HVE_ACCOUNT)).rejects.toThrow(
      /5\.7\.62|not owned by user/,
    );
    await expect(submit(HVE_ACCOUNT, STAFF[0] as string, accessToken)).resolves.toMatchObject({
      accepted: [STAFF[0]],
    });
  });

  it('the token of an app with SMTP.SendAsApp but without Mail.Send: 535, though the account is granted', async () => {
    const app = upstream.service.registerApp({
      roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE, SMTP_ROLE] },
    });
    await upstream.servers.grantMailbox(app.clientId, HVE_ACCOUNT);
    const config = await loadConfig({ env: appEnvironment(upstream.service, app) });
    const { accessToken } = await createTokenProvider(config).getToken();
    await expect(submit(HVE_ACCOUNT, STAFF[0] as string, accessToken)).rejects.toMatchObject({
      responseCode: 535,
    });
  });
});

function tokenOf(up: Upstream): Promise<{ accessToken: string }> {
  return createTokenProvider(up.config).getToken();
}
