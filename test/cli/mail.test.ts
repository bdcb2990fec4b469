/**
 * doctor, send, imap folders and imap fetch, run as the CLI against Dovecot
 * and Postfix that accept XOAUTH2 tokens from the local token service.
 */
import { randomInt } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { type AddressInfo, createConnection, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AccessToken,
  createTokenProvider,
  type TokenProvider,
} from '../../src/auth/token-provider.js';
import { createImapClient } from '../../src/clients/imap-client.js';
import { createSmtpTransport } from '../../src/clients/smtp-transport.js';
import { loadConfig } from '../../src/config/load.js';
import type { MailbridgeConfig } from '../../src/config/types.js';
import { runDoctor } from '../../src/doctor/run.js';
import { appEnvironment } from '../helpers/app-env.js';
import {
  EXCHANGE_AUDIENCE,
  IMAP_ROLE,
  type MailServers,
  SMTP_ROLE,
  startMailServers,
} from '../helpers/mail-servers.js';
import { issueServerCertificate } from '../helpers/pki.js';
import { runCli } from '../helpers/run-cli.js';
import { runCliInProcess } from '../helpers/run-cli-in-process.js';
import { loadTestCa } from '../helpers/test-ca.js';
import { startTokenService, type TokenService } from '../helpers/token-service.js';

const SENDER = 'reports@contoso.example';
const RECIPIENT = 'archive@contoso.example';

let service: TokenService;
let servers: MailServers;
let dir: string;
let env: Record<string, string>;
let config: MailbridgeConfig;

function envFor(app: {
  tenantId: string;
  clientId: string;
  secret: string | undefined;
}): Record<string, string> {
  return appEnvironment(service, app, { imap: servers.imap, smtp: servers.smtp });
}

beforeAll(async () => {
  service = await startTokenService();
  servers = await startMailServers({ tokenService: service });
  dir = await mkdtemp(join(tmpdir(), 'mailbridge-mail-'));
  const app = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE, SMTP_ROLE] } });
  await servers.grantMailbox(app.clientId, SENDER);
  await servers.grantMailbox(app.clientId, RECIPIENT);
  env = envFor(app);
  config = await loadConfig({ env });
}, 60_000);

afterAll(async () => {
  await servers?.stop();
  await service?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('mailbridge doctor', () => {
  it('passes every step on a granted mailbox', async () => {
    const { code, stdout } = await runCli(['doctor', '--mailbox', SENDER, '--json'], env);
    const report = JSON.parse(stdout) as { ok: boolean; steps: { name: string; status: string }[] };
    expect(report.ok).toBe(true);
    expect(code).toBe(0);
    expect(report.steps.map((s) => `${s.name}:${s.status}`)).toEqual([
      'configuration:passed',
      'token:passed',
      'token claims:passed',
      'imap connect:passed',
      'imap authenticate:passed',
      'imap list and select:passed',
      'smtp connect:passed',
      'smtp auth:passed',
    ]);
  });

  it('fails a mailbox the app was not granted at IMAP AUTHENTICATE, exit 3, and skips the rest', async () => {
    const { code, stdout } = await runCli(
      ['doctor', '--mailbox', 'ceo@contoso.example', '--imap', '--json'],
      env,
    );
    expect(code).toBe(3);
    const report = JSON.parse(stdout) as {
      ok: boolean;
      steps: { name: string; status: string; code?: string; fix?: string }[];
    };
    expect(report.ok).toBe(false);
    const failed = report.steps.find((s) => s.status === 'failed');
    expect(failed?.name).toBe('imap authenticate');
    expect(failed?.code).toBe('IMAP_AUTH_FAILED');
    // Claims were good, so the advice is Exchange's side, as a command with the values doctor knows.
    expect(failed?.fix).toMatch(
      /mailbridge setup exchange --tenant \S+ --app-id \S+ --object-id \S+ --mailbox ceo@contoso\.example/,
    );
    expect(report.steps.at(-1)).toMatchObject({ name: 'imap list and select', status: 'skipped' });
  });

  it('diagnoses a token without roles as delegated instead of application permissions', async () => {
    const app = service.registerApp();
    await servers.grantMailbox(app.clientId, SENDER);
    const { code, stdout } = await runCli(['doctor', '--mailbox', SENDER], envFor(app));
    expect(code).toBe(3);
    expect(stdout).toMatch(/\[FAIL\] token claims +TOKEN_NO_ROLES/);
    expect(stdout).toContain('delegated permissions');
    expect(stdout).toContain('application permissions');
  });

  it('fails an app with IMAP but without SMTP.SendAsApp at the claims step for --smtp', async () => {
    const app = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE] } });
    const report = await runDoctor(await loadConfig({ env: envFor(app) }), {
      mailbox: SENDER,
      smtp: true,
    });
    expect(report.ok).toBe(false);
    expect(report.steps.find((s) => s.status === 'failed')).toMatchObject({
      name: 'token claims',
      code: 'TOKEN_ROLE_MISSING',
    });
    expect(report.exitCode).toBe(3);
  });

  it('reports an unreachable IMAP server at the connect step with exit 4', async () => {
    const { code, stdout } = await runCli(
      ['doctor', '--mailbox', SENDER, '--imap', '--imap-port', '9', '--json'],
      env,
    );
    expect(code).toBe(4);
    const report = JSON.parse(stdout) as {
      steps: { name: string; status: string; code?: string }[];
    };
    expect(report.steps.find((s) => s.status === 'failed')).toMatchObject({
      name: 'imap connect',
      code: 'IMAP_UNREACHABLE',
    });
  });

  it('sends a test message when asked', async () => {
    const { code, stdout } = await runCli(
      ['doctor', '--mailbox', SENDER, '--smtp', '--send-test-to', RECIPIENT],
      env,
    );
    expect(code).toBe(0);
    expect(stdout).toMatch(/\[ok\] +smtp test message +accepted, Message-ID </);
  });
});

describe('mailbridge send, read back over IMAP', () => {
  it('delivers text and an attachment byte for byte', async () => {
    const attachment = Buffer.alloc(48 * 1024);
    for (let i = 0; i < attachment.length; i++) attachment[i] = (i * 31 + 7) % 256;
    const attachmentPath = join(dir, 'report.bin');
    await writeFile(attachmentPath, attachment);
    const text = `Nightly report ${Date.now()}\nSecond line with ümlauts.\n`;
    const subject = `report ${Date.now()}`;
    const sent = await runCli(
      [
        'send',
        '--from',
        SENDER,
        '--to',
        RECIPIENT,
        '--subject',
        subject,
        '--text',
        text,
        '--attach',
        attachmentPath,
      ],
      env,
    );
    expect(sent.stderr).toBe('');
    expect(sent.code).toBe(0);
    const messageId = sent.stdout.trim();
    expect(messageId).toMatch(/^<[^>]+>$/);

    const raw = await waitForMessage(RECIPIENT, messageId);
    const parsed = await simpleParser(raw);
    expect(parsed.subject).toBe(subject);
    expect(parsed.text).toBe(text);
    expect(parsed.attachments).toHaveLength(1);
    expect(parsed.attachments[0]?.filename).toBe('report.bin');
    expect(Buffer.compare(parsed.attachments[0]?.content ?? Buffer.alloc(0), attachment)).toBe(0);

    // imap fetch writes the same bytes the server holds.
    const uid = await uidOf(RECIPIENT, messageId);
    const out = join(dir, 'fetched.eml');
    const fetched = await runCli(
      [
        'imap',
        'fetch',
        '--mailbox',
        RECIPIENT,
        '--folder',
        'INBOX',
        '--uid',
        String(uid),
        '--out',
        out,
      ],
      env,
    );
    expect(fetched.code).toBe(0);
    expect(Buffer.compare(await readFile(out), raw)).toBe(0);
  });

  it('refuses a sender the app may not use, with exit 3 and the diagnosis', async () => {
    const { code, stderr } = await runCli(
      ['send', '--from', 'ceo@contoso.example', '--to', RECIPIENT, '--subject', 'x', '--text', 'y'],
      env,
    );
    expect(code).toBe(3);
    expect(stderr).toContain('SMTP_AUTH_FAILED');
  });

  it('refuses bad usage with exit 2', async () => {
    expect(
      (await runCliInProcess(['send', '--from', SENDER, '--subject', 'x', '--text', 'y'], env))
        .code,
    ).toBe(2);
    expect(
      (await runCliInProcess(['send', '--from', SENDER, '--to', RECIPIENT, '--subject', 'x'], env))
        .code,
    ).toBe(2);
  });

  it('lists folders as JSON', async () => {
    const { code, stdout } = await runCli(
      ['imap', 'folders', '--mailbox', RECIPIENT, '--json'],
      env,
    );
    expect(code).toBe(0);
    const folders = JSON.parse(stdout) as { path: string; messages: number | null }[];
    const inbox = folders.find((f) => f.path === 'INBOX');
    expect(inbox?.messages).toBeGreaterThanOrEqual(1);
  });
});

/** Several CLI runs at once on a loaded machine: each may take far longer than alone. */
const SLOW = { timeoutMs: 60_000 };

describe('mailbridge send: addresses, standard input, headers', { timeout: 120_000 }, () => {
  const base = ['send', '--from', SENDER, '--subject', 'x', '--text', 'y'];

  it('refuses a --to that is not an address as usage (exit 2), naming it, before any connection', async () => {
    const { code, stderr } = await runCliInProcess([...base, '--to', 'not an address'], {
      ...env,
      MAILBRIDGE_SMTP_PORT: '9',
    });
    expect(code).toBe(2);
    expect(stderr).toContain("error USAGE: --to 'not an address' is not a mail address");
    expect(stderr).not.toContain('doctor');
  });

  it('refuses CR/LF and anything but one bare address in every address flag', async () => {
    const injected = `${RECIPIENT}\r\nRCPT TO:<shared@contoso.example>`;
    const { code, stderr } = await runCliInProcess([...base, '--to', injected], env);
    expect(code).toBe(2);
    expect(stderr).toContain(`--to '${RECIPIENT}\\x0d\\x0aRCPT TO:<shared@contoso.example>'`);
    expect(stderr).not.toMatch(/[\r]/);
    for (const [flag, value] of [
      ['--from', `Eve <${SENDER}>`],
      ['--cc', `${RECIPIENT}, shared@contoso.example`],
      ['--bcc', 'shared@contoso'],
      ['--reply-to', `${RECIPIENT}\nshared@contoso.example`],
    ] as const) {
      // --from replaces the one in `base`: a repeated single-value flag is refused on its own.
      const args = flag === '--from' ? base.filter((a) => a !== '--from' && a !== SENDER) : base;
      const run = await runCliInProcess([...args, '--to', RECIPIENT, flag, value], env);
      expect(run.code, `${flag} ${value}`).toBe(2);
      expect(run.stderr).toContain(`${flag} '`);
    }
  });

  it('reads --text from standard input with -, adds --html, --reply-to and --header, and prints JSON', async () => {
    const html = join(dir, 'body.html');
    await writeFile(html, '<p>HTML body</p>');
    const text = `from stdin ${Date.now()}\nline two\n`;
    const sent = await runCli(
      [
        ...['send', '--from', SENDER, '--to', RECIPIENT, '--subject', 'stdin'],
        ...['--text', '-', '--html', html, '--reply-to', 'replies@contoso.example'],
        ...['--header', 'X-Report-Id: 42', '--header', 'In-Reply-To: <a@b.example>', '--json'],
      ],
      env,
      { input: text },
    );
    expect(sent.stderr).toBe('');
    expect(sent.code).toBe(0);
    const result = JSON.parse(sent.stdout) as {
      messageId: string;
      accepted: string[];
      rejected: string[];
    };
    expect(result).toEqual({
      messageId: expect.stringMatching(/^<[^>]+>$/),
      accepted: [RECIPIENT],
      rejected: [],
    });
    const parsed = await simpleParser(await waitForMessage(RECIPIENT, result.messageId));
    expect(parsed.text).toBe(text);
    expect(parsed.html).toContain('<p>HTML body</p>');
    expect(parsed.replyTo?.text).toBe('replies@contoso.example');
    expect(parsed.headers.get('x-report-id')).toBe('42');
    expect(parsed.headers.get('in-reply-to')).toBe('<a@b.example>');
  });

  it('sends --eml - from standard input as it is', async () => {
    const messageId = `<eml-${Date.now()}@contoso.example>`;
    const raw = `From: ${SENDER}\r\nTo: ${RECIPIENT}\r\nSubject: piped eml\r\nMessage-ID: ${messageId}\r\n\r\npiped\r\n`;
    const sent = await runCli(['send', '--from', SENDER, '--to', RECIPIENT, '--eml', '-'], env, {
      input: raw,
    });
    expect(sent.code).toBe(0);
    expect(sent.stdout.trim()).toBe(messageId);
    const parsed = await simpleParser(await waitForMessage(RECIPIENT, messageId));
    expect(parsed.subject).toBe('piped eml');
  });

  it('refuses two readers of standard input, headers it sets itself, line breaks in headers, and --eml with composing flags', async () => {
    const send = ['send', '--from', SENDER, '--to', RECIPIENT, '--subject', 's'];
    const cases: [string[], RegExp][] = [
      [['--text', '-', '--html', '-'], /--text and --html cannot both read standard input/],
      [['--text', 'y', '--header', 'Subject: other'], /--header cannot set Subject/],
      [['--text', 'y', '--header', 'content-type: text/plain'], /--header cannot set content-type/],
      [['--text', 'y', '--header', 'X-A: b\r\nBcc: eve@contoso.example'], /line break/],
      [['--text', 'y', '--header', 'no colon here'], /is not 'Name: value'/],
      [['--eml', '-'], /--eml sends the file as it is, so --subject/],
    ];
    const runs = await Promise.all(
      cases.map(([extra]) => runCliInProcess([...send, ...extra], env, 'body')),
    );
    cases.forEach(([extra, message], i) => {
      expect(runs[i]?.code, extra.join(' ')).toBe(2);
      expect(runs[i]?.stderr).toMatch(message);
    });
  });
});

describe('a port of the wrong kind', { timeout: 60_000 }, () => {
  it('names a silent port (a TLS server that never greets) instead of "could not be reached", within seconds', async () => {
    const ca = loadTestCa();
    const certificate = issueServerCertificate(ca);
    const silent = createTlsServer({
      key: certificate.keys.privateKeyPem,
      cert: certificate.certificatePem,
    });
    silent.on('tlsClientError', () => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    try {
      // Both wait out the greeting timeout, so they wait side by side.
      const cli = runCli(
        ['send', '--from', SENDER, '--to', RECIPIENT, '--subject', 'x', '--text', 'y'],
        { ...env, MAILBRIDGE_SMTP_PORT: String(port) },
      );
      cli.catch(() => {}); // Awaited below; this only keeps an early failure from leaving it unhandled.
      // Timed in process: a loaded machine makes the CLI's start-up alone take seconds.
      const transport = createSmtpTransport(
        { ...config, smtp: { ...config.smtp, port } },
        { from: SENDER, pool: false },
      );
      const started = Date.now();
      await expect(transport.verify()).rejects.toMatchObject({ code: 'SMTP_NO_GREETING' });
      expect(Date.now() - started).toBeLessThan(8_000);
      transport.close();
      const { code, stderr } = await cli;
      expect(code).toBe(4);
      expect(stderr).toContain('error SMTP_NO_GREETING');
      expect(stderr).toContain('implicit TLS');
      expect(stderr).toContain('587');
    } finally {
      silent.close();
    }
  });

  it('names an IMAP port that answers TLS in plain text (the Postfix submission port)', async () => {
    const { code, stderr } = await runCli(
      ['imap', 'folders', '--mailbox', RECIPIENT, '--imap-port', String(servers.smtp.port)],
      env,
    );
    expect(code).toBe(4);
    expect(stderr).toContain('error IMAP_PORT_NOT_TLS');
    expect(stderr).toContain('993');
  });

  it('names an SMTP port 465 (implicit TLS) that is really the Postfix submission port', async () => {
    // Port 465 is what selects implicit TLS; a loopback address of its own keeps it clear of others.
    const host = `127.${randomInt(1, 255)}.${randomInt(1, 255)}.${randomInt(2, 255)}`;
    const forwarder = createNetServer((socket) => {
      const upstream = createConnection({ host: servers.smtp.host, port: servers.smtp.port });
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      forwarder.once('error', reject);
      forwarder.listen(465, host, resolve);
    });
    try {
      const { code, stderr } = await runCli(
        ['send', '--from', SENDER, '--to', RECIPIENT, '--subject', 'x', '--text', 'y'],
        { ...env, MAILBRIDGE_SMTP_HOST: host, MAILBRIDGE_SMTP_PORT: '465' },
      );
      expect(code).toBe(4);
      expect(stderr).toContain('error SMTP_PORT_NOT_TLS');
      expect(stderr).toContain('587');
    } finally {
      forwarder.close();
    }
  });
});

describe('mailbridge imap list, folders and fetch', { timeout: 120_000 }, () => {
  const folder = `Listing-${Date.now()}`;
  const evilSubject = 'Pay \u202eevil\u001b[31m now';
  let uids: number[] = [];

  beforeAll(async () => {
    const client = await createImapClient(config, { mailbox: RECIPIENT });
    try {
      await client.mailboxCreate(folder);
      const message = (subject: string, from: string) =>
        Buffer.from(
          `From: ${from}\r\nTo: ${RECIPIENT}\r\nSubject: ${subject}\r\nMessage-ID: <${subject.length}.${Date.now()}@contoso.example>\r\n\r\nbody\r\n`,
        );
      const encoded = `=?UTF-8?B?${Buffer.from(evilSubject).toString('base64')}?=`;
      const appended = [
        await client.append(
          folder,
          message('january', SENDER),
          ['\\Seen'],
          new Date('2026-01-05T10:00:00Z'),
        ),
        await client.append(
          folder,
          message('february', 'Ops <ops@contoso.example>'),
          [],
          new Date('2026-02-05T10:00:00Z'),
        ),
        await client.append(
          folder,
          message(encoded, SENDER),
          ['\\Flagged'],
          new Date('2026-03-05T10:00:00Z'),
        ),
      ];
      uids = appended.map((a) => (a ? a.uid : undefined) as number);
    } finally {
      await client.logout();
    }
  });

  const list = (...extra: string[]) =>
    runCli(['imap', 'list', '--mailbox', RECIPIENT, '--folder', folder, ...extra], env, SLOW);

  it('lists messages oldest first: UID, date, size, flags, sender, subject; --json, --since, --limit', async () => {
    const [human, json, since, limited] = await Promise.all([
      list(),
      list('--json'),
      list('--since', '2026-02-01', '--json'),
      list('--limit', '1', '--json'),
    ]);
    expect(human.stderr).toBe('');
    expect(human.code).toBe(0);
    const lines = human.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(
      new RegExp(`^${uids[0]}  2026-01-05 10:00  +\\d+  \\\\Seen +  ${SENDER}  january$`),
    );
    expect(lines[1]).toMatch(/ {2}- {2,}ops@contoso\.example {2,}february$/);

    const rows = JSON.parse(json.stdout) as {
      uid: number;
      date: string;
      from: { name: string | null; address: string };
      subject: string;
      size: number;
      flags: string[];
    }[];
    expect(rows.map((r) => r.uid)).toEqual(uids);
    expect(rows[1]).toMatchObject({
      date: '2026-02-05T10:00:00.000Z',
      from: { name: 'Ops', address: 'ops@contoso.example' },
      subject: 'february',
      flags: [],
    });
    expect(rows[1]?.size).toBeGreaterThan(50);
    expect(rows[2]?.subject).toBe(evilSubject);
    expect((JSON.parse(since.stdout) as { uid: number }[]).map((r) => r.uid)).toEqual(
      uids.slice(1),
    );
    expect((JSON.parse(limited.stdout) as { uid: number }[]).map((r) => r.uid)).toEqual(
      uids.slice(2),
    );
  });

  it('refuses a wrong --since or --limit as usage (exit 2)', async () => {
    const [date, limit] = await Promise.all([list('--since', '2026-02-30'), list('--limit', '0')]);
    expect(date.code).toBe(2);
    expect(date.stderr).toContain("--since must be a date like 2026-01-31, not '2026-02-30'");
    expect(limit.code).toBe(2);
  });

  it('shows server text with visible escapes: subjects and folder names with controls and the RTL override', async () => {
    // Name → how it must print. Control characters, C1 controls and format characters.
    const weird: Record<string, string> = {
      'Evil\u202eFolder': 'Evil\\u202eFolder',
      'Bell\u0007Folder': 'Bell\\x07Folder',
      'Csi\u009b31mFolder': 'Csi\\x9b31mFolder',
      'Zero\u200bWidth\u2066Isolate': 'Zero\\u200bWidth\\u2066Isolate',
    };
    const created: string[] = [];
    const client = await createImapClient(config, { mailbox: RECIPIENT });
    try {
      for (const name of Object.keys(weird)) {
        // Dovecot 2.3 refuses C0 controls ("Control characters not allowed in new mailbox
        // names") and takes the rest; whatever a server takes must print safely.
        const ok = await client.mailboxCreate(name).then(
          () => true,
          () => false,
        );
        if (ok) created.push(name);
      }
    } finally {
      await client.logout();
    }
    expect(created).toEqual(
      expect.arrayContaining([
        'Evil\u202eFolder',
        'Csi\u009b31mFolder',
        'Zero\u200bWidth\u2066Isolate',
      ]),
    );
    const [folders, messages] = await Promise.all([
      runCli(['imap', 'folders', '--mailbox', RECIPIENT], env, SLOW),
      list(),
    ]);
    expect(folders.code).toBe(0);
    for (const name of created) expect(folders.stdout).toContain(weird[name]);
    for (const raw of ['\u0007', '\u009b', '\u200b', '\u2066', '\u202e']) {
      expect(folders.stdout).not.toContain(raw);
    }
    expect(messages.stdout).toContain('Pay \\u202eevil\\x1b[31m now');
    for (const raw of ['\u001b', '\u202e']) expect(messages.stdout).not.toContain(raw);
  });

  it('says that a missing folder does not exist and to run imap folders, for fetch and list', async () => {
    const [fetch, listed] = await Promise.all([
      runCli(
        ['imap', 'fetch', '--mailbox', RECIPIENT, '--folder', 'Inbox2', '--uid', '1'],
        env,
        SLOW,
      ),
      runCli(['imap', 'list', '--mailbox', RECIPIENT, '--folder', 'No\u202eSuch'], env, SLOW),
    ]);
    for (const run of [fetch, listed]) {
      expect(run.code).toBe(1);
      expect(run.stderr).toContain('error IMAP_FOLDER_NOT_FOUND');
      expect(run.stderr).toContain('does not exist');
      expect(run.stderr).toContain('mailbridge imap folders');
      expect(run.stderr).not.toContain('setup step');
    }
    expect(fetch.stderr).toContain("did you mean 'INBOX'?");
    expect(listed.stderr).toContain("'No\\u202eSuch'");
  });
});

describe('createSmtpTransport', () => {
  it('retries once with a fresh token when the server refuses an expired one', async () => {
    service.setTokenLifetime(1);
    const real = createTokenProvider(config);
    const stale: AccessToken = await real.getToken();
    service.setTokenLifetime(3599);
    // The service rounds exp up to a whole second: a 1-second token is dead after 2 s at the most.
    await new Promise((resolve) => setTimeout(resolve, 2_200));
    let forced = 0;
    // Serves the expired token until asked for a fresh one, as a cache that trusts a wrong clock would.
    const provider: TokenProvider = {
      scope: real.scope,
      async getToken(options) {
        if (options?.forceRefresh) {
          forced++;
          return real.getToken({ forceRefresh: true });
        }
        return forced > 0 ? real.getToken() : stale;
      },
    };
    const transport = createSmtpTransport(config, {
      from: SENDER,
      tokenProvider: provider,
      pool: false,
    });
    try {
      const info = await transport.sendMail({
        from: SENDER,
        to: RECIPIENT,
        subject: 'after expiry',
        text: 'ok',
      });
      expect(info.accepted).toEqual([RECIPIENT]);
      expect(forced).toBe(1);
    } finally {
      transport.close();
    }
  });

  it('sends many messages through one pooled, rate-limited transport', async () => {
    const transport = createSmtpTransport(config, {
      from: SENDER,
      rateLimitPerMinute: false,
      maxConnections: 2,
    });
    try {
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          transport.sendMail({
            from: SENDER,
            to: RECIPIENT,
            subject: `pooled ${i}`,
            text: `n ${i}`,
          }),
        ),
      );
      expect(results.every((r) => r.accepted.length === 1)).toBe(true);
    } finally {
      transport.close();
    }
  });
});

async function uidOf(mailbox: string, messageId: string): Promise<number | undefined> {
  const client = await createImapClient(config, { mailbox });
  try {
    await client.mailboxOpen('INBOX', { readOnly: true });
    const found = await client.search({ header: { 'message-id': messageId } }, { uid: true });
    return found ? found[0] : undefined;
  } finally {
    await client.logout();
  }
}

async function waitForMessage(mailbox: string, messageId: string): Promise<Buffer> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const uid = await uidOf(mailbox, messageId);
    if (uid) {
      const client = await createImapClient(config, { mailbox });
      try {
        await client.mailboxOpen('INBOX', { readOnly: true });
        const msg = await client.fetchOne(String(uid), { source: true }, { uid: true });
        if (msg && msg.source) return msg.source;
      } finally {
        await client.logout();
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`${messageId} did not arrive in ${mailbox}:\n${await servers.logs()}`);
}
