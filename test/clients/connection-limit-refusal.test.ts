/**
 * A login refused because the mailbox already holds as many connections as
 * the server allows (Dovecot: `NO [UNAVAILABLE] Maximum number of connections
 * from user+IP exceeded`) is a wait-and-retry matter, not a setup one: it gets
 * its own code (a network error, exit 4) instead of IMAP_AUTH_FAILED's advice
 * about tokens and service principals.
 */
import type { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createImapClient } from '../../src/clients/imap-client.js';
import { classifySessionFailure } from '../../src/clients/session-policy.js';
import { loadConfig } from '../../src/config/load.js';
import type { MailbridgeConfig } from '../../src/config/types.js';
import { appEnvironment } from '../helpers/app-env.js';
import {
  EXCHANGE_AUDIENCE,
  IMAP_ROLE,
  type MailServers,
  startMailServers,
} from '../helpers/mail-servers.js';
import { startTokenService, type TokenService } from '../helpers/token-service.js';

const MAILBOX = 'ceo@contoso.example';
const LIMIT = 2;

let service: TokenService;
let servers: MailServers;
let config: MailbridgeConfig;
const held: ImapFlow[] = [];

beforeAll(async () => {
  service = await startTokenService();
  servers = await startMailServers({
    tokenService: service,
    submission: 'node',
    maxUserConnections: LIMIT,
  });
  const app = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE] } });
  await servers.grantMailbox(app.clientId, MAILBOX);
  config = await loadConfig({ env: appEnvironment(service, app, { imap: servers.imap }) });
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(held.map((client) => client.logout()));
  await servers?.stop();
  await service?.close();
});

describe('a login refused for too many connections to the mailbox', () => {
  it('is IMAP_TOO_MANY_CONNECTIONS (exit 4, retried by sessions), not IMAP_AUTH_FAILED', async () => {
    for (let i = 0; i < LIMIT; i++) held.push(await createImapClient(config, { mailbox: MAILBOX }));
    const error = await createImapClient(config, { mailbox: MAILBOX }).then(
      () => undefined,
      (e: unknown) => e as Error & { code?: string; exitCode?: number; remedy?: string },
    );
    expect(error).toMatchObject({ code: 'IMAP_TOO_MANY_CONNECTIONS', exitCode: 4 });
    expect(error?.message).toContain(
      `refused the login: too many connections to the mailbox (mailbox ${MAILBOX}; server reply "NO Maximum number of connections from user+IP exceeded`,
    );
    expect(error?.message).not.toMatch(/IMAP\.AccessAsApp|service principal/);
    expect(`${error?.message} ${error?.remedy}`).toMatch(/another run or client.*--connections/s);
    // The session layer reconnects after a network error: the limit frees up as others finish.
    expect(classifySessionFailure(error as Error, false).kind).toBe('dropped');

    // Once a connection is given back, the same login succeeds.
    await held.pop()?.logout();
    held.push(await createImapClient(config, { mailbox: MAILBOX }));
  });
});
