/**
 * SMTP throughput benchmark (results and how to read them: bench/README.md).
 *
 * Against real Postfix submission (STARTTLS, SASL XOAUTH2 checked by Dovecot
 * against the local token service) delivering into Dovecot over LMTP, one
 * process, one run:
 *   1. messages/s through our pooled transport without its rate limit
 *      (`createSmtpTransport(config, { rateLimitPerMinute: false })`) against
 *      plain nodemailer with a static token, same pool size, same messages;
 *      alternating rounds, medians, as a ratio ours / plain;
 *   2. our transport with its default limit (30 messages a minute, Exchange's),
 *      next to plain nodemailer given the same `rateLimit`: 45 messages queued
 *      at once, when each was accepted, how many in the first minute.
 * Every message must be accepted by Postfix and land in Dovecot (counted over
 * IMAP); the last message of each recipient is read back and compared.
 *
 * Needs root (the mail servers of test/helpers/mail-servers.ts). Like
 * bench/token.ts it runs twice: a launcher that makes a throwaway CA and a
 * child that trusts it through NODE_EXTRA_CA_CERTS.
 *
 *   npx tsx bench/smtp.ts [--rounds 15] [--messages 300] [--connections 2]
 *                         [--rate-limit-seconds 75] [--write-readme]
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { parseArgs, promisify } from 'node:util';
import type { ImapFlow } from 'imapflow';
import { simpleParser } from 'mailparser';
import nodemailer from 'nodemailer';
import type Mail from 'nodemailer/lib/mailer/index.js';
import {
  createImapClient,
  createSmtpTransport,
  createTokenProvider,
  EXCHANGE_MESSAGES_PER_MINUTE,
  loadConfig,
  type MailbridgeConfig,
} from '../src/index.js';
import { appEnvironment } from '../test/helpers/app-env.js';
import {
  EXCHANGE_AUDIENCE,
  IMAP_ROLE,
  type MailServers,
  SMTP_ROLE,
  startMailServers,
} from '../test/helpers/mail-servers.js';
import { startTokenService, type TokenService } from '../test/helpers/token-service.js';
import {
  counts,
  delay,
  describeMachine,
  markdownTable,
  median,
  progressLogger,
  README,
  runBench,
  wholeOption,
  writeReadmeSection,
} from './support.js';

const SENDER = 'reports@contoso.example';
/** One recipient per side, so Dovecot's count checks each side on its own. */
const RECIPIENTS = {
  ours: 'bench-ours@contoso.example',
  plain: 'bench-plain@contoso.example',
  oursLimited: 'bench-ours-limited@contoso.example',
  plainLimited: 'bench-plain-limited@contoso.example',
} as const;
type Side = keyof typeof RECIPIENTS;
/** Per side, before the rounds: opens the pool's connections, fetches and caches tokens, warms the JIT. */
const WARM_UP_MESSAGES = 100;
/** Queued at once for the rate-limit run: one and a half windows' worth. */
const LIMITED_MESSAGES = 45;
const MINUTE_MS = 60_000;
/** After a rate-limit window ends, the held messages go out within this. */
const RELEASE_SLACK_MS = 10_000;
const DELIVERY_TIMEOUT_MS = 60_000;

// About 20 KB as sent: 4 KB of text and a 12 KB attachment (16 KB in base64).
const TEXT = Array.from({ length: 64 }, (_, i) =>
  `Line ${String(i + 1).padStart(2, '0')} of the nightly report. `.padEnd(63, '.'),
).join('\n');
const ATTACHMENT = Buffer.from(Array.from({ length: 12 * 1024 }, (_, i) => (i * 31 + 7) % 256));
const ATTACHMENT_NAME = 'report.bin';

interface BenchOptions {
  rounds: number;
  messages: number;
  connections: number;
  rateLimitSeconds: number;
  writeReadme: boolean;
}

function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      rounds: { type: 'string', default: '15' },
      messages: { type: 'string', default: '300' },
      connections: { type: 'string', default: '2' },
      'rate-limit-seconds': { type: 'string', default: '75' },
      'write-readme': { type: 'boolean', default: false },
    },
  });
  return {
    rounds: wholeOption('rounds', values.rounds, 1),
    messages: wholeOption('messages', values.messages, 1),
    connections: wholeOption('connections', values.connections, 1),
    rateLimitSeconds: wholeOption('rate-limit-seconds', values['rate-limit-seconds'], 0),
    writeReadme: values['write-readme'],
  };
}

// ---------------------------------------------------------------------------
// Measuring child

/** What both transports' sendMail resolve with, as far as the bench reads it. */
interface Sent {
  accepted: unknown[];
  rejected: unknown[];
}

interface Sender {
  send(message: Mail.Options): Promise<Sent>;
  close(): void;
}

interface BatchResult {
  messagesPerSecond: number;
  /**
   * CPU time of this whole process (both clients, the token service) per
   * message while the batch ran. Less noisy than wall time: Postfix's queue
   * file writes do not count.
   */
  cpuMsPerMessage: number;
  accepted: number;
  failed: number;
  /** SMTP logins the batch made: token checks by Dovecot's passdb. */
  logins: number;
  /** Requests to the token endpoint during the batch. */
  tokenRequests: number;
}

interface ThroughputResults {
  /** Per round, in order. */
  ours: BatchResult[];
  plain: BatchResult[];
}

interface LimitedResult {
  /** Milliseconds from queueing all messages to each acceptance, ascending. */
  acceptedAtMs: number[];
  failed: number;
  /** Still queued when the observation window ended (the transport was then closed). */
  unsent: number;
}

interface Results {
  messageBytes: number;
  throughput: ThroughputResults;
  limited?: { ours: LimitedResult; plain: LimitedResult; windowMs: number };
  /** Messages Dovecot holds per recipient at the end. */
  delivered: Record<Side, number>;
  /** Messages Postfix accepted per recipient, warm-up included. */
  accepted: Record<Side, number>;
  /** Problems found reading back the last message of each recipient. */
  readBack: string[];
}

async function measure(options: BenchOptions): Promise<number> {
  const service = await startTokenService();
  let servers: MailServers | undefined;
  try {
    progress('starting Dovecot and Postfix');
    servers = await startMailServers({ tokenService: service });
    const app = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE, SMTP_ROLE] } });
    for (const mailbox of [SENDER, ...Object.values(RECIPIENTS)]) {
      await servers.grantMailbox(app.clientId, mailbox);
    }
    const config = await loadConfig({
      env: appEnvironment(service, app, { imap: servers.imap, smtp: servers.smtp }),
    });
    const results = await run(config, service, servers, options);
    const machine = describeMachine(await softwareVersions());
    const table = renderResults(results, options);
    process.stdout.write(`${machine}\n\n${table}\n`);

    const problems = check(results, options);
    for (const problem of problems) process.stderr.write(`FAILED: ${problem}\n`);
    if (problems.length > 0) process.stderr.write(`${await servers.logs()}\n`);
    if (problems.length === 0 && options.writeReadme) {
      await writeReadmeSection('smtp', `${machine}\n\n${table}`);
      process.stderr.write(`wrote the results into ${README}\n`);
    }
    return problems.length === 0 ? 0 : 1;
  } finally {
    await servers?.stop();
    await service.close();
  }
}

async function run(
  config: MailbridgeConfig,
  service: TokenService,
  servers: MailServers,
  options: BenchOptions,
): Promise<Results> {
  const accepted: Record<Side, number> = { ours: 0, plain: 0, oursLimited: 0, plainLimited: 0 };
  const inboxes = await openInboxes(config);
  try {
    const { connections } = options;
    // The baseline gets one token before it starts and keeps it: what an app
    // that hands nodemailer a token it fetched itself does.
    const staticToken = (await createTokenProvider(config).getToken()).accessToken;
    const senders: Record<'ours' | 'plain', Sender> = {
      ours: ourTransport(config, connections, false),
      plain: plainNodemailer(config, staticToken, connections),
    };
    const throughput: ThroughputResults = { ours: [], plain: [] };
    try {
      const batch = async (side: 'ours' | 'plain', count: number, label: string) => {
        const result = await sendBatch(service, senders[side], RECIPIENTS[side], count, label);
        accepted[side] += result.accepted;
        // Postfix delivers in the background; the next batch starts on an empty queue.
        await inboxes.waitFor(RECIPIENTS[side], accepted[side], servers);
        return result;
      };
      progress(`warm-up: ${WARM_UP_MESSAGES} messages per side`);
      await batch('ours', WARM_UP_MESSAGES, 'warm-up');
      await batch('plain', WARM_UP_MESSAGES, 'warm-up');
      for (let round = 0; round < options.rounds; round++) {
        // Alternate the order so drift (queue files, GC, neighbours) does not favour one side.
        const order: ('ours' | 'plain')[] = round % 2 === 0 ? ['ours', 'plain'] : ['plain', 'ours'];
        for (const side of order) {
          throughput[side].push(await batch(side, options.messages, `round ${round + 1}`));
        }
        const last = (side: 'ours' | 'plain') => throughput[side].at(-1)?.messagesPerSecond;
        progress(
          `round ${round + 1}/${options.rounds}: ours ${fixed(last('ours'), 1)} messages/s, ` +
            `plain ${fixed(last('plain'), 1)} messages/s`,
        );
      }
    } finally {
      senders.ours.close();
      senders.plain.close();
    }

    let limited: Results['limited'];
    if (options.rateLimitSeconds > 0) {
      const windowMs = options.rateLimitSeconds * 1000;
      progress(
        `rate limit: ${LIMITED_MESSAGES} messages per side queued at once, ` +
          `watched for up to ${options.rateLimitSeconds} s`,
      );
      const [ours, plain] = await Promise.all([
        sendLimited(() => ourTransport(config, connections), RECIPIENTS.oursLimited, windowMs),
        sendLimited(
          () =>
            plainNodemailer(config, staticToken, connections, {
              rateLimit: EXCHANGE_MESSAGES_PER_MINUTE,
              rateDelta: MINUTE_MS,
            }),
          RECIPIENTS.plainLimited,
          windowMs,
        ),
      ]);
      accepted.oursLimited = ours.acceptedAtMs.length;
      accepted.plainLimited = plain.acceptedAtMs.length;
      await inboxes.waitFor(RECIPIENTS.oursLimited, accepted.oursLimited, servers);
      await inboxes.waitFor(RECIPIENTS.plainLimited, accepted.plainLimited, servers);
      limited = { ours, plain, windowMs };
    }

    const delivered = await inboxes.counts();
    const readBack: string[] = [];
    for (const side of Object.keys(RECIPIENTS) as Side[]) {
      if (accepted[side] > 0) readBack.push(...(await readBackLast(config, RECIPIENTS[side])));
    }
    return {
      messageBytes: await messageSize(),
      throughput,
      ...(limited ? { limited } : {}),
      delivered,
      accepted,
      readBack,
    };
  } finally {
    await inboxes.close();
  }
}

/** Ours as an application builds it; the rate limit is left at its default unless `false`. */
function ourTransport(
  config: MailbridgeConfig,
  maxConnections: number,
  rateLimitPerMinute?: false,
): Sender {
  const transport = createSmtpTransport(config, {
    from: SENDER,
    pool: true,
    maxConnections,
    ...(rateLimitPerMinute === false ? { rateLimitPerMinute } : {}),
  });
  return { send: (message) => transport.sendMail(message), close: () => transport.close() };
}

/** The baseline: nodemailer's own pool, its OAuth2 auth with a token it never renews. */
function plainNodemailer(
  config: MailbridgeConfig,
  accessToken: string,
  maxConnections: number,
  rate: { rateLimit: number; rateDelta: number } | Record<string, never> = {},
): Sender {
  const transporter = nodemailer.createTransport({
    host: config.smtp.host,
    port: config.smtp.port,
    requireTLS: true,
    pool: true,
    maxConnections,
    ...rate,
    auth: { type: 'OAuth2', user: SENDER, accessToken },
  });
  return {
    send: (message) => transporter.sendMail(message),
    close: () => transporter.close(),
  };
}

function message(recipient: string, subject: string): Mail.Options {
  return {
    from: SENDER,
    to: recipient,
    subject,
    text: TEXT,
    attachments: [
      { filename: ATTACHMENT_NAME, content: ATTACHMENT, contentType: 'application/octet-stream' },
    ],
  };
}

/** Bytes of one message as sent (the same for every message but for Date, Message-ID, subject). */
async function messageSize(): Promise<number> {
  const stream = nodemailer.createTransport({ streamTransport: true, buffer: true });
  const info = await stream.sendMail(message(RECIPIENTS.ours, 'round 1 #001'));
  return (info.message as Buffer).length;
}

/**
 * `count` messages handed to the pool at once, timed from the first
 * `sendMail` to the last acceptance; the pool works through them over its
 * connections as nodemailer schedules them.
 */
async function sendBatch(
  service: TokenService,
  sender: Sender,
  recipient: string,
  count: number,
  label: string,
): Promise<BatchResult> {
  const messages = Array.from({ length: count }, (_, i) =>
    message(recipient, `${label} #${String(i + 1).padStart(3, '0')}`),
  );
  const loginsBefore = service.introspectionRequests;
  const tokensBefore = service.tokenRequests;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const settled = await Promise.allSettled(messages.map((m) => sender.send(m)));
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  let accepted = 0;
  let failed = 0;
  for (const outcome of settled) {
    if (outcome.status === 'fulfilled' && isAccepted(outcome.value)) accepted++;
    else {
      failed++;
      if (failed === 1) progress(`${label}: ${describeFailure(outcome)}`);
    }
  }
  return {
    messagesPerSecond: count / seconds,
    cpuMsPerMessage: (cpu.user + cpu.system) / 1000 / count,
    accepted,
    failed,
    logins: service.introspectionRequests - loginsBefore,
    tokenRequests: service.tokenRequests - tokensBefore,
  };
}

/**
 * LIMITED_MESSAGES handed at once to a fresh rate-limited pool; records when
 * each was accepted. Stops watching after `windowMs` and closes the pool:
 * what it still held counts as unsent.
 */
async function sendLimited(
  create: () => Sender,
  recipient: string,
  windowMs: number,
): Promise<LimitedResult> {
  const sender = create();
  const result: LimitedResult = { acceptedAtMs: [], failed: 0, unsent: 0 };
  let closed = false;
  const started = performance.now();
  const all = Promise.all(
    Array.from({ length: LIMITED_MESSAGES }, (_, i) =>
      sender.send(message(recipient, `limited #${String(i + 1).padStart(3, '0')}`)).then(
        (info) => {
          if (isAccepted(info)) result.acceptedAtMs.push(performance.now() - started);
          else result.failed++;
        },
        (error: unknown) => {
          if (closed) result.unsent++;
          else {
            result.failed++;
            progress(`rate limit: ${describeFailure({ status: 'rejected', reason: error })}`);
          }
        },
      ),
    ),
  );
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'deadline'>((resolve) => {
    timer = setTimeout(() => resolve('deadline'), windowMs);
  });
  try {
    if ((await Promise.race([all.then(() => 'done' as const), deadline])) === 'deadline') {
      closed = true;
      sender.close();
      await all;
    }
  } finally {
    clearTimeout(timer);
    sender.close();
  }
  result.acceptedAtMs.sort((a, b) => a - b);
  return result;
}

function isAccepted(info: Sent): boolean {
  return info.accepted.length === 1 && info.rejected.length === 0;
}

function describeFailure(outcome: PromiseSettledResult<Sent>): string {
  if (outcome.status === 'fulfilled') return `not accepted: ${JSON.stringify(outcome.value)}`;
  const reason = outcome.reason;
  return `failed: ${reason instanceof Error ? reason.message : String(reason)}`;
}

// ---------------------------------------------------------------------------
// Dovecot: counts over IMAP, and one message read back per recipient

interface Inboxes {
  /** Waits until Dovecot holds `expected` messages for `mailbox` (Postfix delivers in the background). */
  waitFor(mailbox: string, expected: number, servers: MailServers): Promise<void>;
  counts(): Promise<Record<Side, number>>;
  close(): Promise<void>;
}

/** One logged-in IMAP connection per recipient, polled with STATUS. */
async function openInboxes(config: MailbridgeConfig): Promise<Inboxes> {
  const clients = new Map<string, ImapFlow>();
  const provider = createTokenProvider(config);
  for (const mailbox of Object.values(RECIPIENTS)) {
    clients.set(mailbox, await createImapClient(config, { mailbox, tokenProvider: provider }));
  }
  const count = async (mailbox: string) => {
    const client = clients.get(mailbox);
    if (!client) throw new Error(`no IMAP connection for ${mailbox}`);
    const status = await client.status('INBOX', { messages: true });
    if (!status) throw new Error(`IMAP STATUS INBOX failed for ${mailbox}`);
    return status.messages ?? 0;
  };
  return {
    async waitFor(mailbox, expected, servers) {
      const deadline = Date.now() + DELIVERY_TIMEOUT_MS;
      let held = await count(mailbox);
      while (held < expected && Date.now() < deadline) {
        await delay(50);
        held = await count(mailbox);
      }
      if (held < expected) {
        throw new Error(
          `Dovecot holds ${held} of the ${expected} messages Postfix accepted for ${mailbox} ` +
            `after ${DELIVERY_TIMEOUT_MS / 1000} s\n${await servers.logs()}`,
        );
      }
    },
    async counts() {
      const entries = await Promise.all(
        (Object.entries(RECIPIENTS) as [Side, string][]).map(
          async ([side, mailbox]) => [side, await count(mailbox)] as const,
        ),
      );
      return Object.fromEntries(entries) as Record<Side, number>;
    },
    async close() {
      await Promise.all([...clients.values()].map((client) => client.logout().catch(() => {})));
    },
  };
}

/** Reads the newest message of `mailbox` back and compares it with what was sent. */
async function readBackLast(config: MailbridgeConfig, mailbox: string): Promise<string[]> {
  const client = await createImapClient(config, { mailbox });
  try {
    await client.mailboxOpen('INBOX', { readOnly: true });
    const fetched = await client.fetchOne('*', { source: true });
    if (fetched === false || !fetched.source) return [`${mailbox}: no message to read back`];
    const parsed = await simpleParser(fetched.source);
    const problems: string[] = [];
    if (parsed.text?.replace(/\n$/, '') !== TEXT) problems.push(`${mailbox}: text differs`);
    const attachment = parsed.attachments[0];
    if (
      parsed.attachments.length !== 1 ||
      attachment?.filename !== ATTACHMENT_NAME ||
      !attachment.content.equals(ATTACHMENT)
    ) {
      problems.push(`${mailbox}: attachment differs`);
    }
    return problems;
  } finally {
    await client.logout().catch(() => {});
  }
}

// ---------------------------------------------------------------------------
// Checks and output

function check(results: Results, options: BenchOptions): string[] {
  const problems: string[] = [];
  for (const side of ['ours', 'plain'] as const) {
    const failed = results.throughput[side].reduce((sum, r) => sum + r.failed, 0);
    if (failed > 0) problems.push(`${side}: ${failed} message(s) not accepted during the rounds`);
  }
  for (const side of Object.keys(RECIPIENTS) as Side[]) {
    if (results.delivered[side] !== results.accepted[side]) {
      problems.push(
        `${RECIPIENTS[side]}: Postfix accepted ${results.accepted[side]} message(s), ` +
          `Dovecot holds ${results.delivered[side]}`,
      );
    }
  }
  problems.push(...results.readBack);
  const oursTokens = results.throughput.ours.reduce((sum, r) => sum + r.tokenRequests, 0);
  if (oursTokens > 0) {
    problems.push(`ours: ${oursTokens} token request(s) during the rounds (the token was cached)`);
  }
  if (results.limited) {
    const { windowMs } = results.limited;
    for (const side of ['ours', 'plain'] as const) {
      const result = results.limited[side];
      const first = firstWindow(result, windowMs);
      if (result.failed > 0) problems.push(`rate limit, ${side}: ${result.failed} failed`);
      if (first.count > EXCHANGE_MESSAGES_PER_MINUTE) {
        problems.push(
          `rate limit, ${side}: ${first.count} accepted within the first ${first.seconds} s, ` +
            `limit ${EXCHANGE_MESSAGES_PER_MINUTE}`,
        );
      }
      if (result.acceptedAtMs.length < Math.min(EXCHANGE_MESSAGES_PER_MINUTE, LIMITED_MESSAGES)) {
        problems.push(
          `rate limit, ${side}: only ${result.acceptedAtMs.length} accepted; ` +
            `the first ${EXCHANGE_MESSAGES_PER_MINUTE} should go at once`,
        );
      }
      if (windowMs >= MINUTE_MS + RELEASE_SLACK_MS && result.unsent > 0) {
        problems.push(
          `rate limit, ${side}: ${result.unsent} still queued ${options.rateLimitSeconds} s after the start`,
        );
      }
    }
  }
  return problems;
}

/** Acceptances in the first minute, or in the whole window when it is shorter. */
function firstWindow(result: LimitedResult, windowMs: number): { count: number; seconds: number } {
  const span = Math.min(windowMs, MINUTE_MS);
  return { count: result.acceptedAtMs.filter((t) => t < span).length, seconds: span / 1000 };
}

/** Most acceptances in any 60 s span (the fixed first minute is one of them). */
function mostInAnyMinute(times: readonly number[]): number {
  let most = 0;
  for (let i = 0; i < times.length; i++) {
    const start = times[i] as number;
    most = Math.max(most, times.filter((t) => t >= start && t < start + MINUTE_MS).length);
  }
  return most;
}

function renderResults(results: Results, options: BenchOptions): string {
  const { ours, plain } = results.throughput;
  const rate = (r: BatchResult[]) => median(r.map((x) => x.messagesPerSecond));
  const cpu = (r: BatchResult[]) => median(r.map((x) => x.cpuMsPerMessage));
  const range = (r: BatchResult[]) => {
    const rates = r.map((x) => x.messagesPerSecond);
    return `${fixed(Math.min(...rates), 1)} – ${fixed(Math.max(...rates), 1)}`;
  };
  const sum = (r: BatchResult[], key: 'accepted' | 'logins' | 'tokenRequests') =>
    r.reduce((total, x) => total + x[key], 0);
  const sent = options.rounds * options.messages;
  const perRound = (r: BatchResult[]) => counts(r.map((x) => x.logins));
  const kb = (results.messageBytes / 1024).toFixed(1);

  const throughput = markdownTable(
    [
      `${options.connections} pooled connections, no rate limit`,
      'ours: `createSmtpTransport`, `rateLimitPerMinute: false`',
      'plain nodemailer, static token',
      'ours / plain',
    ],
    [
      [
        `Messages/s, median of ${options.rounds} rounds of ${options.messages}`,
        fixed(rate(ours), 1),
        fixed(rate(plain), 1),
        `${(rate(ours) / rate(plain)).toFixed(2)}×`,
      ],
      ['Slowest – fastest round (messages/s)', range(ours), range(plain), ''],
      [
        'ours / plain within each round: median (slowest – fastest)',
        '',
        '',
        pairedRatios(ours, plain, (x) => x.messagesPerSecond),
      ],
      [
        `CPU time of the bench process per message (ms), median of ${options.rounds}`,
        fixed(cpu(ours), 3),
        fixed(cpu(plain), 3),
        pairedRatios(ours, plain, (x) => x.cpuMsPerMessage),
      ],
      [
        'Accepted by Postfix / sent',
        `${sum(ours, 'accepted')} / ${sent}`,
        `${sum(plain, 'accepted')} / ${sent}`,
        '',
      ],
      ['SMTP logins per round', perRound(ours), perRound(plain), ''],
      [
        'Token endpoint requests during the rounds',
        String(sum(ours, 'tokenRequests')),
        '0 (token fetched once before)',
        '',
      ],
      [
        `Delivered to Dovecot (IMAP STATUS, ${WARM_UP_MESSAGES} warm-up included)`,
        String(results.delivered.ours),
        String(results.delivered.plain),
        '',
      ],
    ],
  );
  const sections = [
    throughput,
    `Each message: ${kb} KB as sent (4 KB of text and a 12 KB attachment), one recipient, ` +
      `from ${SENDER}. Rounds alternate which side goes first.`,
  ];

  if (results.limited) {
    const { ours: o, plain: p, windowMs } = results.limited;
    const first = { ours: firstWindow(o, windowMs), plain: firstWindow(p, windowMs) };
    const at = (r: LimitedResult, n: number) => {
      const t = r.acceptedAtMs[n - 1];
      return t === undefined ? 'not within the window' : fixed(t / 1000, 1);
    };
    const all = (r: LimitedResult) =>
      r.acceptedAtMs.length === LIMITED_MESSAGES
        ? fixed((r.acceptedAtMs.at(-1) as number) / 1000, 1)
        : `${r.unsent} still queued at ${windowMs / 1000} s`;
    const limit = EXCHANGE_MESSAGES_PER_MINUTE;
    const seconds = first.ours.seconds;
    sections.push(
      markdownTable(
        [
          `${LIMITED_MESSAGES} messages queued at once, ${options.connections} pooled connections`,
          `ours: default limit (${limit}/min)`,
          `plain nodemailer, \`rateLimit: ${limit}, rateDelta: ${MINUTE_MS}\``,
          'ours / plain',
        ],
        [
          [
            `Accepted in the first ${seconds} s`,
            String(first.ours.count),
            String(first.plain.count),
            `${(first.ours.count / first.plain.count).toFixed(2)}×`,
          ],
          [
            `Achieved rate over the first ${seconds} s (messages/s)`,
            fixed(first.ours.count / seconds, 2),
            fixed(first.plain.count / seconds, 2),
            '',
          ],
          [`Seconds until message ${limit} was accepted`, at(o, limit), at(p, limit), ''],
          [
            `Seconds until message ${limit + 1} was accepted`,
            at(o, limit + 1),
            at(p, limit + 1),
            '',
          ],
          [`Seconds until all ${LIMITED_MESSAGES} were accepted`, all(o), all(p), ''],
          [
            'Most accepted in any 60 s span (sliding)',
            String(mostInAnyMinute(o.acceptedAtMs)),
            String(mostInAnyMinute(p.acceptedAtMs)),
            '',
          ],
          ['Failed', String(o.failed), String(p.failed), ''],
        ],
      ),
    );
    sections.push(
      `Seconds from handing all ${LIMITED_MESSAGES} messages to a new transport to Postfix's ` +
        `acceptance; ours includes fetching its first token. For comparison, the unlimited ` +
        `transport above takes about ${fixed(LIMITED_MESSAGES / rate(ours), 1)} s for ${LIMITED_MESSAGES} messages.`,
    );
  }
  return sections.join('\n\n');
}

const execFileAsync = promisify(execFile);

async function softwareVersions(): Promise<string[]> {
  const command = async (file: string, args: string[]) =>
    (await execFileAsync(file, args).catch(() => ({ stdout: 'unknown' }))).stdout.trim();
  const postfix = await command('postconf', ['-d', '-h', 'mail_version']);
  const dovecot = (await command('dovecot', ['--version'])).split(' ')[0];
  // nodemailer's exports map does not include its package.json.
  const nodemailerVersion = await readFile(
    new URL('../node_modules/nodemailer/package.json', import.meta.url),
    'utf8',
  ).then(
    (text) => (JSON.parse(text) as { version: string }).version,
    () => 'unknown',
  );
  return [`nodemailer ${nodemailerVersion}`, `Postfix ${postfix}`, `Dovecot ${dovecot}`];
}

/** Rounds pair up (the two sides ran back to back), so drift between rounds cancels out. */
function pairedRatios(
  ours: BatchResult[],
  plain: BatchResult[],
  figure: (result: BatchResult) => number,
): string {
  const ratios = ours.map((o, i) => {
    const p = plain[i];
    return p ? figure(o) / figure(p) : Number.NaN;
  });
  const x = (value: number) => `${value.toFixed(2)}×`;
  return `${x(median(ratios))} (${x(Math.min(...ratios))} – ${x(Math.max(...ratios))})`;
}

function fixed(value: number | undefined, digits: number): string {
  return value === undefined || !Number.isFinite(value) ? '-' : value.toFixed(digits);
}

const progress = progressLogger('smtp');

// ---------------------------------------------------------------------------

runBench('smtp', parseOptions, measure);
