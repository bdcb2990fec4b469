/**
 * A Microsoft 365 stand-in on this machine, for trying mailbridge and for a
 * user's own tests: an Entra-like token service (HTTPS, its own CA), IMAP
 * (Dovecot behind the Exchange-like fault proxy), POP3 and SMTP submission
 * that accept only its app-only tokens, only for mailboxes the app was
 * granted, in one tenant or several.
 * Everything listens on 127.0.0.1 and everything it writes is under `dir`.
 * The servers stop with stop(), or with the process that started them (the
 * mail servers' watchdog).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigurationError } from '../errors.js';
import { closestName } from '../util/did-you-mean.js';
import {
  checkDirectory,
  crossTenantGrant,
  findApp,
  type SandboxApp,
  type SandboxDirectory,
  SEEDED_DIRECTORY,
  tenantOfApp,
  tenantOfMailbox,
} from './directory.js';
import { type ImapFaultProxy, startImapFaultProxy } from './imap-fault-proxy.js';
import {
  type Endpoint,
  EXCHANGE_AUDIENCE,
  type MailServers,
  startMailServers,
} from './mail-servers.js';
import { checkSandboxPackages } from './packages.js';
import { issueCertificate } from './pki.js';
import { loadOrCreateSandboxCa } from './sandbox-ca.js';
import { prepareSandboxDir } from './sandbox-folder.js';
import { seedMailboxes } from './seed-mail.js';
import { startTokenService, type TokenService } from './token-service.js';

export interface SandboxOptions {
  /** Folder for everything it writes; kept by stop(). @default a temporary folder, removed by stop() */
  dir?: string;
  /**
   * Fixed ports: the token service on N, IMAP N+1, SMTP N+2, POP3 N+5
   * (Dovecot's own IMAP N+3 and its LMTP N+4). @default free ports
   */
  portBase?: number;
  /** Tenants, mailboxes and apps. @default SEEDED_DIRECTORY (contoso.test and fabrikam.test) */
  directory?: SandboxDirectory;
  /** Lifetime of access tokens in seconds. @default 3599, as Entra */
  tokenLifetimeSeconds?: number;
  /** What NODE_EXTRA_CA_CERTS held, to keep trusting it. @default process.env.NODE_EXTRA_CA_CERTS */
  presetExtraCa?: string;
}

/** Misbehaviour on demand, as Microsoft 365 shows it. */
export type SandboxFault =
  /** The next token requests are answered with this status (Entra's throttling and outages). */
  | { kind: 'token'; status: 429 | 500 | 503; count?: number; retryAfterSeconds?: number }
  /** The next IMAP commands get `NO Request is throttled. Suggested Backoff Time: ms milliseconds`. */
  | { kind: 'imap-throttle'; ms: number; count?: number }
  /** The next IMAP commands end their session with `* BYE Session invalidated - AccessTokenExpired`. */
  | { kind: 'imap-bye'; count?: number }
  /** The next SMTP commands of `stage` get `reply`, e.g. `535 5.7.139 …` at AUTH, `451 4.7.500 …` at MAIL. */
  | { kind: 'smtp'; reply: string; stage?: 'auth' | 'mail'; count?: number }
  /** Tokens issued from now on live `seconds`; IMAP sessions end with `* BYE … AccessTokenExpired` at expiry. */
  | { kind: 'token-lifetime'; seconds: number }
  /** Forgets the token, IMAP and SMTP faults not given yet. */
  | { kind: 'clear' };

export interface Sandbox {
  readonly dir: string;
  /** The directory, with grants as they are now. */
  readonly directory: SandboxDirectory;
  /** Settings for the first app of the directory, as environment variables. */
  readonly env: Readonly<Record<string, string>>;
  /** Settings for the app with this name or client id (its own tenant's id). */
  envFor(app: string): Record<string, string>;
  readonly endpoints: {
    authority: string;
    imap: { host: string; port: number };
    smtp: { host: string; port: number };
    /** Implicit TLS; tokens need POP.AccessAsApp. */
    pop3: { host: string; port: number };
  };
  /**
   * What `Add-MailboxPermission` (and SendAs) does: the app may open and send
   * as `mailbox`. A mailbox of another tenant of the directory is refused
   * (SANDBOX_GRANT_CROSS_TENANT), as Exchange knows only its own tenant's apps.
   */
  grant(app: string, mailbox: string): Promise<void>;
  revoke(app: string, mailbox: string): Promise<void>;
  fault(fault: SandboxFault): void;
  /** Processes of the mail servers (Dovecot's process group). */
  processIds(): Promise<number[]>;
  stop(): Promise<void>;
}

/** Commands of a selected or authenticated session: where Exchange throttles and where an expiry shows. */
const MAILBOX_COMMANDS = /^\S+\s+(?:UID\s+)?(?:SELECT|EXAMINE|FETCH|SEARCH|LIST|STATUS|APPEND)\b/i;

export async function startSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  checkSandboxPackages();
  const directory = structuredClone(options.directory ?? SEEDED_DIRECTORY);
  checkDirectory(directory, 'given to startSandbox');
  const temporary = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'mailbridge-sandbox-'));
  prepareSandboxDir(dir);
  const base = options.portBase;
  const at = (offset: number) => (base === undefined ? undefined : base + offset);
  const { ca, certificatePath, nodeExtraCaPath } = loadOrCreateSandboxCa(
    dir,
    options.presetExtraCa ?? process.env.NODE_EXTRA_CA_CERTS,
  );
  const credentials = appCredentials(dir, directory.apps);

  let tokenService: TokenService | undefined;
  let mailServers: MailServers | undefined;
  let proxy: ImapFaultProxy | undefined;
  const stopAll = async () => {
    await proxy?.close();
    await mailServers?.stop();
    await tokenService?.close();
    if (temporary) rmSync(dir, { recursive: true, force: true });
  };
  try {
    const service = await startTokenService({
      ca,
      tenantId: directory.tenant.id,
      tenantDomain: directory.tenant.domain,
      ...(base === undefined ? {} : { port: base }),
      ...(options.tokenLifetimeSeconds
        ? { tokenLifetimeSeconds: options.tokenLifetimeSeconds }
        : {}),
    });
    tokenService = service;
    for (const tenant of directory.otherTenants ?? []) {
      service.addTenant({ tenantId: tenant.id, domains: [tenant.domain] });
    }
    for (const app of directory.apps) {
      const credential = credentials.get(app.clientId) as AppCredential;
      service.registerApp({
        tenantId: tenantOfApp(directory, app).id,
        clientId: app.clientId,
        displayName: app.name,
        ...(credential.secret
          ? { secrets: [{ value: credential.secret }] }
          : { certificates: [credential.certificatePem as string] }),
        roles: app.roles.length > 0 ? { [EXCHANGE_AUDIENCE]: [...app.roles] } : {},
      });
    }
    mailServers = await startMailServers({
      tokenService: service,
      ca,
      dir: join(dir, 'servers'),
      submission: 'node',
      pop3: true,
      ports: { imap: at(3), smtp: at(2), lmtp: at(4), pop3: at(5) },
      ...(temporary ? { removeOnStop: dir } : {}),
    });
    seedMailboxes(mailServers.mailDir, directory.mailboxes);
    for (const app of directory.apps) {
      for (const mailbox of app.mailboxes) await mailServers.grantMailbox(app.clientId, mailbox);
    }
    proxy = await startImapFaultProxy(mailServers.imap, { ca, port: at(1) });
  } catch (error) {
    await stopAll();
    throw error;
  }

  const token = tokenService;
  const servers = mailServers;
  const imapProxy = proxy;
  const endpoints = {
    authority: token.url,
    imap: { host: imapProxy.host, port: imapProxy.port },
    smtp: servers.smtp,
    pop3: servers.pop3 as Endpoint,
  };
  const appOrThrow = (nameOrId: string): SandboxApp => {
    const app = findApp(directory, nameOrId);
    if (app) return app;
    const suggestion = closestName(
      nameOrId,
      directory.apps.map((a) => a.name),
    );
    throw new ConfigurationError({
      code: 'SANDBOX_APP_UNKNOWN',
      message: `The sandbox has no app ${nameOrId}${suggestion ? ` (did you mean ${suggestion}?)` : ''}`,
      remedy: `Name one of: ${directory.apps.map((a) => a.name).join(', ')}.`,
    });
  };
  const envFor = (nameOrId: string): Record<string, string> => {
    const app = appOrThrow(nameOrId);
    const credential = credentials.get(app.clientId) as AppCredential;
    return {
      AZURE_TENANT_ID: tenantOfApp(directory, app).id,
      AZURE_CLIENT_ID: app.clientId,
      ...(credential.secret
        ? { AZURE_CLIENT_SECRET: credential.secret }
        : { AZURE_CLIENT_CERTIFICATE_PATH: credential.certificatePath }),
      AZURE_AUTHORITY_HOST: endpoints.authority,
      MAILBRIDGE_CA_FILE: certificatePath,
      NODE_EXTRA_CA_CERTS: nodeExtraCaPath,
      MAILBRIDGE_IMAP_HOST: endpoints.imap.host,
      MAILBRIDGE_IMAP_PORT: String(endpoints.imap.port),
      MAILBRIDGE_SMTP_HOST: endpoints.smtp.host,
      MAILBRIDGE_SMTP_PORT: String(endpoints.smtp.port),
      MAILBRIDGE_POP_HOST: endpoints.pop3.host,
      MAILBRIDGE_POP_PORT: String(endpoints.pop3.port),
    };
  };
  let stopped: Promise<void> | undefined;
  return {
    dir,
    directory,
    env: envFor((directory.apps[0] as SandboxApp).clientId),
    envFor,
    endpoints,
    async grant(nameOrId, mailbox) {
      const app = appOrThrow(nameOrId);
      const across = crossTenantGrant(directory, app, mailbox);
      if (across) {
        throw new ConfigurationError({
          code: 'SANDBOX_GRANT_CROSS_TENANT',
          message: `Cannot grant ${app.name} access to ${mailbox}: ${across}`,
          remedy: `Grant it a mailbox of its own tenant, or use an app of ${tenantOfMailbox(directory, mailbox)?.domain ?? 'that tenant'} (\`mailbridge sandbox status\` lists them).`,
        });
      }
      await servers.grantMailbox(app.clientId, mailbox);
      const address = mailbox.toLowerCase();
      if (!app.mailboxes.includes(address)) app.mailboxes.push(address);
    },
    async revoke(nameOrId, mailbox) {
      const app = appOrThrow(nameOrId);
      await servers.revokeMailbox(app.clientId, mailbox);
      app.mailboxes = app.mailboxes.filter((m) => m !== mailbox.toLowerCase());
    },
    fault(fault) {
      switch (fault.kind) {
        case 'token':
          token.failNext(fault.count ?? 1, {
            status: fault.status,
            ...(fault.retryAfterSeconds === undefined
              ? {}
              : { retryAfterSeconds: fault.retryAfterSeconds }),
          });
          return;
        case 'imap-throttle':
          imapProxy.throttleNext(fault.count ?? 1, fault.ms, MAILBOX_COMMANDS);
          return;
        case 'imap-bye':
          imapProxy.byeNext(fault.count ?? 1, MAILBOX_COMMANDS);
          return;
        case 'smtp':
          servers.replySmtpNext(fault.count ?? 1, fault.stage ?? 'auth', fault.reply);
          return;
        case 'token-lifetime':
          token.setTokenLifetime(fault.seconds);
          return;
        case 'clear':
          token.clearFaults();
          imapProxy.clearFaults();
          servers.clearSmtpReplies();
          return;
      }
    },
    processIds: () => servers.processIds(),
    stop() {
      stopped ??= stopAll();
      return stopped;
    },
  };
}

interface AppCredential {
  secret?: string;
  certificatePem?: string;
  /** PEM with the private key and the certificate, for AZURE_CLIENT_CERTIFICATE_PATH. */
  certificatePath: string;
}

/** Each app's secret or certificate, made once and kept under `dir/apps` (mode 0600). */
function appCredentials(dir: string, apps: readonly SandboxApp[]): Map<string, AppCredential> {
  const folder = join(dir, 'apps');
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  const result = new Map<string, AppCredential>();
  for (const app of apps) {
    if (app.credential === 'secret') {
      const path = join(folder, `${app.name}.secret`);
      if (!existsSync(path)) {
        writeFileSync(path, `sbx~${randomBytes(24).toString('base64url')}`, { mode: 0o600 });
      }
      result.set(app.clientId, { secret: readFileSync(path, 'utf8'), certificatePath: path });
      continue;
    }
    const path = join(folder, `${app.name}.pem`);
    if (!existsSync(path)) {
      const issued = issueCertificate({ commonName: `mailbridge sandbox ${app.name}` });
      writeFileSync(path, `${issued.keys.privateKeyPem}${issued.certificatePem}`, { mode: 0o600 });
    }
    const pem = readFileSync(path, 'utf8');
    const certificatePem = pem.slice(pem.indexOf('-----BEGIN CERTIFICATE-----'));
    result.set(app.clientId, { certificatePem, certificatePath: path });
  }
  return result;
}
