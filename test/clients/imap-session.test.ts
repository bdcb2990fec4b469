/**
 * The long-session helper against Dovecot behind a proxy that behaves like
 * Exchange: it ends sessions when their token expires and can throttle.
 * Tokens live 5 seconds, so a 30-second job crosses many expiries.
 */
import type { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTokenProvider } from '../../src/auth/token-provider.js';
import { createImapClient } from '../../src/clients/imap-client.js';
import { createImapSession } from '../../src/clients/imap-session.js';
import { loadConfig } from '../../src/config/load.js';
import type { MailbridgeConfig } from '../../src/config/types.js';
import { appEnvironment } from '../helpers/app-env.js';
import { type ImapFaultProxy, startImapFaultProxy } from '../helpers/imap-fault-proxy.js';
import {
  EXCHANGE_AUDIENCE,
  IMAP_ROLE,
  type MailServers,
  startMailServers,
} from '../helpers/mail-servers.js';
import { startTokenService, type TokenService } from '../helpers/token-service.js';

const MAILBOX = 'archive@contoso.example';
const MESSAGES = 60;

let service: TokenService;
let servers: MailServers;
let proxy: ImapFaultProxy;
let config: MailbridgeConfig;
let uids: number[];
/**
 * How far the token service's clock runs behind the client's. A token's `exp`
 * then falls before the expiry the client reckons from `expires_in`, as with
 * a skewed client clock, so Exchange's BYE comes before the planned reconnect.
 */
let clockSkewMs = 0;

function message(i: number): string {
  return [
    `From: sender${i}@fabrikam.example`,
    `To: ${MAILBOX}`,
    `Subject: message ${i}`,
    `Message-ID: <m${i}@fabrikam.example>`,
    'Date: Sun, 22 Nov 2026 10:00:00 +0000',
    '',
    `Body of message ${i}. ${'x'.repeat(200)}`,
    '',
  ].join('\r\n');
}

beforeAll(async () => {
  service = await startTokenService({ now: () => Date.now() - clockSkewMs });
  // Only IMAP here: SMTP submission by this process, not Postfix (about 1.3 s of CPU a start).
  servers = await startMailServers({ tokenService: service, submission: 'node' });
  proxy = await startImapFaultProxy(servers.imap);
  const app = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE] } });
  await servers.grantMailbox(app.clientId, MAILBOX);
  config = await loadConfig({
    env: appEnvironment(service, app, { imap: proxy }),
  });
  // Seeded straight into Dovecot (not through the proxy) with a long-lived token.
  const seeder = await createImapClient(
    { ...config, imap: { host: servers.imap.host, port: servers.imap.port } },
    { mailbox: MAILBOX },
  );
  for (let i = 1; i <= MESSAGES; i++) await seeder.append('INBOX', message(i));
  await seeder.mailboxOpen('INBOX');
  uids = (await seeder.search({ all: true }, { uid: true })) || [];
  await seeder.logout();
  expect(uids).toHaveLength(MESSAGES);
}, 60_000);

afterAll(async () => {
  await proxy?.close();
  await servers?.stop();
  await service?.close();
});

beforeEach(() => {
  clockSkewMs = 0;
  service.setTokenLifetime(3599);
  proxy.setExpireSessions(true);
});

/** Fetches a few messages after `lastUid`; the job keeps `lastUid`, so a retried batch resumes. */
async function fetchBatch(
  client: ImapFlow,
  lastUid: number,
  size: number,
  perMessageMs = 0,
): Promise<{ uid: number; subject: string }[]> {
  const got: { uid: number; subject: string }[] = [];
  const last = Math.min(lastUid + size, Number.MAX_SAFE_INTEGER);
  for await (const msg of client.fetch(
    `${lastUid + 1}:${last}`,
    { uid: true, envelope: true },
    { uid: true },
  )) {
    // `n:m` past the highest UID still returns the last message (RFC 3501): skip what was done.
    if (msg.uid <= lastUid) continue;
    got.push({ uid: msg.uid, subject: msg.envelope?.subject ?? '' });
    // A slow consumer keeps the command open, so token expiries fall inside it.
    if (perMessageMs) await new Promise((resolve) => setTimeout(resolve, perMessageMs));
  }
  return got;
}

async function fetchContinuously(
  reconnectMarginMs: number | undefined,
  seconds: number,
  pace: { perMessageMs: number; betweenBatchesMs: number } = {
    perMessageMs: 0,
    betweenBatchesMs: 40,
  },
): Promise<{ passes: number[][]; stats: ReturnType<typeof createImapSession>['stats'] }> {
  service.setTokenLifetime(5);
  const provider = createTokenProvider(config);
  const session = createImapSession(config, {
    mailbox: MAILBOX,
    tokenProvider: provider,
    ...(reconnectMarginMs !== undefined ? { reconnectMarginMs } : {}),
    baseDelayMs: 50,
  });
  await session.open('INBOX', { readOnly: true });
  const passes: number[][] = [[]];
  let lastUid = 0;
  const deadline = Date.now() + seconds * 1000;
  try {
    while (Date.now() < deadline) {
      const from = lastUid;
      const batch = await session.run((client) => fetchBatch(client, from, 4, pace.perMessageMs));
      const current = passes.at(-1) as number[];
      for (const m of batch) {
        current.push(m.uid);
        expect(m.subject).toBe(`message ${uids.indexOf(m.uid) + 1}`);
      }
      lastUid = batch.at(-1)?.uid ?? lastUid;
      if (batch.length === 0 || lastUid === uids.at(-1)) {
        passes.push([]);
        lastUid = 0;
      }
      if (pace.betweenBatchesMs)
        await new Promise((resolve) => setTimeout(resolve, pace.betweenBatchesMs));
    }
  } finally {
    await session.close();
  }
  return { passes: passes.filter((p) => p.length > 0), stats: session.stats };
}

describe('createImapSession', () => {
  it('keeps fetching for 30 s across 5-second tokens, reconnecting before each expiry, losing and repeating nothing', {
    tags: ['soak'],
    timeout: 60_000,
  }, async () => {
    const byesBefore = proxy.byesSent;
    const { passes, stats } = await fetchContinuously(undefined, 30);
    const complete = passes.slice(0, -1);
    expect(complete.length).toBeGreaterThanOrEqual(2);
    for (const pass of complete) expect(pass).toEqual(uids);
    // Every pass, the last partial one too, is a run of consecutive UIDs with no gap or repeat.
    const last = passes.at(-1) as number[];
    expect(last).toEqual(uids.slice(0, last.length));
    expect(stats.tokenRenewals).toBeGreaterThanOrEqual(5);
    expect(proxy.byesSent - byesBefore).toBeLessThanOrEqual(1);
  });

  it('recovers from Exchange ending the session (BYE AccessTokenExpired) mid-job', async () => {
    clockSkewMs = 1500;
    const byesBefore = proxy.byesSent;
    const { passes, stats } = await fetchContinuously(0, 15, {
      perMessageMs: 100,
      betweenBatchesMs: 0,
    });
    for (const pass of passes.slice(0, -1)) expect(pass).toEqual(uids);
    const last = passes.at(-1) as number[];
    expect(last).toEqual(uids.slice(0, last.length));
    expect(proxy.byesSent - byesBefore).toBeGreaterThanOrEqual(2);
    expect(stats.retries).toBeGreaterThanOrEqual(2);
  }, 40_000);

  it('waits out a throttling reply for the suggested time, then continues', async () => {
    const session = createImapSession(config, { mailbox: MAILBOX });
    try {
      await session.open('INBOX', { readOnly: true });
      proxy.throttleNext(1, 1_500);
      const throttledBefore = proxy.throttlesSent;
      const started = Date.now();
      const batch = await session.run((client) => fetchBatch(client, 0, 3));
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_450);
      expect(batch.map((m) => m.uid)).toEqual(uids.slice(0, 3));
      expect(proxy.throttlesSent - throttledBefore).toBe(1);
    } finally {
      await session.close();
    }
  });

  it('reconnects after a dropped connection and re-selects the folder', async () => {
    const session = createImapSession(config, { mailbox: MAILBOX, baseDelayMs: 50 });
    try {
      await session.open('INBOX', { readOnly: true });
      const first = await session.run((client) => fetchBatch(client, 0, 2));
      proxy.dropAll();
      const next = await session.run((client) => fetchBatch(client, first.at(-1)?.uid ?? 0, 2));
      expect([...first, ...next].map((m) => m.uid)).toEqual(uids.slice(0, 4));
      expect(session.selected?.path).toBe('INBOX');
      expect(session.stats.connects).toBeGreaterThanOrEqual(2);
    } finally {
      await session.close();
    }
  });

  it('gives up with exit code 4 when the server stays unreachable', async () => {
    const unreachable = { ...config, imap: { host: '127.0.0.1', port: 9 } };
    const session = createImapSession(unreachable, {
      mailbox: MAILBOX,
      maxAttempts: 3,
      baseDelayMs: 20,
    });
    const error = await session.run(async () => 1).catch((e: unknown) => e);
    await session.close();
    expect(error).toMatchObject({ exitCode: 4 });
  });

  it('does not retry a refused login: a mailbox the app was not granted', async () => {
    const session = createImapSession(config, { mailbox: 'ceo@contoso.example', maxAttempts: 5 });
    const started = Date.now();
    const error = await session.run(async () => 1).catch((e: unknown) => e);
    await session.close();
    expect(error).toMatchObject({ code: 'IMAP_AUTH_FAILED', exitCode: 3 });
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('caps concurrent connections per mailbox', async () => {
    const sessions = Array.from({ length: 5 }, () =>
      createImapSession(config, { mailbox: MAILBOX, maxConnections: 2 }),
    );
    let active = 0;
    let peak = 0;
    await Promise.all(
      sessions.map(async (session) => {
        await session.run(async () => {
          active++;
          peak = Math.max(peak, active);
          await new Promise((resolve) => setTimeout(resolve, 150));
          active--;
        });
        await session.close();
      }),
    );
    expect(peak).toBe(2);
  });
});
