/**
 * `mailbridge send` against a real Postfix that refuses the sender with the
 * replies Exchange Online gives since 2026: the diagnosis (cause and fix) on
 * stderr and the exit code of its class. Postfix's AUTH replies cannot be
 * changed, so it gives these at MAIL FROM (an access map), after a login
 * that succeeded.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appEnvironment } from '../helpers/app-env.js';
import {
  EXCHANGE_AUDIENCE,
  type MailServers,
  SMTP_ROLE,
  startMailServers,
} from '../helpers/mail-servers.js';
import { runCli } from '../helpers/run-cli.js';
import { startTokenService, type TokenService } from '../helpers/token-service.js';

const BASIC_AUTH_OFF = 'printer@contoso.example';
const TERRL = 'newsletter@contoso.example';
const RECIPIENT = 'partner@fabrikam.example';

let service: TokenService;
let servers: MailServers;
let env: Record<string, string>;

beforeAll(async () => {
  service = await startTokenService();
  servers = await startMailServers({
    tokenService: service,
    senderReplies: {
      [BASIC_AUTH_OFF]: '535 5.7.139 Authentication unsuccessful, basic authentication is disabled',
      [TERRL]:
        "550 5.7.233 Your message can't be sent because your tenant has exceeded its daily limit for sending email to external recipients (tenant external recipient rate limit)",
    },
  });
  const app = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [SMTP_ROLE] } });
  await servers.grantMailbox(app.clientId, BASIC_AUTH_OFF);
  await servers.grantMailbox(app.clientId, TERRL);
  env = appEnvironment(service, app, { smtp: servers.smtp });
}, 60_000);

afterAll(async () => {
  await servers?.stop();
  await service?.close();
});

const send = (from: string) =>
  runCli(['send', '--from', from, '--to', RECIPIENT, '--subject', 'scan', '--text', 'x'], env);

describe('send, refused with the 2026 replies', () => {
  it('535 5.7.139 basic authentication is disabled: cause and fix, exit 3', async () => {
    const { code, stderr, stdout } = await send(BASIC_AUTH_OFF);
    expect(stdout).toBe('');
    expect(stderr).toContain('SMTP_BASIC_AUTH_DISABLED');
    // Postfix puts "<sender>: Sender address rejected:" before the text of an access map reply.
    expect(stderr).toMatch(
      /server reply "535 5\.7\.139 .*Authentication unsuccessful, basic authentication is disabled"/,
    );
    expect(stderr).toContain('Likely cause: the client sent a user name and password');
    expect(stderr).toContain('Authenticate with XOAUTH2 and an app-only token');
    expect(stderr).toContain('`mailbridge relay`');
    expect(code).toBe(3);
  });

  it('550 5.7.233 (TERRL): stop and wait, exit 4', async () => {
    const { code, stderr } = await send(TERRL);
    expect(stderr).toContain('SMTP_TENANT_EXTERNAL_LIMIT');
    expect(stderr).toContain('do not send again at once');
    expect(code).toBe(4);
  });
});
