/**
 * `mailbridge token --for TOOL`: the snippet, used as it is printed by the
 * real tool from Debian (msmtp, mbsync with the KDE XOAUTH2 SASL plugin,
 * getmail6, offlineimap3), logs in to the test Dovecot/Postfix with XOAUTH2 through
 * `mailbridge token --show-token --cache FILE` and sends or fetches a
 * message. The cache path holds a quote, double quotes, `$`, a backslash and
 * spaces, so each tool's quoting is tested with it.
 */
import { type SpawnOptions, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appEnvironment } from '../helpers/app-env.js';
import {
  EXCHANGE_AUDIENCE,
  IMAP_ROLE,
  type MailServers,
  SMTP_ROLE,
  startMailServers,
} from '../helpers/mail-servers.js';
import { cliEnv, runCli } from '../helpers/run-cli.js';
import { runCliInProcess } from '../helpers/run-cli-in-process.js';
import { testCaPath } from '../helpers/test-ca.js';
import { startTokenService, type TokenService } from '../helpers/token-service.js';

const MAILBOX = 'helpdesk@contoso.example';
const SENT = 'team@contoso.example';

let service: TokenService;
let servers: MailServers;
let home: string;
let cache: string;
let env: Record<string, string>;

beforeAll(async () => {
  service = await startTokenService();
  servers = await startMailServers({ tokenService: service });
  const app = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE, SMTP_ROLE] } });
  await servers.grantMailbox(app.clientId, MAILBOX);
  home = await mkdtemp(join(tmpdir(), 'mailbridge-tools-'));
  await chmod(home, 0o755); // getmail's delivery runs as nobody (below)
  cache = join(home, `it's a "cache" $HOME \\ 100% dir`, 'token.json');
  env = {
    ...appEnvironment(service, app, { imap: servers.imap, smtp: servers.smtp }),
    // mbsync matches the certificate's DNS names only, not its IP address.
    MAILBRIDGE_IMAP_HOST: 'localhost',
    MAILBRIDGE_CA_FILE: testCaPath(),
    HOME: home,
  };
  // Something in the mailbox to fetch.
  const seeded = await runCli(
    [
      'send',
      '--from',
      MAILBOX,
      '--to',
      MAILBOX,
      '--subject',
      'seeded for the tools',
      '--text',
      'x',
    ],
    env,
    { timeoutMs: 60_000 },
  );
  if (seeded.code !== 0) throw new Error(seeded.stderr);
  await waitForMessage(mailboxDir(MAILBOX), 'seeded for the tools');
}, 120_000);

afterAll(async () => {
  await servers?.stop();
  await service?.close();
  await rm(home, { recursive: true, force: true });
});

async function snippet(tool: string): Promise<string> {
  const { code, stdout, stderr } = await runCli(
    ['token', '--for', tool, '--mailbox', MAILBOX, '--cache', cache],
    env,
  );
  expect(stderr).toBe('');
  expect(code).toBe(0);
  expect(stdout).not.toMatch(/eyJ[\w-]+\./); // a snippet, never a token
  return stdout;
}

describe('token --for', () => {
  it('msmtp sends a message with AUTH XOAUTH2', { tags: ['soak'], timeout: 60_000 }, async () => {
    const config = join(home, 'msmtprc');
    await writeFile(config, await snippet('msmtp'), { mode: 0o600 });
    const message = `From: ${MAILBOX}\r\nTo: ${SENT}\r\nSubject: sent by msmtp\r\n\r\nhello\r\n`;
    const run = await runTool('msmtp', ['-C', config, '-t'], message);
    expect(run.code, run.output).toBe(0);
    await waitForMessage(mailboxDir(SENT), 'sent by msmtp');
  });

  it('mbsync copies the mailbox with IMAP XOAUTH2 (Cyrus SASL plugin)', {
    tags: ['soak'],
    timeout: 60_000,
  }, async () => {
    const config = join(home, 'mbsyncrc');
    const text = await snippet('mbsync');
    expect(text).toContain(`mkdir -p '${`Mail/${MAILBOX}/`}'`);
    await mkdir(join(home, 'Mail', MAILBOX), { recursive: true });
    await writeFile(config, text, { mode: 0o600 });
    const run = await runTool('mbsync', ['-c', config, '-a']);
    expect(run.code, run.output).toBe(0);
    await waitForMessage(join(home, 'Mail', MAILBOX, 'INBOX'), 'seeded for the tools');
  });

  it('getmail fetches the inbox with IMAP XOAUTH2', {
    tags: ['soak'],
    timeout: 60_000,
  }, async () => {
    const getmailDir = join(home, 'getmail');
    await mkdir(getmailDir, { recursive: true });
    const maildir = join(home, 'Mail', 'getmail');
    for (const sub of ['cur', 'new', 'tmp']) await mkdir(join(maildir, sub), { recursive: true });
    // getmail refuses to deliver as root, which this test runs as: it delivers as nobody here.
    const { uid, gid } = systemUser('nobody');
    for (const sub of ['', 'cur', 'new', 'tmp']) await chown(join(maildir, sub), uid, gid);
    const text = (await snippet('getmail')).replace(
      `path = ~/Mail/${MAILBOX}/`,
      `path = ${maildir}/\nuser = nobody`,
    );
    await writeFile(join(getmailDir, 'getmailrc'), text, { mode: 0o600 });
    const run = await runTool('getmail', ['--getmaildir', getmailDir, '--rcfile', 'getmailrc']);
    expect(run.code, run.output).toBe(0);
    await waitForMessage(maildir, 'seeded for the tools');
  });

  it('offlineimap copies the mailbox with IMAP XOAUTH2', {
    tags: ['soak'],
    timeout: 60_000,
  }, async () => {
    const config = join(home, 'offlineimaprc');
    const text = await snippet('offlineimap');
    // Mail/<mailbox> is mbsync's folder above: offlineimap gets its own.
    const local = join(home, 'Mail', 'offlineimap');
    await writeFile(
      config,
      text.replace(`localfolders = ~/Mail/${MAILBOX}`, `localfolders = ${local}`),
      {
        mode: 0o600,
      },
    );
    const run = await runTool('offlineimap', ['-c', config, '-o', '-u', 'basic']);
    expect(run.code, run.output).toBe(0);
    expect(run.output).not.toMatch(/eyJ[\w-]+\./);
    await waitForMessage(join(local, 'INBOX'), 'seeded for the tools');
  });

  it('the tools shared one token request through the cache', { tags: ['soak'] }, () => {
    // beforeAll's send asked once for itself (no cache); the three tools' logins asked once in all.
    expect(service.tokenRequests).toBe(2);
  });

  it('quotes each value for its tool', async () => {
    const msmtp = await snippet('msmtp');
    expect(msmtp).toContain(`user ${MAILBOX}\n`);
    expect(msmtp).toContain(`'${cache.replaceAll("'", "'\\''")}'`);
    const mbsync = await snippet('mbsync');
    expect(mbsync).toContain(`User "${MAILBOX}"\n`);
    expect(mbsync).toContain("it'\\\\''s a \\\"cache\\\" $HOME \\\\ 100% dir");
    const getmail = await snippet('getmail');
    expect(getmail).toContain(JSON.stringify(cache));
    expect(getmail).toContain(`ca_certs = ${testCaPath()}\n`);
    const offlineimap = await snippet('offlineimap');
    expect(offlineimap).toContain(JSON.stringify(cache).replace('%', '%%'));
    expect(offlineimap).toContain('oauth2_access_token_eval = __import__("subprocess").run([');
  });

  it('refuses an unknown tool and --for without --mailbox with exit 2', async () => {
    const unknown = await runCliInProcess(['token', '--for', 'pine', '--mailbox', MAILBOX], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('--for takes one of mbsync, msmtp, getmail, offlineimap');
    const noMailbox = await runCliInProcess(['token', '--for', 'msmtp'], env);
    expect(noMailbox.code).toBe(2);
    expect(noMailbox.stderr).toContain('--for msmtp needs --mailbox ADDRESS');
  });
});

/** Dovecot's Maildir of a mailbox in the test servers' folder (home = mail/<domain>/<local>). */
function mailboxDir(address: string): string {
  const [local, domain] = address.split('@') as [string, string];
  return join(servers.dir, 'mail', domain, local, 'Maildir');
}

async function waitForMessage(maildir: string, subject: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    for (const sub of ['new', 'cur']) {
      const names = await readdir(join(maildir, sub)).catch(() => [] as string[]);
      for (const name of names) {
        const text = await readFile(join(maildir, sub, name), 'utf8').catch(() => '');
        if (text.includes(`Subject: ${subject}`)) return;
      }
    }
    if (Date.now() > deadline) throw new Error(`no message "${subject}" in ${maildir}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function runTool(
  command: string,
  args: string[],
  input?: string,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const options: SpawnOptions = { env: cliEnv(env), cwd: home, stdio: 'pipe' };
    const child = spawn(command, args, options);
    let output = '';
    child.stdout?.on('data', (chunk) => {
      output += chunk;
    });
    child.stderr?.on('data', (chunk) => {
      output += chunk;
    });
    child.stdin?.end(input);
    const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

function systemUser(name: string): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((entry) => entry.startsWith(`${name}:`));
  const [, , uid, gid] = (line ?? '').split(':');
  return { uid: Number(uid), gid: Number(gid) };
}
