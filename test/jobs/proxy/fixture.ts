/**
 * The proxy between real clients and the real Dovecot harness: token
 * service, Dovecot (IMAP + POP3) and Postfix, an app granted two mailboxes,
 * and `startProxy` with local users, TLS from the run's test CA, and a log
 * kept in memory.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { loadConfig } from '../../../src/config/load.js';
import type { MailbridgeConfig } from '../../../src/config/types.js';
import { hashPassword } from '../../../src/jobs/listener/password.js';
import { parseProxySettings } from '../../../src/jobs/proxy/config.js';
import { type ProxyHandle, startProxy } from '../../../src/jobs/proxy/proxy.js';
import type { LogFields, Logger, LogLevel } from '../../../src/log/logger.js';
import { appEnvironment } from '../../helpers/app-env.js';
import {
  EXCHANGE_AUDIENCE,
  IMAP_ROLE,
  type MailServers,
  type MailServersOptions,
  POP_ROLE,
  SMTP_ROLE,
  startMailServers,
} from '../../helpers/mail-servers.js';
import { issueServerCertificate } from '../../helpers/pki.js';
import { loadTestCa } from '../../helpers/test-ca.js';
import {
  type RegisteredApp,
  startTokenService,
  type TokenService,
} from '../../helpers/token-service.js';

export const ALICE = { name: 'alice', password: 'correct horse battery' };
export const BOB = { name: 'bob', password: 'tr0ub4dor&3' };
export const ALICE_MAILBOX = 'alice@contoso.example';
export const SHARED_MAILBOX = 'shared@contoso.example';
export const BOB_MAILBOX = 'bob@contoso.example';

export interface LogLine extends LogFields {
  level: LogLevel;
  message: string;
}

export interface ProxyFixture {
  service: TokenService;
  servers: MailServers;
  app: RegisteredApp;
  config: MailbridgeConfig;
  /** The environment `config` was loaded from: the app and the mail servers, for a CLI child. */
  env: Record<string, string>;
  dir: string;
  tls: { cert: string; key: string };
  hashes: { alice: string; bob: string };
  logs: LogLine[];
  /** Starts a proxy with the fixture's users and TLS, plus `section`'s keys (and `config`'s). */
  start(
    section?: Record<string, unknown>,
    config?: Partial<MailbridgeConfig>,
  ): Promise<ProxyHandle>;
  /** An IMAP client straight to Dovecot, logged in with the app's token. */
  direct(mailbox: string): Promise<ImapFlow>;
  token(): Promise<string>;
  stop(): Promise<void>;
}

export async function startFixture(
  options: {
    tokenLifetimeSeconds?: number;
    mailServers?: Omit<MailServersOptions, 'tokenService' | 'pop3'>;
  } = {},
): Promise<ProxyFixture> {
  const service = await startTokenService(
    options.tokenLifetimeSeconds ? { tokenLifetimeSeconds: options.tokenLifetimeSeconds } : {},
  );
  const servers = await startMailServers({
    ...options.mailServers,
    tokenService: service,
    pop3: true,
  });
  const app = service.registerApp({
    roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE, POP_ROLE, SMTP_ROLE] },
  });
  for (const mailbox of [ALICE_MAILBOX, SHARED_MAILBOX, BOB_MAILBOX]) {
    await servers.grantMailbox(app.clientId, mailbox);
  }
  const env = {
    ...appEnvironment(service, app, { imap: servers.imap, smtp: servers.smtp }),
    MAILBRIDGE_POP_HOST: '127.0.0.1',
    MAILBRIDGE_POP_PORT: String(servers.pop3?.port),
  };
  const config = await loadConfig({ env });
  const dir = mkdtempSync(join(tmpdir(), 'mailbridge-proxy-'));
  const issued = issueServerCertificate(loadTestCa());
  const tls = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
  writeFileSync(tls.cert, issued.certificatePem);
  writeFileSync(tls.key, issued.keys.privateKeyPem, { mode: 0o600 });
  // The cheapest scrypt the proxy accepts: the tests are about the proxy, not the hash's cost.
  const cheap = { ln: 10, r: 8, p: 1 };
  const hashes = {
    alice: await hashPassword(ALICE.password, cheap),
    bob: await hashPassword(BOB.password, cheap),
  };
  const logs: LogLine[] = [];
  const logger: Logger = {
    log(level: LogLevel, message: string, fields?: LogFields) {
      logs.push({ level, message, ...fields });
    },
  };
  const proxies: ProxyHandle[] = [];
  const token = () => appToken(service, app);
  return {
    service,
    servers,
    app,
    config,
    env,
    dir,
    tls,
    hashes,
    logs,
    async start(section = {}, overrides = {}) {
      const settings = parseProxySettings({
        imap: { listen: ['127.0.0.1:0', 'imaps://127.0.0.1:0'] },
        pop3: { listen: ['127.0.0.1:0', 'pop3s://127.0.0.1:0'] },
        tls,
        users: [
          {
            name: ALICE.name,
            passwordHash: hashes.alice,
            mailboxes: [ALICE_MAILBOX, SHARED_MAILBOX],
          },
          { name: BOB.name, passwordHash: hashes.bob, mailboxes: [BOB_MAILBOX] },
        ],
        authPenalty: { initial: '200ms', max: '2s' },
        ...section,
      });
      const proxy = await startProxy({ ...config, ...overrides }, { settings, logger });
      proxies.push(proxy);
      return proxy;
    },
    async direct(mailbox) {
      const client = new ImapFlow({
        host: servers.imap.host,
        port: servers.imap.port,
        secure: true,
        auth: { user: mailbox, accessToken: await token() },
        logger: false,
      });
      await client.connect();
      return client;
    },
    token,
    async stop() {
      for (const proxy of proxies) await proxy.close();
      await servers.stop();
      await service.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The port of the proxy's listener for `protocol`, with implicit TLS or not. */
export function listenerPort(
  handle: ProxyHandle,
  protocol: 'imap' | 'pop3',
  implicitTls: boolean,
): number {
  const found = handle.listeners.find(
    (l) => l.protocol === protocol && l.implicitTls === implicitTls,
  );
  if (!found) throw new Error(`no ${protocol} listener`);
  return found.port;
}

/** For a failed test: the proxy's last log lines and the mail servers' logs. */
export async function showLogs(fixture: ProxyFixture): Promise<void> {
  console.log(JSON.stringify(fixture.logs.slice(-20), null, 1));
  console.log((await fixture.servers.logs()).slice(-4000));
}

/** A token for the app, straight from the token service (what the proxy gets through msal-node). */
export async function appToken(service: TokenService, app: RegisteredApp): Promise<string> {
  const res = await fetch(service.tokenEndpoint(app.tenantId), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: app.clientId,
      client_secret: app.secret ?? '',
      scope: `${EXCHANGE_AUDIENCE}/.default`,
    }).toString(),
  });
  return ((await res.json()) as { access_token: string }).access_token;
}

/** Appends `count` small messages to INBOX of `mailbox`, straight to Dovecot; returns them. */
export async function seed(
  fixture: ProxyFixture,
  mailbox: string,
  count: number,
  tag = 'seed',
): Promise<string[]> {
  const client = await fixture.direct(mailbox);
  const messages: string[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const message = [
        `From: sender@fabrikam.example`,
        `To: ${mailbox}`,
        `Subject: ${tag} ${i}`,
        `Message-ID: <${tag}-${i}@fabrikam.example>`,
        '',
        `Body of ${tag} ${i} for ${mailbox}.`,
        '',
      ].join('\r\n');
      await client.append('INBOX', message);
      messages.push(message);
    }
  } finally {
    await client.logout();
  }
  return messages;
}
