/**
 * createImapClient against Dovecot: the mechanisms imapflow may pick, and the
 * errors a user meets first (untrusted certificate, refused login, no role).
 */

import type { AddressInfo } from 'node:net';
import { createServer } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createImapClient } from '../../src/clients/imap-client.js';
import { loadConfig } from '../../src/config/load.js';
import type { MailbridgeConfig } from '../../src/config/types.js';
import { appEnvironment } from '../helpers/app-env.js';
import {
  EXCHANGE_AUDIENCE,
  IMAP_ROLE,
  type MailServers,
  startMailServers,
} from '../helpers/mail-servers.js';
import { issueCertificate } from '../helpers/pki.js';
import { startTokenService, type TokenService } from '../helpers/token-service.js';

const MAILBOX = 'shared-inbox@contoso.example';

let service: TokenService;
let servers: MailServers;
let config: MailbridgeConfig;
let appId: string;

beforeAll(async () => {
  service = await startTokenService();
  // Offering OAUTHBEARER as well: imapflow prefers it, and our tokens must work either way.
  servers = await startMailServers({
    tokenService: service,
    mechanisms: ['xoauth2', 'oauthbearer'],
    // Only IMAP here: SMTP submission by this process, not Postfix (about 1.3 s of CPU a start).
    submission: 'node',
  });
  const app = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE] } });
  appId = app.clientId;
  await servers.grantMailbox(app.clientId, MAILBOX);
  config = await loadConfig({
    env: appEnvironment(service, app, { imap: servers.imap }),
  });
}, 60_000);

afterAll(async () => {
  await servers?.stop();
  await service?.close();
});

describe('createImapClient', () => {
  it('logs in when OAUTHBEARER is offered too (imapflow prefers it) and can select INBOX', async () => {
    const client = await createImapClient(config, { mailbox: MAILBOX });
    try {
      const inbox = await client.mailboxOpen('INBOX');
      expect(inbox.path).toBe('INBOX');
    } finally {
      await client.logout();
    }
  });

  it('refuses a mailbox that was not granted with IMAP_AUTH_FAILED (exit 3), and works once granted', async () => {
    const other = 'payroll@contoso.example';
    await expect(createImapClient(config, { mailbox: other })).rejects.toMatchObject({
      code: 'IMAP_AUTH_FAILED',
      exitCode: 3,
    });
    await servers.grantMailbox(appId, other);
    const client = await createImapClient(config, { mailbox: other });
    await client.logout();
    await servers.revokeMailbox(appId, other);
  });

  it('names the missing role when the token has none', async () => {
    const app = service.registerApp();
    await servers.grantMailbox(app.clientId, MAILBOX);
    const noRoles = await loadConfig({
      env: appEnvironment(service, app, { imap: servers.imap }),
    });
    const error = await createImapClient(noRoles, { mailbox: MAILBOX }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'TOKEN_NO_ROLES', exitCode: 3 });
    expect(String((error as Error).message)).toContain('delegated permissions');
  });

  it('refuses a server whose certificate is not trusted (exit 4), never downgrading', async () => {
    const rogue = issueCertificate({ commonName: 'localhost', ipAddresses: ['127.0.0.1'] });
    const server = createServer(
      { key: rogue.keys.privateKeyPem, cert: rogue.certificatePem },
      (socket) => {
        socket.end('* OK IMAP4rev1 ready\r\n');
      },
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      const error = await createImapClient(
        { ...config, imap: { host: '127.0.0.1', port } },
        { mailbox: MAILBOX },
      ).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'TLS_CERTIFICATE_UNTRUSTED', exitCode: 4 });
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
