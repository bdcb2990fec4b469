/**
 * The test Dovecot's POP3 (the `pop3` option of startMailServers) behaves as
 * Exchange Online's: AUTH XOAUTH2 with a token carrying POP.AccessAsApp and a
 * grant on the mailbox, nothing else. The proxy's POP3 tests stand on this.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EXCHANGE_AUDIENCE,
  IMAP_ROLE,
  type MailServers,
  POP_ROLE,
  startMailServers,
} from '../../helpers/mail-servers.js';
import { testCaPath } from '../../helpers/test-ca.js';
import {
  type RegisteredApp,
  startTokenService,
  type TokenService,
} from '../../helpers/token-service.js';
import { appToken } from './fixture.js';
import { runTool } from './tools.js';

const MAILBOX = 'scanner@contoso.example';
let service: TokenService;
let servers: MailServers;
let app: RegisteredApp;

beforeAll(async () => {
  service = await startTokenService();
  // Only IMAP and POP3 here: SMTP submission by this process, not Postfix (about 1.3 s of CPU a start).
  servers = await startMailServers({ tokenService: service, pop3: true, submission: 'node' });
  app = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE, POP_ROLE] } });
  await servers.grantMailbox(app.clientId, MAILBOX);
});
afterAll(async () => {
  await servers?.stop();
  await service?.close();
});

const token = (client: RegisteredApp) => appToken(service, client);

function curlPop(user: string, bearer: string) {
  const pop3 = servers.pop3 as { host: string; port: number };
  return runTool('curl', [
    '-sS',
    '--cacert',
    testCaPath(),
    '--user',
    `${user}:`,
    '--oauth2-bearer',
    bearer,
    `pop3s://${pop3.host}:${pop3.port}/`,
  ]);
}

describe('the test Dovecot over POP3', () => {
  it('lets a granted app in with XOAUTH2 and lists the (empty) mailbox', async () => {
    const result = await curlPop(MAILBOX, await token(app));
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim()).toBe('');
  });

  it('refuses an app without POP.AccessAsApp, and a mailbox not granted', async () => {
    const imapOnly = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE] } });
    await servers.grantMailbox(imapOnly.clientId, MAILBOX);
    expect((await curlPop(MAILBOX, await token(imapOnly))).code).not.toBe(0);
    expect((await curlPop('other@contoso.example', await token(app))).code).not.toBe(0);
  });
});
