/**
 * Real mail servers for integration tests: Debian's Dovecot 2.3 (IMAP over
 * implicit TLS, LMTP) and Postfix 3.7 (submission with STARTTLS), started on
 * 127.0.0.1 and free ports with certificates from the run's test CA, their
 * whole state in one temporary folder.
 *
 * They take SASL XOAUTH2 the way Exchange Online does for app-only access: a
 * login succeeds only with a valid access token of the test token service
 * for Exchange's audience that carries `IMAP.AccessAsApp` (IMAP) or
 * `SMTP.SendAsApp` (SMTP), and only for a mailbox the token's app has been
 * granted with `grantMailbox` (what `Add-MailboxPermission` does). Basic
 * authentication (PLAIN, LOGIN) is refused, as on a tenant with it disabled,
 * except for the `passwordUsers` a test names (another provider's mailboxes).
 *
 * Postfix hands every recipient, whatever its domain, to Dovecot over LMTP,
 * so a message a test sends can be read back over IMAP. Mailboxes are any
 * address and are created on first use.
 *
 * As root it runs Dovecot's processes as the Debian packages' system users
 * and takes Postfix for submission. As any other user, Dovecot runs as that
 * user (its own base_dir, no chroot) and submission is `smtp-server` in this
 * process delivering by LMTP (submission-server.ts): Postfix needs root.
 * Needs the Debian packages scripts/test.sh installs (see packages.ts).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { readdir, readFile, readlink, rename, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { signalProcessGroup } from '../util/process.js';
import { type Issued, issueServerCertificate } from './pki.js';
import { canConnect, delay, freePorts, waitUntilReady } from './server-readiness.js';
import { type SubmissionServer, startSubmissionServer } from './submission-server.js';
import { loadTestCa } from './test-ca.js';
import type { TokenService } from './token-service.js';

export const EXCHANGE_AUDIENCE = 'https://outlook.office365.com';
export const IMAP_ROLE = 'IMAP.AccessAsApp';
export const SMTP_ROLE = 'SMTP.SendAsApp';
/** Exchange Online's application permission High Volume Email requires. */
export const HVE_ROLE = 'Mail.Send';
/** Exchange Online's application permission for POP. */
export const POP_ROLE = 'POP.AccessAsApp';
/**
 * Exchange Online's IMAP capabilities without the `AUTH=` entries,
 * which Dovecot adds from auth_mechanisms. Dovecot still carries out every
 * command it knows; clients just have no reason to send them.
 */
export const EXCHANGE_IMAP_CAPABILITIES =
  'IMAP4 IMAP4rev1 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+';

export interface MailServersOptions {
  tokenService: TokenService;
  /**
   * The `aud` a token must carry, as Exchange Online requires its own
   * resource. @default 'https://outlook.office365.com'
   */
  audience?: string;
  /**
   * SASL mechanisms offered (IMAP `AUTH=`, SMTP `AUTH`). Exchange Online
   * offers PLAIN and XOAUTH2 only; add `oauthbearer` to test RFC 7628 clients
   * (imapflow prefers OAUTHBEARER whenever it is offered). PLAIN and LOGIN
   * are always refused. @default ['xoauth2', 'plain']
   */
  mechanisms?: readonly ('xoauth2' | 'oauthbearer' | 'plain' | 'login')[];
  /**
   * IMAP capabilities advertised. `exchange`: only what Exchange Online
   * advertises (no CONDSTORE, QRESYNC, ESEARCH, …), so clients take the code
   * paths they take there. `dovecot`: Dovecot's full list. @default 'exchange'
   */
  capabilities?: 'exchange' | 'dovecot';
  /**
   * Mailboxes that log in with a password (AUTHENTICATE PLAIN), as on any
   * other provider's IMAP server: a migration source. Every other mailbox
   * still takes tokens only. @default none
   */
  passwordUsers?: Readonly<Record<string, string>>;
  /**
   * Largest message Dovecot stores, in bytes (the quota plugin's
   * `quota_max_mail_size`, a limit real admins set): larger APPENDs are
   * refused with `NO [LIMIT]`. @default no limit
   */
  maxMessageSize?: number;
  /**
   * Replies Postfix gives at MAIL FROM to these envelope senders instead of
   * accepting them (a Postfix access map), e.g. `535 5.7.139 Authentication
   * unsuccessful, basic authentication is disabled`: Exchange's refusals, for
   * tests of what a client makes of them. Postfix's own AUTH replies are fixed.
   */
  senderReplies?: Readonly<Record<string, string>>;
  /**
   * A second Postfix submission port standing in for High Volume Email
   * (`MailServers.hve`): tokens need the `Mail.Send` role and a grant for
   * `account`, MAIL FROM must be `account` (`550 5.7.62` otherwise), and
   * recipients outside `internalDomains` are refused with `550 5.5.105`.
   */
  hve?: { account: string; internalDomains: readonly string[] };
  /**
   * Also serve POP3 over implicit TLS (`servers.pop3`), taking tokens with
   * the `POP.AccessAsApp` role, as Exchange Online's POP. @default false
   */
  pop3?: boolean;
  /**
   * IMAP and POP3 sessions one mailbox may hold from one address at once
   * (Dovecot's `mail_max_userip_connections`, 10 by default), with IMAP's
   * process limits raised to match: one login process serving many clients
   * (it also carries their TLS) and room for as many `imap` processes. For
   * tests that keep hundreds of sessions open. @default Dovecot's own limits
   */
  maxUserConnections?: number;
  /** CA that issues the servers' certificates. @default the test run's CA (test-ca.ts) */
  ca?: Issued;
  /**
   * Folder for configuration, sockets, mail and logs, created when missing
   * and kept by stop(). @default a new temporary folder, removed by stop()
   */
  dir?: string;
  /** Fixed loopback ports instead of free ones the kernel picks. */
  ports?: { imap?: number; smtp?: number; lmtp?: number; pop3?: number };
  /**
   * A folder (around `dir`) removed when the servers stop, or when this
   * process dies without stopping them. @default `dir` when it is temporary
   */
  removeOnStop?: string;
  /**
   * What serves SMTP submission: Postfix (needs root) or `smtp-server` in
   * this process. @default 'postfix' as root, 'node' otherwise
   */
  submission?: 'postfix' | 'node';
}

export interface Endpoint {
  host: '127.0.0.1';
  port: number;
}

export interface MailServers {
  /** Dovecot, IMAP over implicit TLS. */
  readonly imap: Endpoint;
  /** Postfix submission, STARTTLS required before AUTH and mail. */
  readonly smtp: Endpoint;
  /** The High Volume Email stand-in, when `hve` was given. */
  readonly hve: Endpoint | undefined;
  /** Dovecot, POP3 over implicit TLS, when `pop3` was asked for. */
  readonly pop3: Endpoint | undefined;
  /** The temporary folder holding configuration, sockets, queues, mail and logs. */
  readonly dir: string;
  /** Where mailboxes live: `DOMAIN/USER/Maildir`, folders as subdirectories. */
  readonly mailDir: string;
  /** Lets the app's tokens open `mailbox` over IMAP and send as it over SMTP. */
  grantMailbox(appId: string, mailbox: string): Promise<void>;
  revokeMailbox(appId: string, mailbox: string): Promise<void>;
  /** Dovecot's and Postfix's logs, for the message of a failing test. */
  logs(): Promise<string>;
  /** Live processes of both servers (their process groups). */
  processIds(): Promise<number[]>;
  /** TCP sockets those processes listen on, from /proc. */
  listeningSockets(): Promise<ListeningSocket[]>;
  /** The next `count` SMTP commands of `stage` get `reply` (node submission only). */
  replySmtpNext(count: number, stage: 'auth' | 'mail', reply: string): void;
  clearSmtpReplies(): void;
  /** Stops both servers and removes a temporary folder. Safe to call twice. */
  stop(): Promise<void>;
}

export interface ListeningSocket {
  address: string;
  port: number;
  /** Name of a process holding it (`master`, `imap-login`, …). */
  process: string;
}

/** Existing system users: the Debian packages create dovecot, dovenull and postfix; mail is in base-passwd. */
const MAIL_USER = 'mail';
const DOVECOT_USER = 'dovecot';
const DOVECOT_LOGIN_USER = 'dovenull';
const POSTFIX_USER = 'postfix';

/** Names under Dovecot's base_dir. */
const AUTH_SOCKET = 'auth-postfix';
const LMTP_SOCKET = 'lmtp-postfix';

const POSTFIX_MASTER = '/usr/lib/postfix/sbin/master';
const SERVER_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' };

// Dovecot and Postfix start in well under a second on an idle machine; a CI
// machine running four test files at once has taken over 15 s.
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;

export async function startMailServers(options: MailServersOptions): Promise<MailServers> {
  const root = process.getuid?.() === 0;
  const submission = options.submission ?? (root ? 'postfix' : 'node');
  if (submission === 'postfix' && !root) {
    throw new Error('Postfix submission needs root: its master starts as root');
  }
  const layout = createLayout(options.dir, root, submission);
  const removeOnStop = options.dir === undefined ? layout.dir : options.removeOnStop;
  const servers = new RunningMailServers(layout, options, submission, removeOnStop);
  try {
    const [imapPort, smtpPort, lmtpPort, spare1, spare2] = await freePorts(5);
    const hvePort = options.hve ? spare1 : undefined;
    servers.imap = { host: '127.0.0.1', port: options.ports?.imap ?? (imapPort as number) };
    servers.smtp = { host: '127.0.0.1', port: options.ports?.smtp ?? (smtpPort as number) };
    servers.lmtpPort = options.ports?.lmtp ?? (lmtpPort as number);
    if (hvePort !== undefined) servers.hve = { host: '127.0.0.1', port: hvePort };
    if (options.pop3) {
      servers.pop3 = { host: '127.0.0.1', port: options.ports?.pop3 ?? (spare2 as number) };
    }
    writeConfiguration(
      layout,
      servers.imap.port,
      servers.smtp.port,
      servers.lmtpPort,
      options,
      hvePort,
      servers.pop3?.port,
    );
    await servers.start();
    return servers;
  } catch (err) {
    const logs = await servers.logs().catch(() => '');
    await servers.stop();
    if (err instanceof Error && logs) err.message += `\n--- mail server logs ---\n${logs}`;
    throw err;
  }
}

// ---------------------------------------------------------------------------
// Layout of the temporary folder

interface Layout {
  dir: string;
  /** Root: Dovecot's processes switch to the packages' system users; otherwise all run as us. */
  systemUsers: boolean;
  submission: 'postfix' | 'node';
  tls: { cert: string; key: string; ca: string };
  grants: string;
  dovecot: {
    config: string;
    baseDir: string;
    stateDir: string;
    passdbScript: string;
    log: string;
    /** Postfix smtpd → Dovecot auth (SASL). */
    authSocket: string;
    /** Postfix lmtp → Dovecot LMTP. */
    lmtpSocket: string;
  };
  mail: string;
  postfix: {
    configDir: string;
    queueDir: string;
    dataDir: string;
    log: string;
    senderLogins: string;
    senderReplies: string;
  };
  /** What the servers and commands print on stdout and stderr (start-up failures). */
  output: string;
}

function createLayout(
  folder: string | undefined,
  systemUsers: boolean,
  submission: 'postfix' | 'node',
): Layout {
  if (folder !== undefined) mkdirSync(folder, { recursive: true });
  const dir = folder ?? mkdtempSync(join(tmpdir(), 'mailbridge-mail-'));
  // Dovecot's and Postfix's unprivileged processes walk into it.
  chmodSync(dir, systemUsers ? 0o755 : 0o700);
  const d = (...parts: string[]) => join(dir, ...parts);
  const layout: Layout = {
    dir,
    systemUsers,
    submission,
    tls: { cert: d('tls', 'server.pem'), key: d('tls', 'server-key.pem'), ca: d('tls', 'ca.pem') },
    grants: d('grants.txt'),
    dovecot: {
      config: d('dovecot', 'dovecot.conf'),
      baseDir: d('dovecot', 'run'),
      stateDir: d('dovecot', 'state'),
      passdbScript: d('dovecot', 'passdb.lua'),
      log: d('dovecot.log'),
      authSocket: d('dovecot', 'run', AUTH_SOCKET),
      lmtpSocket: d('dovecot', 'run', LMTP_SOCKET),
    },
    mail: d('mail'),
    postfix: {
      configDir: d('postfix', 'etc'),
      queueDir: d('postfix', 'spool'),
      dataDir: d('postfix', 'data'),
      log: d('postfix.log'),
      senderLogins: d('postfix', 'etc', 'sender-logins.regexp'),
      senderReplies: d('postfix', 'etc', 'sender-replies.texthash'),
    },
    output: d('output.log'),
  };
  for (const folder of [
    d('tls'),
    d('dovecot'),
    layout.dovecot.stateDir,
    layout.postfix.configDir,
    layout.postfix.queueDir,
    layout.postfix.dataDir,
  ]) {
    mkdirSync(folder, { recursive: true, mode: 0o755 });
  }
  mkdirSync(layout.mail, { recursive: true, mode: 0o700 });
  if (!systemUsers) return layout;
  const [mailUid, mailGid] = systemUser(MAIL_USER);
  chownSync(layout.mail, mailUid, mailGid);
  if (submission === 'node') return layout;
  const [postfixUid] = systemUser(POSTFIX_USER);
  chownSync(layout.postfix.dataDir, postfixUid, 0);
  return layout;
}

// ---------------------------------------------------------------------------
// Configuration

function writeConfiguration(
  layout: Layout,
  imapPort: number,
  smtpPort: number,
  lmtpPort: number,
  options: MailServersOptions,
  hvePort?: number,
  pop3Port?: number,
): void {
  const ca = options.ca ?? loadTestCa();
  const tls = issueServerCertificate(ca);
  writeFileSync(layout.tls.cert, tls.certificatePem, { mode: 0o644 });
  writeFileSync(layout.tls.key, tls.keys.privateKeyPem, { mode: 0o600 });
  // The test CA's own folder is private to root; Dovecot's auth worker reads this copy.
  writeFileSync(layout.tls.ca, ca.certificatePem, { mode: 0o644 });
  // A kept folder keeps its grants across restarts.
  writeFileSync(layout.grants, '', { mode: 0o644, flag: 'a' });
  writeFileSync(layout.dovecot.passdbScript, passdbScript(layout, options), { mode: 0o644 });
  writeFileSync(
    layout.dovecot.config,
    dovecotConfig(layout, imapPort, lmtpPort, options, pop3Port),
    {
      mode: 0o644,
    },
  );
  if (layout.submission === 'node') return;
  const mainCf = join(layout.postfix.configDir, 'main.cf');
  const masterCf = join(layout.postfix.configDir, 'master.cf');
  writeFileSync(mainCf, postfixMain(layout), { mode: 0o644 });
  writeFileSync(masterCf, postfixMaster(smtpPort) + hveMaster(layout, hvePort, options.hve), {
    mode: 0o644,
  });
  writeFileSync(layout.postfix.senderLogins, '/^(.+)$/ $1\n', { mode: 0o644 });
  writeFileSync(layout.postfix.senderReplies, senderRepliesMap(options.senderReplies), {
    mode: 0o644,
  });
  // Postfix's commands wait, 300 ms at a time, until main.cf is a few seconds
  // old (so they never read a file still being edited): about 2.5 s at start-up.
  const aMinuteAgo = new Date(Date.now() - 60_000);
  for (const file of [mainCf, masterCf]) utimesSync(file, aMinuteAgo, aMinuteAgo);
}

function dovecotConfig(
  layout: Layout,
  imapPort: number,
  lmtpPort: number,
  options: MailServersOptions,
  pop3Port?: number,
): string {
  const me = userInfo();
  const [mailUid, mailGid] = layout.systemUsers ? systemUser(MAIL_USER) : [me.uid, me.gid];
  const internalUser = layout.systemUsers ? DOVECOT_USER : me.username;
  const loginUser = layout.systemUsers ? DOVECOT_LOGIN_USER : me.username;
  const mechanisms = options.mechanisms ?? ['xoauth2', 'plain'];
  return `# Generated by src/sandbox/mail-servers.ts
instance_name = mailbridge-test-${imapPort}
base_dir = ${layout.dovecot.baseDir}
state_dir = ${layout.dovecot.stateDir}
log_path = ${layout.dovecot.log}
protocols = imap lmtp${pop3Port === undefined ? '' : ' pop3'}
listen = 127.0.0.1
shutdown_clients = yes

default_internal_user = ${internalUser}
default_login_user = ${loginUser}
${layout.systemUsers ? '' : `default_internal_group = ${groupName(me.gid)}\n`}
first_valid_uid = ${mailUid}
last_valid_uid = ${mailUid}

ssl = required
ssl_cert = <${layout.tls.cert}
ssl_key = <${layout.tls.key}
ssl_min_protocol = TLSv1.2
# Trust for the Lua passdb's HTTPS calls to the token service.
ssl_client_ca_file = ${layout.tls.ca}

${options.capabilities === 'dovecot' ? '' : `imap_capability = ${EXCHANGE_IMAP_CAPABILITIES}\n`}auth_mechanisms = ${mechanisms.join(' ')}
disable_plaintext_auth = yes
auth_failure_delay = 0
auth_cache_size = 0
auth_verbose = yes

passdb {
  driver = lua
  args = file=${layout.dovecot.passdbScript} blocking=yes
}
userdb {
  driver = static
  args = uid=${mailUid} gid=${mailGid} home=${layout.mail}/%Ld/%Ln allow_all_users=yes
}
# Folders as plain directories: Exchange allows dots in folder names (v1.2, a..b), which the
# default Maildir++ layout refuses. INBOX stays the Maildir itself (the archive bench seeds it).
mail_location = maildir:~/Maildir:LAYOUT=fs:INBOX=~/Maildir
${
  options.maxMessageSize === undefined
    ? ''
    : `mail_plugins = $mail_plugins quota\nplugin {\n  quota = count:User quota\n  quota_vsizes = yes\n  quota_max_mail_size = ${options.maxMessageSize}\n}\n`
}
# No mailbox list index: when the first IMAP login to a new mailbox meets its first LMTP delivery,
# one process can wait for dovecot.list.index.log while the other holds it and waits in turn; fcntl
# answers EDEADLK, Dovecot 2.3.19 panics, and Postfix defers the message for minutes (3 of 105 runs
# of mail-servers.test.ts, three at a time, failed so; none of 105 without the index).
mailbox_list_index = no
namespace inbox {
  inbox = yes
  separator = /
}

service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = ${imapPort}
    ssl = yes
  }
}
${pop3Port === undefined ? '' : pop3Listener(pop3Port)}${layout.submission === 'postfix' ? postfixListeners() : lmtpListener(lmtpPort)}
${layout.systemUsers ? '' : NO_CHROOT}
${layout.systemUsers || pop3Port === undefined ? '' : NO_CHROOT_POP3}
${REUSED_PROCESSES}${pop3Port === undefined ? '' : REUSED_POP3_PROCESSES}
${options.maxUserConnections === undefined ? '' : manySessions(options.maxUserConnections)}
# Without the auth penalty listener, anvil adds no delay after failed logins
# (up to 15 s per client IP otherwise), so failure tests stay fast.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
`;
}

/**
 * Dovecot's default starts a new login process for every connection and a
 * new `imap` process for every session (service_count = 1, so that no state
 * of one user can reach the next). That is most of the CPU a login costs
 * here: 100 XOAUTH2 logins took 8 s of Dovecot's CPU with it, 3.9 s with one
 * long-lived login process, 1.1 s when `imap` processes serve one session
 * after another as well. Every mailbox of these servers has the same system
 * user, which is what Dovecot asks for reusing them.
 */
const REUSED_PROCESSES = `service imap-login {
  service_count = 0
  process_min_avail = 1
}
service imap {
  service_count = 100
}
`;
const REUSED_POP3_PROCESSES = `service pop3-login {
  service_count = 0
  process_min_avail = 1
}
service pop3 {
  service_count = 100
}
`;

/**
 * Room for `perUser` sessions per mailbox and address, and for about a
 * thousand in all: the one login process serves up to 2048 (not 1000,
 * Dovecot's default), each session has its own `imap` process (up to 1024),
 * and anvil a connection from each.
 */
function manySessions(perUser: number): string {
  return `mail_max_userip_connections = ${perUser}
service imap-login {
  client_limit = 2048
}
service anvil {
  client_limit = 2048
}
`;
}

/** Where Postfix hands mail and logins to Dovecot. */
function postfixListeners(): string {
  return `service lmtp {
  unix_listener ${LMTP_SOCKET} {
    mode = 0600
    user = ${POSTFIX_USER}
  }
}
service auth {
  unix_listener ${AUTH_SOCKET} {
    mode = 0600
    user = ${POSTFIX_USER}
  }
}`;
}

/** LMTP on a loopback port, for the submission server of this process. */
/** POP3 over implicit TLS on loopback only (the plain listener disabled). */
function pop3Listener(port: number): string {
  return `service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    address = 127.0.0.1
    port = ${port}
    ssl = yes
  }
}
`;
}

function lmtpListener(lmtpPort: number): string {
  return `service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = ${lmtpPort}
  }
}`;
}

/** Without root, nothing can chroot (login processes and anvil do by default). */
const NO_CHROOT = `service imap-login {
  chroot =
}
service anvil {
  chroot =
}`;
const NO_CHROOT_POP3 = `service pop3-login {
  chroot =
}`;

function postfixMain(layout: Layout): string {
  return `# Generated by src/sandbox/mail-servers.ts
compatibility_level = 3.6
queue_directory = ${layout.postfix.queueDir}
data_directory = ${layout.postfix.dataDir}
mail_owner = ${POSTFIX_USER}
setgid_group = postdrop
maillog_file = ${layout.postfix.log}
maillog_file_prefixes = ${layout.dir}

myhostname = mail.mailbridge.test
mydomain = mailbridge.test
myorigin = $myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
smtputf8_enable = no
# Clients on 127.0.0.1 would count as local and get missing Date:, From: and
# Message-ID: headers added; a message must arrive as it was sent.
local_header_rewrite_clients =

# Every recipient domain is a virtual mailbox domain delivered into Dovecot.
virtual_mailbox_domains = static:all
virtual_transport = lmtp:unix:${layout.dovecot.lmtpSocket}
smtpd_reject_unlisted_recipient = no

smtpd_tls_cert_file = ${layout.tls.cert}
smtpd_tls_key_file = ${layout.tls.key}
smtpd_tls_security_level = encrypt
smtpd_tls_auth_only = yes
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = ${layout.dovecot.authSocket}
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
# As Exchange Online without SendAs rights: the envelope sender must be the
# mailbox the client authenticated as (each address is owned by itself).
# Unauthenticated clients are refused at MAIL FROM ("not logged in").
smtpd_sender_login_maps = regexp:${layout.postfix.senderLogins}
smtpd_sender_restrictions = check_sender_access texthash:${layout.postfix.senderReplies}, reject_sender_login_mismatch
`;
}

function postfixMaster(smtpPort: number): string {
  // No `smtp inet` line: nothing on port 25. Nothing chrooted: the queue is a temp folder.
  const services: [
    name: string,
    type: string,
    priv: string,
    wakeup: string,
    max: string,
    cmd: string,
  ][] = [
    [`127.0.0.1:${smtpPort}`, 'inet', 'n', '-', '-', 'smtpd -o syslog_name=postfix/submission'],
    ['pickup', 'unix', 'n', '60', '1', 'pickup'],
    ['cleanup', 'unix', 'n', '-', '0', 'cleanup'],
    ['qmgr', 'unix', 'n', '300', '1', 'qmgr'],
    ['rewrite', 'unix', '-', '-', '-', 'trivial-rewrite'],
    ['bounce', 'unix', '-', '-', '0', 'bounce'],
    ['defer', 'unix', '-', '-', '0', 'bounce'],
    ['trace', 'unix', '-', '-', '0', 'bounce'],
    ['verify', 'unix', '-', '-', '1', 'verify'],
    ['flush', 'unix', 'n', '1000?', '0', 'flush'],
    ['proxymap', 'unix', '-', '-', '-', 'proxymap'],
    ['smtp', 'unix', '-', '-', '-', 'smtp'],
    ['relay', 'unix', '-', '-', '-', 'smtp'],
    ['showq', 'unix', 'n', '-', '-', 'showq'],
    ['error', 'unix', '-', '-', '-', 'error'],
    ['retry', 'unix', '-', '-', '-', 'error'],
    ['discard', 'unix', '-', '-', '-', 'discard'],
    ['lmtp', 'unix', '-', '-', '-', 'lmtp'],
    ['anvil', 'unix', '-', '-', '1', 'anvil'],
    ['tlsmgr', 'unix', '-', '1000?', '1', 'tlsmgr'],
    ['scache', 'unix', '-', '-', '1', 'scache'],
    ['postlog', 'unix-dgram', 'n', '-', '1', 'postlogd'],
  ];
  const lines = services.map(
    ([name, type, priv, wakeup, max, cmd]) => `${name} ${type} ${priv} - n ${wakeup} ${max} ${cmd}`,
  );
  return `# Generated by src/sandbox/mail-servers.ts\n${lines.join('\n')}\n`;
}

/**
 * The High Volume Email stand-in's master.cf line and its two access maps:
 * its own SASL service name (the Lua passdb then asks for Mail.Send), MAIL
 * FROM only the HVE account, recipients only in the internal domains.
 */
function hveMaster(
  layout: Layout,
  port: number | undefined,
  hve: MailServersOptions['hve'],
): string {
  if (port === undefined || !hve) return '';
  const senders = join(layout.postfix.configDir, 'hve-senders.regexp');
  const recipients = join(layout.postfix.configDir, 'hve-recipients.regexp');
  const literal = (text: string) => text.replace(/[^a-z0-9@_-]/gi, (c) => `\\${c}`);
  writeFileSync(
    senders,
    `/^${literal(hve.account)}$/ DUNNO\n/./ 550 5.7.62 MAIL FROM must be the HVE account\n`,
    { mode: 0o644 },
  );
  writeFileSync(
    recipients,
    `${hve.internalDomains.map((d) => `/@${literal(d)}$/ DUNNO\n`).join('')}/./ 550 5.5.105 High Volume Email takes internal recipients only\n`,
    { mode: 0o644 },
  );
  return `127.0.0.1:${port} inet n - n - - smtpd -o syslog_name=postfix/hve -o smtpd_sasl_service=hve -o smtpd_sender_restrictions=check_sender_access,regexp:${senders},reject_sender_login_mismatch -o smtpd_recipient_restrictions=check_recipient_access,regexp:${recipients},permit_sasl_authenticated,reject\n`;
}

/** A Postfix texthash access map: `address reply` lines; replies are one line each. */
function senderRepliesMap(replies: Readonly<Record<string, string>> = {}): string {
  return Object.entries(replies)
    .map(([sender, reply]) => {
      if (!/^\S+$/.test(sender) || /[\r\n]/.test(reply)) {
        throw new Error(`sender reply must be one address and one line: ${sender} ${reply}`);
      }
      return `${sender} ${reply}\n`;
    })
    .join('');
}

/**
 * The Lua passdb. Dovecot's own `oauth2` passdb cannot check app-only
 * tokens (it wants the token to name the user), so this script asks the
 * token service's introspection endpoint with Dovecot's built-in HTTP client
 * (`dovecot.http`, TLS trusting ssl_client_ca_file) and decides itself.
 */
function passdbScript(layout: Layout, options: MailServersOptions): string {
  const url = `${options.tokenService.url}/_test/introspect`;
  const audience = options.audience ?? EXCHANGE_AUDIENCE;
  return `-- Generated by src/sandbox/mail-servers.ts
local cjson = require("cjson")

local INTROSPECT_URL = ${luaString(url)}
local AUDIENCE = ${luaString(audience)}
local GRANTS_FILE = ${luaString(layout.grants)}
local REQUIRED_ROLE = {
  imap = ${luaString(IMAP_ROLE)},
  smtp = ${luaString(SMTP_ROLE)},
  hve = ${luaString(HVE_ROLE)},
  pop3 = ${luaString(POP_ROLE)},
}
local TOKEN_MECHANISMS = { XOAUTH2 = true, OAUTHBEARER = true }
local PASSWORD_USERS = {
${Object.entries(options.passwordUsers ?? {})
  .map(([user, password]) => `  [${luaString(user.toLowerCase())}] = ${luaString(password)},`)
  .join('\n')}
}

local http

function script_init()
  http = dovecot.http.client({ request_timeout_msecs = 5000, max_attempts = 1 })
  return 0
end

local function form_encode(value)
  return (string.gsub(value, "[^%w%-%._~]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

local function granted(appid, mailbox)
  local file = io.open(GRANTS_FILE, "r")
  if file == nil then
    return false
  end
  local found = false
  for line in file:lines() do
    local app, box = string.match(line, "^(%S+)%s+(%S+)$")
    if app == appid and box == mailbox then
      found = true
      break
    end
  end
  file:close()
  return found
end

local function has(list, wanted)
  if type(list) ~= "table" then
    return false
  end
  for _, value in ipairs(list) do
    if value == wanted then
      return true
    end
  end
  return false
end

-- IMAP: an accepted passdb result marked nologin makes imap-login answer at
-- once with our reason, "NO [CONTACTADMIN] AUTHENTICATE failed.", close to
-- Exchange's "NO AUTHENTICATE failed.". A plain mismatch would answer
-- "NO [AUTHENTICATIONFAILED] Authentication failed." after a
-- "+ <JSON error>" round for XOAUTH2 and up to 500 ms in Dovecot's failure
-- queue, which auth_failure_delay = 0 does not skip (it ignores nodelay on a
-- failed result). Postfix ignores nologin and would let the client in, so
-- every other service gets the mismatch: Postfix then answers
-- "535 5.7.8 Error: authentication failed".
local function refuse(req, why)
  req:log_info("app-only login refused: " .. why)
  if req.service == "imap" then
    return dovecot.auth.PASSDB_RESULT_OK,
      { nologin = "y", nodelay = "y", reason = "AUTHENTICATE failed." }
  end
  return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, ""
end

local function check(req, token)
  local role = REQUIRED_ROLE[req.service]
  if role == nil then
    return refuse(req, "service " .. tostring(req.service) .. " takes no app-only tokens")
  end
  if not TOKEN_MECHANISMS[req.mech] then
    return refuse(req, "basic authentication is disabled (" .. tostring(req.mech) .. ")")
  end
  if token == nil or token == "" then
    return refuse(req, "no token")
  end
  local request = http:request({ url = INTROSPECT_URL, method = "POST" })
  request:add_header("Content-Type", "application/x-www-form-urlencoded")
  request:set_payload("token=" .. form_encode(token) .. "&audience=" .. form_encode(AUDIENCE))
  local response = request:submit()
  local status = response:status()
  if status ~= 200 then
    return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE,
      "token introspection answered " .. tostring(status)
  end
  local ok, answer = pcall(cjson.decode, response:payload())
  if not ok or type(answer) ~= "table" then
    return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "token introspection answer is not JSON"
  end
  if answer.active ~= true then
    return refuse(req, "token not valid (" .. tostring(answer.reason) .. ")")
  end
  local claims = answer.claims
  if not has(claims.roles, role) then
    return refuse(req, "token of app " .. tostring(claims.appid) .. " lacks role " .. role)
  end
  local mailbox = string.lower(req.user)
  if not granted(claims.appid, mailbox) then
    return refuse(req, "app " .. tostring(claims.appid) .. " has no permission on " .. mailbox)
  end
  return dovecot.auth.PASSDB_RESULT_OK, ""
end

-- XOAUTH2 and OAUTHBEARER hand the bearer token to the passdb as the
-- password, so every login of ours arrives here.
function auth_password_verify(req, password)
  local expected = PASSWORD_USERS[string.lower(req.user)]
  if expected ~= nil then
    if req.mech == "PLAIN" or req.mech == "LOGIN" then
      if password == expected then
        return dovecot.auth.PASSDB_RESULT_OK, ""
      end
      req:log_info("password login refused: wrong password")
    end
    return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, ""
  end
  return check(req, password)
end

-- Only credentials lookups (other mechanisms, doveadm auth lookup) come here,
-- without a token to check: refuse them.
function auth_passdb_lookup(req)
  req:log_info("app-only login refused: credentials lookup without a token (" .. tostring(req.mech) .. ")")
  return dovecot.auth.PASSDB_RESULT_USER_UNKNOWN, ""
end
`;
}

/** A Lua string literal: printable ASCII as is, every other byte as a decimal escape. */
function luaString(value: string): string {
  let out = '"';
  for (const byte of Buffer.from(value, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += byte >= 0x20 && byte < 0x7f && c !== '"' && c !== '\\' ? c : `\\${byte}`;
  }
  return `${out}"`;
}

// ---------------------------------------------------------------------------
// Processes

class RunningMailServers implements MailServers {
  imap: Endpoint = { host: '127.0.0.1', port: 0 };
  smtp: Endpoint = { host: '127.0.0.1', port: 0 };
  hve: Endpoint | undefined;
  pop3: Endpoint | undefined;
  lmtpPort = 0;
  private submissionServer: SubmissionServer | undefined;
  private readonly children: { child: ChildProcess; graceful: boolean }[] = [];
  private stopped = false;
  private grantUpdates: Promise<void> = Promise.resolve();
  private readonly watchdogs: ChildProcess[] = [];
  private readonly onExit = () => this.killNow();

  constructor(
    private readonly layout: Layout,
    private readonly options: MailServersOptions,
    private readonly submission: 'postfix' | 'node',
    /** The folder that is ours to remove, if any. */
    private readonly removeOnStop: string | undefined,
  ) {
    process.on('exit', this.onExit);
  }

  get dir(): string {
    return this.layout.dir;
  }

  get mailDir(): string {
    return this.layout.mail;
  }

  async start(): Promise<void> {
    const dovecot = this.spawnGroup('dovecot', ['-F', '-c', this.layout.dovecot.config], false);
    if (this.submission === 'node') {
      await waitUntilReady(dovecot, 'Dovecot', () => canConnect(this.imap.port), READY_TIMEOUT_MS);
      this.submissionServer = await startSubmissionServer({
        port: this.smtp.port,
        tls: {
          key: readFileSync(this.layout.tls.key, 'utf8'),
          cert: readFileSync(this.layout.tls.cert, 'utf8'),
        },
        refusal: (token, mailbox) => this.smtpRefusal(token, mailbox),
        senderReplies: lowercaseKeys(this.options.senderReplies),
        lmtp: { host: '127.0.0.1', port: this.lmtpPort },
        log: (line) => writeFileSync(this.layout.postfix.log, `${line}\n`, { flag: 'a' }),
      });
      return;
    }
    await Promise.all([
      // Dovecot's master creates every listener before it forks a service.
      waitUntilReady(dovecot, 'Dovecot', () => canConnect(this.imap.port), READY_TIMEOUT_MS),
      // `postfix check` creates the queue folders with their owners and modes;
      // it needs nothing of Dovecot's, so it runs while Dovecot starts.
      run('postfix', ['-c', this.layout.postfix.configDir, 'check'], this.layout.output),
    ]);
    // Not `postfix start-fg`: outside PID 1 its master still becomes a session
    // leader of its own, out of reach of the child we would hold. `master -d`
    // stays in the foreground; spawned detached it leads its own process
    // group, which it needs: on SIGTERM it signals that group and exits.
    const postfix = this.spawnGroup(
      POSTFIX_MASTER,
      ['-c', this.layout.postfix.configDir, '-d'],
      true,
    );
    await waitUntilReady(postfix, 'Postfix', () => canConnect(this.smtp.port), READY_TIMEOUT_MS);
  }

  replySmtpNext(count: number, stage: 'auth' | 'mail', reply: string): void {
    if (!this.submissionServer) throw new Error('SMTP replies on demand need node submission');
    this.submissionServer.replyNext(count, stage, reply);
  }

  clearSmtpReplies(): void {
    this.submissionServer?.clearReplies();
  }

  /** The Lua passdb's check, for the submission server of this process. */
  private async smtpRefusal(token: string, mailbox: string): Promise<string | undefined> {
    const audience = this.options.audience ?? EXCHANGE_AUDIENCE;
    const result = this.options.tokenService.introspect(token, { audience });
    if (!result.active || !result.claims) return `token not valid (${result.reason})`;
    const { appid, roles } = result.claims;
    if (!roles?.includes(SMTP_ROLE)) return `token of app ${appid} lacks role ${SMTP_ROLE}`;
    const grants = await readFile(this.layout.grants, 'utf8');
    if (!grants.split('\n').includes(grantLine(appid, mailbox))) {
      return `app ${appid} has no permission on ${mailbox.toLowerCase()}`;
    }
    return undefined;
  }

  grantMailbox(appId: string, mailbox: string): Promise<void> {
    const line = grantLine(appId, mailbox);
    return this.updateGrants((grants) => grants.add(line));
  }

  revokeMailbox(appId: string, mailbox: string): Promise<void> {
    const line = grantLine(appId, mailbox);
    return this.updateGrants((grants) => grants.delete(line));
  }

  async logs(): Promise<string> {
    const read = (path: string) => readFile(path, 'utf8').catch(() => '');
    const [dovecot, postfix, output] = await Promise.all([
      read(this.layout.dovecot.log),
      read(this.layout.postfix.log),
      read(this.layout.output),
    ]);
    return `== dovecot ==\n${dovecot}\n== postfix ==\n${postfix}\n== output ==\n${output}`;
  }

  async processIds(): Promise<number[]> {
    const groups = new Set(this.children.map(({ child }) => child.pid));
    return (await listProcesses())
      .filter((p) => groups.has(p.pgid) && p.state !== 'Z')
      .map((p) => p.pid);
  }

  async listeningSockets(): Promise<ListeningSocket[]> {
    const listening = await listeningTcpSockets();
    const found = new Map<string, ListeningSocket>();
    for (const pid of await this.processIds()) {
      const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
      const name = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '?')).trim();
      for (const fd of fds) {
        const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
        const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
        const socket = inode === undefined ? undefined : listening.get(inode);
        if (socket && !found.has(inode as string))
          found.set(inode as string, { ...socket, process: name });
      }
    }
    return [...found.values()];
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(this.children.map(({ child, graceful }) => stopGroup(child, graceful)));
    // SIGKILL is asynchronous: wait until every process of the groups is gone
    // (or a zombie: exited, waiting for its new parent to reap it).
    const deadline = Date.now() + STOP_TIMEOUT_MS;
    while ((await this.processIds()).length > 0 && Date.now() < deadline) await delay(10);
    await this.submissionServer?.close();
    for (const watchdog of this.watchdogs) signalProcessGroup(watchdog, 'SIGKILL');
    process.off('exit', this.onExit);
    if (this.removeOnStop) rmSync(this.removeOnStop, { recursive: true, force: true });
  }

  private spawnGroup(command: string, args: string[], graceful: boolean): ChildProcess {
    const output = openSync(this.layout.output, 'a');
    try {
      const child = spawn(command, args, {
        // Own process group: stop() signals the server and every process it forked.
        detached: true,
        stdio: ['ignore', output, output],
        env: SERVER_ENV,
      });
      child.on('error', () => {});
      this.children.push({ child, graceful });
      this.startWatchdog(child);
      return child;
    } finally {
      closeSync(output);
    }
  }

  /** Last resort when the test process exits without stop(): no waiting is possible here. */
  private killNow(): void {
    for (const { child } of this.children) signalProcessGroup(child, 'SIGKILL');
    for (const watchdog of this.watchdogs) signalProcessGroup(watchdog, 'SIGKILL');
    if (this.removeOnStop) rmSync(this.removeOnStop, { recursive: true, force: true });
  }

  /**
   * For a test process that dies without running any handler (SIGKILL, a
   * worker timeout): a shell that outlives it, notices within a second and
   * kills the server's process group, which would otherwise run on, holding
   * its ports. One per server, started with it: a process killed while the
   * next server starts must not leave the first behind.
   * (Debian's sh is dash: its kill takes no `--`.)
   */
  private startWatchdog(server: ChildProcess): void {
    if (!server.pid) return;
    const script =
      'while kill -0 "$1" 2>/dev/null; do sleep 1; done; ' +
      'kill -9 "-$3" 2>/dev/null; [ -z "$2" ] || rm -rf "$2"';
    const dir = this.removeOnStop ?? '';
    const watchdog = spawn(
      'sh',
      ['-c', script, 'mailbridge-mail-watchdog', String(process.pid), dir, String(server.pid)],
      { detached: true, stdio: 'ignore', env: SERVER_ENV },
    );
    watchdog.on('error', () => {});
    watchdog.unref();
    this.watchdogs.push(watchdog);
  }

  /**
   * One change at a time (concurrent read-modify-writes would lose grants),
   * each an atomic replace: the passdb reads the file on every login.
   */
  private updateGrants(change: (grants: Set<string>) => void): Promise<void> {
    const update = async () => {
      const text = await readFile(this.layout.grants, 'utf8');
      const grants = new Set(text.split('\n').filter((line) => line.length > 0));
      change(grants);
      const next = `${this.layout.grants}.next`;
      await writeFile(next, [...grants].map((line) => `${line}\n`).join(''), { mode: 0o644 });
      await rename(next, this.layout.grants);
    };
    const done = this.grantUpdates.then(update);
    this.grantUpdates = done.catch(() => {});
    return done;
  }
}

function lowercaseKeys(
  map: Readonly<Record<string, string>> = {},
): Readonly<Record<string, string>> {
  return Object.fromEntries(Object.entries(map).map(([key, value]) => [key.toLowerCase(), value]));
}

function grantLine(appId: string, mailbox: string): string {
  if (!/^\S+$/.test(appId) || !/^\S+$/.test(mailbox)) {
    throw new Error(`app id and mailbox must be single words: ${appId} ${mailbox}`);
  }
  return `${appId} ${mailbox.toLowerCase()}`;
}

/**
 * `graceful`: SIGTERM to the leader, which stops its own processes (Postfix's
 * master passes it to its group at once), then SIGKILL to whatever is left.
 * Otherwise SIGKILL to the whole group straight away: Dovecot takes over a
 * second to shut down cleanly, and its state is about to be deleted anyway.
 */
async function stopGroup(child: ChildProcess, graceful: boolean): Promise<void> {
  if (child.pid === undefined) return;
  const exited =
    child.exitCode !== null || child.signalCode !== null
      ? Promise.resolve()
      : new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (graceful) {
    try {
      process.kill(child.pid, 'SIGTERM');
    } catch {
      // Already gone.
    }
    await Promise.race([exited, delay(STOP_TIMEOUT_MS)]);
  }
  signalProcessGroup(child, 'SIGKILL');
  await Promise.race([exited, delay(STOP_TIMEOUT_MS)]);
}

/** Runs a command to completion, its output appended to `outputFile`; throws on failure. */
async function run(command: string, args: string[], outputFile: string): Promise<void> {
  const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
    execFile(command, args, { env: SERVER_ENV }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, output: stdout + stderr });
    });
  });
  if (output) await writeFile(outputFile, output, { flag: 'a' });
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} failed (${code}): ${output}`);
}

interface ProcessInfo {
  pid: number;
  pgid: number;
  state: string;
}

async function listProcesses(): Promise<ProcessInfo[]> {
  const entries = (await readdir('/proc')).filter((name) => /^\d+$/.test(name));
  const processes = await Promise.all(
    entries.map(async (name) => {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => undefined);
      if (stat === undefined) return undefined;
      // pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return { pid: Number(name), pgid: Number(pgrp), state: state ?? '?' };
    }),
  );
  return processes.filter((p): p is ProcessInfo => p !== undefined);
}

/** Listening TCP sockets by inode, from /proc/net/tcp and tcp6. */
async function listeningTcpSockets(): Promise<Map<string, Omit<ListeningSocket, 'process'>>> {
  const sockets = new Map<string, Omit<ListeningSocket, 'process'>>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(table, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const [, local, , state, , , , , , inode] = fields;
      if (state !== '0A' || !local || !inode) continue; // 0A: LISTEN
      const [hexAddress = '', hexPort = ''] = local.split(':');
      sockets.set(inode, { address: procAddress(hexAddress), port: Number.parseInt(hexPort, 16) });
    }
  }
  return sockets;
}

/** /proc/net shows addresses as 32-bit words in host (little-endian) order. */
function procAddress(hex: string): string {
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((word) =>
    (word.match(/../g) ?? []).reverse().map((b) => Number.parseInt(b, 16)),
  );
  if (bytes.length === 4) return bytes.join('.');
  const groups: string[] = [];
  for (let i = 0; i < bytes.length; i += 2) {
    groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  }
  return groups.join(':');
}

/** Name of a group, from /etc/group: Dovecot's settings take names, not ids. */
function groupName(gid: number): string {
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const [name, , id] = line.split(':');
    if (name && Number(id) === gid) return name;
  }
  throw new Error(`group ${gid} has no name in /etc/group`);
}

const users = new Map<string, [number, number]>();

/** uid and gid of a system user, from /etc/passwd. */
function systemUser(name: string): [number, number] {
  const known = users.get(name);
  if (known) return known;
  const passwd = readFileSync('/etc/passwd', 'utf8');
  for (const line of passwd.split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === name) {
      const ids: [number, number] = [Number(uid), Number(gid)];
      users.set(name, ids);
      return ids;
    }
  }
  throw new Error(`system user ${name} does not exist: install the packages in scripts/test.sh`);
}
