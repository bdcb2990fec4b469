/**
 * Relay benchmark (results and how to read them: bench/README.md).
 *
 * `mailbridge relay` runs as a child process (test/jobs/relay/run-relay.ts,
 * as the durability test runs it) in front of real Postfix submission
 * (STARTTLS, SASL XOAUTH2 checked by Dovecot against the local token
 * service). In one run, with the same 10 concurrent clients and the same
 * messages (about 20 KB):
 *   1. through the relay: each client submits without auth over loopback; the
 *      time to the relay's 250, and the time until the relay logs `delivered`
 *      for that Message-ID (its JSON log on stdout), i.e. Postfix accepted it;
 *   2. direct: the same clients submit straight to Postfix with XOAUTH2 and a
 *      static token; the time to Postfix's 250.
 * The relay's RSS (/proc/PID/status) is read at rest after start, sampled
 * during the load and read again once it has drained. Every message must land
 * in Dovecot (IMAP STATUS per recipient).
 *
 * Needs root (the mail servers of test/helpers/mail-servers.ts). Like
 * bench/smtp.ts it runs twice: a launcher that makes a throwaway CA and a
 * child that trusts it through NODE_EXTRA_CA_CERTS (the relay inherits it).
 *
 *   npx tsx bench/relay.ts [--messages 1000] [--clients 10]
 *                          [--upstream-connections 2] [--write-readme]
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import type { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';
import type Mail from 'nodemailer/lib/mailer/index.js';
import {
  createImapClient,
  createTokenProvider,
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
import { startTokenService } from '../test/helpers/token-service.js';
import {
  delay,
  describeMachine,
  markdownTable,
  progressLogger,
  README,
  runBench,
  wholeOption,
  writeReadmeSection,
} from './support.js';

const RUN_RELAY = fileURLToPath(new URL('../test/jobs/relay/run-relay.ts', import.meta.url));
const SENDER = 'scanner@contoso.example';
/** One recipient per side, so Dovecot's count checks each side on its own. */
const RECIPIENTS = {
  relay: 'bench-relay@contoso.example',
  direct: 'bench-direct@contoso.example',
} as const;
type Side = keyof typeof RECIPIENTS;
/** Per side, before the measured run: opens connections, fetches the relay's token, warms the JIT. */
const WARM_UP_MESSAGES = 50;
/** How long the relay is left alone after `started` before its RSS at rest is read. */
const SETTLE_MS = 2000;
const RSS_SAMPLE_MS = 20;
const TIMEOUT_MS = 60_000;

// About 20 KB as sent: 4 KB of text and a 12 KB attachment (16 KB in base64), as bench/smtp.ts.
const TEXT = Array.from({ length: 64 }, (_, i) =>
  `Line ${String(i + 1).padStart(2, '0')} of the scanned report. `.padEnd(63, '.'),
).join('\n');
const ATTACHMENT = Buffer.from(Array.from({ length: 12 * 1024 }, (_, i) => (i * 31 + 7) % 256));

interface BenchOptions {
  messages: number;
  clients: number;
  upstreamConnections: number;
  writeReadme: boolean;
}

function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      messages: { type: 'string', default: '1000' },
      clients: { type: 'string', default: '10' },
      'upstream-connections': { type: 'string', default: '2' },
      'write-readme': { type: 'boolean', default: false },
    },
  });
  return {
    messages: wholeOption('messages', values.messages, 1, 100_000),
    clients: wholeOption('clients', values.clients, 1, 100),
    // Exchange allows 3 concurrent submissions per mailbox; the relay refuses more.
    upstreamConnections: wholeOption('upstream-connections', values['upstream-connections'], 1, 3),
    writeReadme: values['write-readme'],
  };
}

// ---------------------------------------------------------------------------
// The relay as a child process

interface RelayChild {
  pid: number;
  /** Arrival time (performance.now()) of each `delivered` event, by Message-ID. */
  deliveredAt: Map<string, number>;
  /** Events other than accepted/delivered that say something went wrong. */
  trouble: Record<string, unknown>[];
  waitFor(event: string): Promise<Record<string, unknown>>;
  waitForDelivered(count: number): Promise<void>;
  stop(): Promise<void>;
  stderr(): string;
}

async function spawnRelay(configFile: string, env: Record<string, string>): Promise<RelayChild> {
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', RUN_RELAY, '--config', configFile],
    { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const events: Record<string, unknown>[] = [];
  const deliveredAt = new Map<string, number>();
  const trouble: Record<string, unknown>[] = [];
  const listeners = new Set<() => void>();
  let pending = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    const now = performance.now();
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.trim()) continue;
      const event = JSON.parse(line) as Record<string, unknown>;
      if (event.event === 'delivered') deliveredAt.set(String(event.messageId), now);
      else if (event.event !== 'accepted') events.push(event);
      if (
        ['deferred', 'dead', 'refused', 'spool-error', 'listener-error'].includes(
          String(event.event),
        )
      )
        trouble.push(event);
    }
    for (const listener of listeners) listener();
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const until = <T>(what: string, test: () => T | undefined): Promise<T> =>
    new Promise((resolve, reject) => {
      const done = (error?: Error, value?: T) => {
        clearTimeout(timer);
        listeners.delete(check);
        if (error) reject(error);
        else resolve(value as T);
      };
      const check = () => {
        const value = test();
        if (value !== undefined) done(undefined, value);
      };
      const timer = setTimeout(
        () => done(new Error(`relay: ${what} not seen within ${TIMEOUT_MS / 1000} s\n${stderr}`)),
        TIMEOUT_MS,
      );
      exited.then(() =>
        done(
          new Error(
            `relay exited (${child.exitCode ?? child.signalCode}) before ${what}\n${stderr}`,
          ),
        ),
      );
      listeners.add(check);
      check();
    });
  if (child.pid === undefined) throw new Error('the relay did not start');
  return {
    pid: child.pid,
    deliveredAt,
    trouble,
    waitFor: (event) => until(`a ${event} event`, () => events.find((e) => e.event === event)),
    waitForDelivered: (count) =>
      until(`${count} deliveries`, () => (deliveredAt.size >= count ? true : undefined)).then(
        () => {},
      ),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
    stderr: () => stderr,
  };
}

/** VmRSS of a process in bytes (Linux). */
async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(kb) * 1024;
}

/** Samples the RSS every RSS_SAMPLE_MS until stopped; returns the highest. */
function sampleRss(pid: number): { stop(): Promise<number> } {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      peak = Math.max(peak, await rssOf(pid));
      await delay(RSS_SAMPLE_MS);
    }
    peak = Math.max(peak, await rssOf(pid));
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return peak;
    },
  };
}

// ---------------------------------------------------------------------------
// Clients

interface Submission {
  messageId: string;
  /** performance.now() when sendMail was called, and when it resolved with 250. */
  startedAt: number;
  acceptedAt: number;
}

interface LoadResult {
  submissions: Submission[];
  startedAt: number;
  failed: number;
  firstFailure?: string;
}

/**
 * `clients` transports, one connection each, take messages from one shared
 * queue: each sends its next message when the previous one got its 250, so a
 * message's time is its own and not time spent waiting behind others.
 */
async function runLoad(
  transports: Mail[],
  side: Side,
  count: number,
  label: string,
): Promise<LoadResult> {
  const stamp = Date.now();
  const ids = Array.from({ length: count }, (_, i) => `<${side}-${label}-${i}-${stamp}@bench.lan>`);
  const result: LoadResult = { submissions: [], startedAt: performance.now(), failed: 0 };
  let next = 0;
  await Promise.all(
    transports.map(async (transport) => {
      while (next < count) {
        const messageId = ids[next++] as string;
        const startedAt = performance.now();
        try {
          const info = (await transport.sendMail(message(side, messageId))) as {
            accepted: unknown[];
            rejected: unknown[];
            response: string;
          };
          if (
            info.accepted.length !== 1 ||
            info.rejected.length > 0 ||
            !/^250[ -]/.test(info.response)
          )
            throw new Error(`not accepted: ${info.response}`);
          result.submissions.push({ messageId, startedAt, acceptedAt: performance.now() });
        } catch (error) {
          result.failed++;
          result.firstFailure ??= error instanceof Error ? error.message : String(error);
        }
      }
    }),
  );
  return result;
}

function message(side: Side, messageId: string): Mail.Options {
  return {
    from: SENDER,
    to: RECIPIENTS[side],
    subject: `bench ${messageId}`,
    messageId,
    text: TEXT,
    attachments: [{ filename: 'scan.bin', content: ATTACHMENT }],
  };
}

// ---------------------------------------------------------------------------
// Measuring child

interface Results {
  messageBytes: number;
  relay: LoadResult & { deliveredAt: Map<string, number> };
  direct: LoadResult;
  rss: { atRest: number; peak: number; drained: number };
  delivered: Record<Side, number>;
  trouble: Record<string, unknown>[];
}

async function measure(options: BenchOptions): Promise<number> {
  const service = await startTokenService();
  let servers: MailServers | undefined;
  let relay: RelayChild | undefined;
  const dir = await mkdtemp(join(os.tmpdir(), 'mailbridge-bench-relay-'));
  try {
    progress('starting Dovecot and Postfix');
    servers = await startMailServers({ tokenService: service });
    const app = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE, SMTP_ROLE] } });
    for (const mailbox of [SENDER, ...Object.values(RECIPIENTS)]) {
      await servers.grantMailbox(app.clientId, mailbox);
    }
    const env = appEnvironment(service, app, { imap: servers.imap, smtp: servers.smtp });
    const config = await loadConfig({ env });
    const configFile = join(dir, 'mailbridge.json');
    await writeFile(
      configFile,
      JSON.stringify({
        relay: {
          listen: ['127.0.0.1:0'],
          spool: 'spool',
          allowNetworks: ['127.0.0.1/32'],
          policy: [{ network: '127.0.0.1/32', senders: [SENDER] }],
          rateLimitPerMinute: false,
          connectionsPerMailbox: options.upstreamConnections,
        },
      }),
    );

    progress('starting the relay');
    relay = await spawnRelay(configFile, env);
    const started = await relay.waitFor('started');
    const port = Number(/:(\d+)$/.exec(String(started.listen))?.[1]);
    await delay(SETTLE_MS);
    const atRest = await rssOf(relay.pid);

    const results = await run(config, relay, port, options, atRest);
    const machine = describeMachine(await softwareVersions());
    const table = renderResults(results, options);
    process.stdout.write(`${machine}\n\n${table}\n`);

    const problems = check(results, options);
    for (const problem of problems) process.stderr.write(`FAILED: ${problem}\n`);
    if (problems.length > 0) process.stderr.write(`${relay.stderr()}\n${await servers.logs()}\n`);
    if (problems.length === 0 && options.writeReadme) {
      await writeReadmeSection('relay', `${machine}\n\n${table}`);
      process.stderr.write(`wrote the results into ${README}\n`);
    }
    return problems.length === 0 ? 0 : 1;
  } finally {
    await relay?.stop();
    await servers?.stop();
    await service.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function run(
  config: MailbridgeConfig,
  relay: RelayChild,
  port: number,
  options: BenchOptions,
  atRest: number,
): Promise<Results> {
  // The baseline gets one token before it starts and keeps it.
  const staticToken = (await createTokenProvider(config).getToken()).accessToken;
  const smtp = config.smtp;
  const clients = (side: Side): Mail[] =>
    Array.from({ length: options.clients }, () =>
      side === 'relay'
        ? nodemailer.createTransport({
            host: '127.0.0.1',
            port,
            ignoreTLS: true,
            pool: true,
            maxConnections: 1,
            maxMessages: Number.POSITIVE_INFINITY,
          })
        : nodemailer.createTransport({
            host: smtp.host,
            port: smtp.port,
            requireTLS: true,
            pool: true,
            maxConnections: 1,
            maxMessages: Number.POSITIVE_INFINITY,
            auth: { type: 'OAuth2', user: SENDER, accessToken: staticToken },
          }),
    );
  const transports: Record<Side, Mail[]> = { relay: clients('relay'), direct: clients('direct') };
  const inboxes = await openInboxes(config);
  try {
    progress(`warm-up: ${WARM_UP_MESSAGES} messages per side`);
    await runLoad(transports.relay, 'relay', WARM_UP_MESSAGES, 'warm-up');
    await relay.waitForDelivered(WARM_UP_MESSAGES);
    await runLoad(transports.direct, 'direct', WARM_UP_MESSAGES, 'warm-up');
    await inboxes.waitFor('relay', WARM_UP_MESSAGES);
    await inboxes.waitFor('direct', WARM_UP_MESSAGES);

    progress(`relay: ${options.messages} messages from ${options.clients} clients`);
    const sampler = sampleRss(relay.pid);
    const relayLoad = await runLoad(transports.relay, 'relay', options.messages, 'run');
    await relay.waitForDelivered(WARM_UP_MESSAGES + relayLoad.submissions.length);
    const peak = await sampler.stop();
    // Postfix delivers into Dovecot in the background; the direct run starts on an empty queue.
    await inboxes.waitFor('relay', WARM_UP_MESSAGES + relayLoad.submissions.length);
    const drained = await rssOf(relay.pid);

    progress(`direct: ${options.messages} messages from ${options.clients} clients`);
    const direct = await runLoad(transports.direct, 'direct', options.messages, 'run');
    await inboxes.waitFor('direct', WARM_UP_MESSAGES + direct.submissions.length);

    const messageBytes = await sizeOf(message('relay', '<size@bench.lan>'));
    return {
      messageBytes,
      relay: { ...relayLoad, deliveredAt: relay.deliveredAt },
      direct,
      rss: { atRest, peak, drained },
      delivered: await inboxes.counts(),
      trouble: relay.trouble,
    };
  } finally {
    for (const transport of [...transports.relay, ...transports.direct]) transport.close();
    await inboxes.close();
  }
}

async function sizeOf(options: Mail.Options): Promise<number> {
  const info = await nodemailer
    .createTransport({ streamTransport: true, buffer: true })
    .sendMail(options);
  return (info.message as Buffer).length;
}

interface Inboxes {
  waitFor(side: Side, expected: number): Promise<void>;
  counts(): Promise<Record<Side, number>>;
  close(): Promise<void>;
}

/** One logged-in IMAP connection per recipient, polled with STATUS. */
async function openInboxes(config: MailbridgeConfig): Promise<Inboxes> {
  const provider = createTokenProvider(config);
  const clients = {} as Record<Side, ImapFlow>;
  for (const side of Object.keys(RECIPIENTS) as Side[]) {
    clients[side] = await createImapClient(config, {
      mailbox: RECIPIENTS[side],
      tokenProvider: provider,
    });
  }
  const count = async (side: Side) => {
    const status = await clients[side].status('INBOX', { messages: true });
    if (!status) throw new Error(`IMAP STATUS INBOX failed for ${RECIPIENTS[side]}`);
    return status.messages ?? 0;
  };
  return {
    async waitFor(side, expected) {
      const deadline = Date.now() + TIMEOUT_MS;
      let held = await count(side);
      while (held < expected && Date.now() < deadline) {
        await delay(50);
        held = await count(side);
      }
      if (held < expected)
        throw new Error(`Dovecot holds ${held} of ${expected} messages for ${RECIPIENTS[side]}`);
    },
    async counts() {
      return { relay: await count('relay'), direct: await count('direct') };
    },
    async close() {
      await Promise.all(Object.values(clients).map((c) => c.logout().catch(() => {})));
    },
  };
}

// ---------------------------------------------------------------------------
// Figures, checks and output

interface Figures {
  acceptedPerSecond: number;
  deliveredPerSecond: number;
  directPerSecond: number;
  acceptance: number[];
  endToEnd: number[];
  direct: number[];
}

function figures(results: Results): Figures {
  const { relay, direct } = results;
  const acceptance = relay.submissions.map((s) => s.acceptedAt - s.startedAt);
  const deliveredTimes = relay.submissions.map((s) => relay.deliveredAt.get(s.messageId));
  const endToEnd = relay.submissions.flatMap((s, i) => {
    const at = deliveredTimes[i];
    return at === undefined ? [] : [at - s.startedAt];
  });
  const lastOf = (values: (number | undefined)[]) =>
    Math.max(...values.filter((v): v is number => v !== undefined));
  const perSecond = (n: number, from: number, to: number) => n / ((to - from) / 1000);
  return {
    acceptedPerSecond: perSecond(
      relay.submissions.length,
      relay.startedAt,
      lastOf(relay.submissions.map((s) => s.acceptedAt)),
    ),
    deliveredPerSecond: perSecond(endToEnd.length, relay.startedAt, lastOf(deliveredTimes)),
    directPerSecond: perSecond(
      direct.submissions.length,
      direct.startedAt,
      lastOf(direct.submissions.map((s) => s.acceptedAt)),
    ),
    acceptance,
    endToEnd,
    direct: direct.submissions.map((s) => s.acceptedAt - s.startedAt),
  };
}

/** Nearest-rank percentile. */
function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

function check(results: Results, options: BenchOptions): string[] {
  const problems: string[] = [];
  const f = figures(results);
  for (const side of ['relay', 'direct'] as const) {
    const load = results[side];
    if (load.failed > 0)
      problems.push(`${side}: ${load.failed} message(s) not accepted (${load.firstFailure})`);
    const expected = WARM_UP_MESSAGES + options.messages;
    if (results.delivered[side] !== expected)
      problems.push(
        `${RECIPIENTS[side]}: Dovecot holds ${results.delivered[side]} messages, expected ${expected}`,
      );
  }
  if (f.endToEnd.length !== options.messages)
    problems.push(`relay: ${f.endToEnd.length} of ${options.messages} delivered events`);
  for (const event of results.trouble) problems.push(`relay logged ${JSON.stringify(event)}`);
  return problems;
}

function renderResults(results: Results, options: BenchOptions): string {
  const f = figures(results);
  const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : '-');
  const rate = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : '-');
  const x = (v: number) => `${v.toFixed(2)}×`;
  const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
  const p = (values: number[], n: number) => percentile(values, n);
  const n = options.messages;
  const throughput = markdownTable(
    [
      `${n} messages, ${options.clients} concurrent clients`,
      'through the relay',
      'direct to Postfix',
      'relay / direct',
    ],
    [
      [
        'Accepted by the relay (messages/s)',
        rate(f.acceptedPerSecond),
        rate(f.directPerSecond),
        x(f.acceptedPerSecond / f.directPerSecond),
      ],
      [
        'Delivered upstream, end to end (messages/s)',
        rate(f.deliveredPerSecond),
        rate(f.directPerSecond),
        x(f.deliveredPerSecond / f.directPerSecond),
      ],
      [
        'Accepted by Postfix / sent',
        `${f.endToEnd.length} / ${n}`,
        `${results.direct.submissions.length} / ${n}`,
        '',
      ],
      [
        `Delivered to Dovecot (IMAP STATUS, ${WARM_UP_MESSAGES} warm-up included)`,
        String(results.delivered.relay),
        String(results.delivered.direct),
        '',
      ],
    ],
  );
  const latency = markdownTable(
    ['Latency per message (ms)', 'p50', 'p99'],
    [
      ['Relay: acceptance (to the relay’s 250)', ms(p(f.acceptance, 50)), ms(p(f.acceptance, 99))],
      [
        'Relay: end to end (to its `delivered` log line)',
        ms(p(f.endToEnd, 50)),
        ms(p(f.endToEnd, 99)),
      ],
      ['Direct: to Postfix’s 250', ms(p(f.direct, 50)), ms(p(f.direct, 99))],
      [
        '**Added latency**: relay end to end − direct',
        ms(p(f.endToEnd, 50) - p(f.direct, 50)),
        ms(p(f.endToEnd, 99) - p(f.direct, 99)),
      ],
    ],
  );
  const memory = markdownTable(
    ['Relay process RSS (MB)', 'VmRSS'],
    [
      [`At rest, ${SETTLE_MS / 1000} s after start`, mb(results.rss.atRest)],
      [`Peak under the load (sampled every ${RSS_SAMPLE_MS} ms)`, mb(results.rss.peak)],
      ['After the load, queue drained', mb(results.rss.drained)],
    ],
  );
  return [
    throughput,
    latency,
    memory,
    `Each message: ${(results.messageBytes / 1024).toFixed(1)} KB as sent (4 KB of text and a 12 KB ` +
      `attachment), one recipient, from ${SENDER}. The relay: \`rateLimitPerMinute: false\`, ` +
      `${options.upstreamConnections} upstream connections for the mailbox ` +
      `(\`connectionsPerMailbox\`), run with tsx (its RSS includes the TypeScript loader).`,
  ].join('\n\n');
}

const execFileAsync = promisify(execFile);

async function softwareVersions(): Promise<string[]> {
  const command = async (file: string, args: string[]) =>
    (await execFileAsync(file, args).catch(() => ({ stdout: 'unknown' }))).stdout.trim();
  const postfix = await command('postconf', ['-d', '-h', 'mail_version']);
  const dovecot = (await command('dovecot', ['--version'])).split(' ')[0];
  const version = (name: string) =>
    readFile(new URL(`../node_modules/${name}/package.json`, import.meta.url), 'utf8').then(
      (text) => (JSON.parse(text) as { version: string }).version,
      () => 'unknown',
    );
  return [
    `nodemailer ${await version('nodemailer')}`,
    `smtp-server ${await version('smtp-server')}`,
    `Postfix ${postfix}`,
    `Dovecot ${dovecot}`,
  ];
}

const progress = progressLogger('relay');

// ---------------------------------------------------------------------------

runBench('relay', parseOptions, measure);
