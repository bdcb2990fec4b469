/**
 * Relay benchmark (results and how to read them: bench/README.md).
 *
 * `mailbridge relay` runs as a child process from the build (dist/cli/main.js,
 * as users and the durability test run it) in front of real Postfix submission
 * (STARTTLS, SASL XOAUTH2 checked by Dovecot against the local token
 * service). The question is issue 21's: does a device lose anything by
 * sending through the relay rather than straight to Exchange with the same
 * number of connections? So in one run, `--rounds` times (medians reported):
 *   1. relay, full speed: `--clients` devices (10) submit without auth over
 *      loopback to the relay, which holds `--upstream-connections` (N = 3)
 *      connections to Postfix; the time to the relay's 250, and the time until
 *      the relay logs `delivered` for that Message-ID (its JSON log on stdout);
 *   2. direct, full speed: N nodemailer connections with XOAUTH2 and a static
 *      token straight to Postfix; the time to Postfix's 250;
 *   3. paced, both sides: the same again at half of that round's direct rate
 *      (open loop, a message is due at its time whether or not the last one
 *      is done), so the upstream keeps up and the end-to-end time through the
 *      relay minus the direct time is what the relay adds, not queueing.
 * In the full-speed phases the CPU time of every process involved (this
 * one's clients, the relay, Postfix's and Dovecot's processes) is read per
 * delivered message, with the machine's idle time: what the ratio could be on
 * these cores if CPU were the limit. The relay's RSS (/proc/PID/status) is read at rest after start, sampled
 * during the load and read again once it has drained. Every message must land
 * in Dovecot (IMAP STATUS per recipient). `--checkout DIR` runs the relay of
 * another checkout (e.g. a worktree of main) under the same clients.
 *
 * Needs root (the mail servers of test/helpers/mail-servers.ts) and the build
 * (`npm run bench:relay` builds first). Like
 * bench/smtp.ts it runs twice: a launcher that makes a throwaway CA and a
 * child that trusts it through NODE_EXTRA_CA_CERTS (the relay inherits it).
 *
 *   npx tsx bench/relay.ts [--messages 1000] [--clients 10] [--rounds 3]
 *                          [--upstream-connections 3] [--paced 300]
 *                          [--cpu-prof DIR] [--checkout DIR] [--write-readme]
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join, resolve } from 'node:path';
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
import { requireBuilt } from '../test/helpers/run-cli.js';
import { startTokenService } from '../test/helpers/token-service.js';
import {
  dovecotMaster,
  type MachineTimes,
  machineTimes,
  ownCpuSeconds,
  postfixMaster,
  processTimes,
  serverCpuSeconds,
} from './process-cpu.js';
import {
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

const SENDER = 'scanner@contoso.example';
/** Issue 21's goal for the delivered rate, relay / direct. */
const GOAL_RATIO = 0.9;
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
  rounds: number;
  paced: number;
  /** The checkout whose relay runs (another one to compare a change under the same load). */
  checkout: string;
  /** Where the relay child writes a V8 CPU profile (node --cpu-prof), if anywhere. */
  cpuProf: string | undefined;
  writeReadme: boolean;
}

function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      messages: { type: 'string', default: '1000' },
      clients: { type: 'string', default: '10' },
      'upstream-connections': { type: 'string', default: '3' },
      rounds: { type: 'string', default: '3' },
      paced: { type: 'string', default: '300' },
      'cpu-prof': { type: 'string' },
      checkout: { type: 'string', default: fileURLToPath(new URL('..', import.meta.url)) },
      'write-readme': { type: 'boolean', default: false },
    },
  });
  return {
    messages: wholeOption('messages', values.messages, 1, 100_000),
    clients: wholeOption('clients', values.clients, 1, 100),
    // Exchange allows 3 concurrent submissions per mailbox; the relay refuses more.
    upstreamConnections: wholeOption('upstream-connections', values['upstream-connections'], 1, 3),
    rounds: wholeOption('rounds', values.rounds, 1, 20),
    paced: wholeOption('paced', values.paced, 0, 100_000),
    cpuProf: values['cpu-prof'],
    checkout: resolve(values.checkout),
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

async function spawnRelay(
  configFile: string,
  env: Record<string, string>,
  options: BenchOptions,
): Promise<RelayChild> {
  const profile = options.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', options.cpuProf] : [];
  // The build, as the shipped CLI runs: under tsx the relay also paid for its loader and source maps.
  const cli = requireBuilt(join(options.checkout, 'dist/cli/main.js'));
  const child: ChildProcess = spawn(
    process.execPath,
    [...profile, cli, 'relay', '--config', configFile],
    { cwd: options.checkout, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
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

/**
 * Every process a message passes through, as the CPU figures group them:
 * `clients` is this process (the devices or the direct connections, and the
 * token service, the IMAP checks and the reading of the relay's log).
 */
const PARTS = ['clients', 'relay', 'postfix', 'dovecot'] as const;
type Part = (typeof PARTS)[number];

interface CpuReading {
  /** CPU seconds used so far, per part. */
  parts: Record<Part, number>;
  machine: MachineTimes;
}

/** Reads the CPU seconds of every part at once, and the machine's. */
function cpuMeters(relayPid: number, postfix: number, dovecot: number) {
  return async (): Promise<CpuReading> => ({
    parts: {
      clients: ownCpuSeconds({ user: 0, system: 0 }),
      relay: (await processTimes(relayPid)).own,
      postfix: await serverCpuSeconds(postfix),
      dovecot: await serverCpuSeconds(dovecot),
    },
    machine: await machineTimes(),
  });
}

/** Where a full-speed phase's CPU went. */
interface PhaseCpu {
  /** CPU ms per delivered message, per part. */
  perMessage: Record<Part, number>;
  /** Share of the machine's CPU time left idle from the phase's start to its last 250 (direct) or `delivered` (relay). */
  idle: number;
  /** CPU ms per message of every other process on the machine over the phase (other users' load). */
  others: number;
}

function phaseCpu(
  before: CpuReading,
  loadEnd: MachineTimes,
  after: CpuReading,
  messages: number,
): PhaseCpu {
  const perMessage = Object.fromEntries(
    PARTS.map((part) => [part, ((after.parts[part] - before.parts[part]) * 1000) / messages]),
  ) as Record<Part, number>;
  const idle = loadEnd.idle - before.machine.idle;
  const busy = loadEnd.busy - before.machine.busy;
  const machineMs = ((after.machine.busy - before.machine.busy) * 1000) / messages;
  return {
    perMessage,
    idle: idle / (idle + busy),
    others: Math.max(0, machineMs - totalCpu(perMessage)),
  };
}

const totalCpu = (perMessage: Record<Part, number>) =>
  PARTS.reduce((sum, part) => sum + perMessage[part], 0);

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
  /**
   * performance.now() when the message was due: when sendMail was called at
   * full speed, its slot in the schedule when paced. And when it got its 250.
   */
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
 * `transports`, one connection each, take messages from one shared queue. At
 * full speed (no `perSecond`) each sends its next message when the previous
 * one got its 250, so a message's time is its own and not time spent waiting
 * behind others. Paced, message i is due `i / perSecond` after the start and
 * its time counts from then: a wait for a free connection is part of it.
 */
async function runLoad(
  transports: Mail[],
  side: Side,
  count: number,
  label: string,
  perSecond?: number,
): Promise<LoadResult> {
  const stamp = Date.now();
  const ids = Array.from({ length: count }, (_, i) => `<${side}-${label}-${i}-${stamp}@bench.lan>`);
  const result: LoadResult = { submissions: [], startedAt: performance.now(), failed: 0 };
  let next = 0;
  await Promise.all(
    transports.map(async (transport) => {
      while (next < count) {
        const index = next++;
        const messageId = ids[index] as string;
        let startedAt = performance.now();
        if (perSecond !== undefined) {
          const due = result.startedAt + (index * 1000) / perSecond;
          if (due > startedAt) await delay(due - startedAt);
          startedAt = due;
        }
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

/** One round: both sides at full speed, then both paced at half the direct rate. */
interface Round {
  /** The 1-minute load average when the round started. */
  load: number;
  relay: LoadResult;
  relayCpu: PhaseCpu;
  direct: LoadResult;
  directCpu: PhaseCpu;
  pacedPerSecond: number;
  pacedRelay: LoadResult;
  pacedDirect: LoadResult;
}

interface Results {
  messageBytes: number;
  rounds: Round[];
  /** Arrival time (performance.now()) of each `delivered` line, by Message-ID. */
  deliveredAt: Map<string, number>;
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
    relay = await spawnRelay(configFile, env, options);
    progress(`relay pid ${relay.pid}`);
    const started = await relay.waitFor('started');
    const port = Number(/:(\d+)$/.exec(String(started.listen))?.[1]);
    await delay(SETTLE_MS);
    const atRest = await rssOf(relay.pid);

    const meters = cpuMeters(
      relay.pid,
      await postfixMaster(join(servers.dir, 'postfix', 'etc')),
      await dovecotMaster(join(servers.dir, 'dovecot', 'dovecot.conf')),
    );
    const results = await run(config, relay, meters, port, options, atRest);
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
  meters: () => Promise<CpuReading>,
  port: number,
  options: BenchOptions,
  atRest: number,
): Promise<Results> {
  // The baseline gets one token before it starts and keeps it.
  const staticToken = (await createTokenProvider(config).getToken()).accessToken;
  const smtp = config.smtp;
  const connection = (side: Side): Mail =>
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
        });
  // Devices to the relay; straight to Postfix, as many connections as the relay holds upstream.
  const transports: Record<Side, Mail[]> = {
    relay: Array.from({ length: options.clients }, () => connection('relay')),
    direct: Array.from({ length: options.upstreamConnections }, () => connection('direct')),
  };
  const inboxes = await openInboxes(config);
  const held: Record<Side, number> = { relay: 0, direct: 0 };
  // Postfix delivers into Dovecot in the background: each phase starts on an empty queue.
  // Returns the machine's times when the last message reached Postfix.
  const settle = async (side: Side, load: LoadResult): Promise<MachineTimes> => {
    held[side] += load.submissions.length;
    if (side === 'relay') await relay.waitForDelivered(held.relay);
    const loadEnd = await machineTimes();
    await inboxes.waitFor(side, held[side]);
    return loadEnd;
  };
  try {
    progress(`warm-up: ${WARM_UP_MESSAGES} messages per side`);
    for (const side of ['relay', 'direct'] as const) {
      await settle(side, await runLoad(transports[side], side, WARM_UP_MESSAGES, 'warm-up'));
    }

    const sampler = sampleRss(relay.pid);
    const rounds: Round[] = [];
    for (let r = 1; r <= options.rounds; r++) {
      const load = os.loadavg()[0] as number;
      const phase = async (side: Side, label: string, count: number, perSecond?: number) => {
        progress(
          `round ${r}/${options.rounds} (load ${load.toFixed(2)}): ${side} ${label}, ${count} messages from ${transports[side].length} connections`,
        );
        const before = await meters();
        const result = await runLoad(transports[side], side, count, `${label}-${r}`, perSecond);
        const loadEnd = await settle(side, result);
        // Counted once Dovecot holds everything: Postfix's delivery is part of a message's cost.
        const cpu = phaseCpu(before, loadEnd, await meters(), result.submissions.length);
        return { result, cpu };
      };
      const relayFull = await phase('relay', 'full', options.messages);
      const directFull = await phase('direct', 'full', options.messages);
      const direct = directFull.result;
      const pacedPerSecond = directRate(direct) / 2;
      const pacedRelay = (await phase('relay', 'paced', options.paced, pacedPerSecond)).result;
      const pacedDirect = (await phase('direct', 'paced', options.paced, pacedPerSecond)).result;
      rounds.push({
        load,
        relay: relayFull.result,
        relayCpu: relayFull.cpu,
        direct,
        directCpu: directFull.cpu,
        pacedPerSecond,
        pacedRelay,
        pacedDirect,
      });
    }
    const peak = await sampler.stop();
    const drained = await rssOf(relay.pid);

    return {
      messageBytes: await sizeOf(message('relay', '<size@bench.lan>')),
      rounds,
      deliveredAt: relay.deliveredAt,
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

const perSecond = (n: number, from: number, to: number) => n / ((to - from) / 1000);
const lastOf = (values: (number | undefined)[]) =>
  Math.max(...values.filter((v): v is number => v !== undefined));

/** Direct messages per second: from the first sendMail to the last 250 (Postfix has it). */
function directRate(load: LoadResult): number {
  return perSecond(
    load.submissions.length,
    load.startedAt,
    lastOf(load.submissions.map((s) => s.acceptedAt)),
  );
}

/** Per message, from its start to the relay's `delivered` line. */
function endToEnd(load: LoadResult, deliveredAt: Map<string, number>): number[] {
  return load.submissions.flatMap((s) => {
    const at = deliveredAt.get(s.messageId);
    return at === undefined ? [] : [at - s.startedAt];
  });
}

const toAcceptance = (load: LoadResult) => load.submissions.map((s) => s.acceptedAt - s.startedAt);

/** Nearest-rank percentile. */
function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

/** Each figure of one round; the table shows the median over rounds and every round. */
interface RoundFigures {
  load: number;
  relayAccepted: number;
  relayDelivered: number;
  direct: number;
  ratio: number;
  relayCpu: PhaseCpu;
  directCpu: PhaseCpu;
  /** Relay / direct delivered rate if all the work of both sides were CPU-bound on this machine. */
  cpuBoundRatio: number;
  /** The relay process's CPU per message that would let the relay path reach 0.9× of direct when CPU-bound. */
  relayCpuFor90: number;
  relay250: [number, number];
  direct250: [number, number];
  relayEndToEnd: [number, number];
  pacedPerSecond: number;
  pacedEndToEnd: [number, number];
  pacedDirect: [number, number];
  added: [number, number];
  delivered: number;
}

function roundFigures(round: Round, deliveredAt: Map<string, number>): RoundFigures {
  const p = (values: number[]): [number, number] => [
    percentile(values, 50),
    percentile(values, 99),
  ];
  const { relay } = round;
  const delivered = relay.submissions.map((s) => deliveredAt.get(s.messageId));
  const relayDelivered = perSecond(
    delivered.filter((d) => d !== undefined).length,
    relay.startedAt,
    lastOf(delivered),
  );
  const direct = directRate(round.direct);
  const pacedEndToEnd = p(endToEnd(round.pacedRelay, deliveredAt));
  const pacedDirect = p(toAcceptance(round.pacedDirect));
  return {
    load: round.load,
    relayAccepted: perSecond(
      relay.submissions.length,
      relay.startedAt,
      lastOf(relay.submissions.map((s) => s.acceptedAt)),
    ),
    relayDelivered,
    direct,
    ratio: relayDelivered / direct,
    relayCpu: round.relayCpu,
    directCpu: round.directCpu,
    cpuBoundRatio: totalCpu(round.directCpu.perMessage) / totalCpu(round.relayCpu.perMessage),
    relayCpuFor90:
      totalCpu(round.directCpu.perMessage) / GOAL_RATIO -
      (totalCpu(round.relayCpu.perMessage) - round.relayCpu.perMessage.relay),
    relay250: p(toAcceptance(relay)),
    direct250: p(toAcceptance(round.direct)),
    relayEndToEnd: p(endToEnd(relay, deliveredAt)),
    pacedPerSecond: round.pacedPerSecond,
    pacedEndToEnd,
    pacedDirect,
    added: [pacedEndToEnd[0] - pacedDirect[0], pacedEndToEnd[1] - pacedDirect[1]],
    delivered: endToEnd(relay, deliveredAt).length + endToEnd(round.pacedRelay, deliveredAt).length,
  };
}

function check(results: Results, options: BenchOptions): string[] {
  const problems: string[] = [];
  const perSide = WARM_UP_MESSAGES + options.rounds * (options.messages + options.paced);
  for (const [r, round] of results.rounds.entries()) {
    for (const [name, load] of Object.entries({
      relay: round.relay,
      direct: round.direct,
      'paced relay': round.pacedRelay,
      'paced direct': round.pacedDirect,
    })) {
      if (load.failed > 0)
        problems.push(
          `round ${r + 1}, ${name}: ${load.failed} message(s) not accepted (${load.firstFailure})`,
        );
    }
    const delivered = roundFigures(round, results.deliveredAt).delivered;
    if (delivered !== options.messages + options.paced)
      problems.push(
        `round ${r + 1}: ${delivered} of ${options.messages + options.paced} delivered events`,
      );
  }
  for (const side of ['relay', 'direct'] as const) {
    if (results.delivered[side] !== perSide)
      problems.push(
        `${RECIPIENTS[side]}: Dovecot holds ${results.delivered[side]} messages, expected ${perSide}`,
      );
  }
  for (const event of results.trouble) problems.push(`relay logged ${JSON.stringify(event)}`);
  return problems;
}

type Row = (
  label: string,
  pick: (f: RoundFigures) => number,
  show?: (v: number) => string,
) => string[];

/**
 * Where the CPU went at full speed, per delivered message, and what that
 * allows: with every core busy a path delivers at most cores / (its CPU per
 * message), so if both sides were CPU-bound the ratio of delivered rates is
 * the inverse ratio of their CPU per message.
 */
function cpuRows(
  row: Row,
  ratio: (v: number) => string,
  fixed: (digits: number) => (v: number) => string,
): string[][] {
  const ms = fixed(2);
  const percent = (v: number) => `${(v * 100).toFixed(0)} %`;
  const cores = os.cpus().length;
  const perSide = (
    side: 'relay' | 'direct',
    label: string,
    pick: (f: RoundFigures) => PhaseCpu,
  ) => [
    ...PARTS.filter((part) => side === 'relay' || part !== 'relay').map((part) =>
      row(`${label}: ${PART_LABELS[part]} (ms per message)`, (f) => pick(f).perMessage[part], ms),
    ),
    row(`**${label}: all of them** (ms per message)`, (f) => totalCpu(pick(f).perMessage), ms),
    row(
      `${label}: its ceiling if CPU-bound, ${cores} cores (messages/s)`,
      (f) => (cores * 1000) / totalCpu(pick(f).perMessage),
    ),
    row(
      `${label}: machine idle until the last message reached Postfix`,
      (f) => pick(f).idle,
      percent,
    ),
    row(`${label}: other processes on the machine (ms per message)`, (f) => pick(f).others, ms),
  ];
  return [
    ...perSide('relay', 'Relay path', (f) => f.relayCpu),
    ...perSide('direct', 'Direct path', (f) => f.directCpu),
    row(
      '**Delivered rate the relay could reach if CPU-bound**, direct path CPU / relay path CPU',
      (f) => f.cpuBoundRatio,
      ratio,
    ),
    row(
      'The same with a relay process that used no CPU: direct path CPU / the relay path’s other parts',
      (f) =>
        totalCpu(f.directCpu.perMessage) /
        (totalCpu(f.relayCpu.perMessage) - f.relayCpu.perMessage.relay),
      ratio,
    ),
    row(
      `**Relay process CPU per message that 0.90× needs when CPU-bound** (ms)`,
      (f) => f.relayCpuFor90,
      (v) => (v > 0 ? ms(v) : `${ms(v)} (unreachable)`),
    ),
  ];
}

const PART_LABELS: Record<Part, string> = {
  clients: 'clients (bench process)',
  relay: 'relay process',
  postfix: 'Postfix (all its processes)',
  dovecot: 'Dovecot (all its processes)',
};

function renderResults(results: Results, options: BenchOptions): string {
  const rounds = results.rounds.map((round) => roundFigures(round, results.deliveredAt));
  const n = options.upstreamConnections;
  const fixed = (digits: number) => (v: number) => (Number.isFinite(v) ? v.toFixed(digits) : '-');
  const row = (label: string, pick: (f: RoundFigures) => number, show = fixed(1)) => [
    label,
    show(median(rounds.map(pick))),
    rounds.map((f) => show(pick(f))).join(' / '),
  ];
  const p50p99 = (label: string, pick: (f: RoundFigures) => [number, number]) => [
    row(`${label} p50 (ms)`, (f) => pick(f)[0]),
    row(`${label} p99 (ms)`, (f) => pick(f)[1]),
  ];
  const ratio = (v: number) => `${v.toFixed(2)}×`;
  const header = [
    `${options.messages} messages per side and round, N = ${n}`,
    `median of ${rounds.length}`,
    'each round',
  ];
  const figures = markdownTable(header, [
    row('Load average (1 min) at the start of the round', (f) => f.load, fixed(2)),
    row(`Direct: ${n} connections to Postfix (messages/s)`, (f) => f.direct),
    row(`Relay: accepted from ${options.clients} devices (messages/s)`, (f) => f.relayAccepted),
    row(`Relay: delivered upstream over ${n} connections (messages/s)`, (f) => f.relayDelivered),
    row('**Delivered rate, relay / direct** (goal ≥ 0.90×)', (f) => f.ratio, ratio),
    row(
      'Relay process CPU per message, accepting and delivering (ms)',
      (f) => f.relayCpu.perMessage.relay,
      fixed(2),
    ),
    ...p50p99('Direct: 250', (f) => f.direct250),
    ...p50p99('Relay: device’s 250', (f) => f.relay250),
    row(
      '**Device’s 250 p99, relay − direct** (goal ≤ 20 ms)',
      (f) => f.relay250[1] - f.direct250[1],
    ),
    ...p50p99('Relay: end to end at full speed, queueing included,', (f) => f.relayEndToEnd),
    row(`Paced, ${options.paced} messages per side (messages/s)`, (f) => f.pacedPerSecond),
    ...p50p99('Paced direct: 250', (f) => f.pacedDirect),
    ...p50p99('Paced relay: end to end', (f) => f.pacedEndToEnd),
    row('**Added latency p50**, paced relay end to end − direct (ms)', (f) => f.added[0]),
    row(
      '**Added latency p99**, paced relay end to end − direct (goal < 200 ms)',
      (f) => f.added[1],
    ),
  ]);
  const cpu = markdownTable(
    ['CPU at full speed, per delivered message', header[1] as string, header[2] as string],
    cpuRows(row, ratio, fixed),
  );
  const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
  const memory = markdownTable(
    ['Relay process RSS (MB)', 'VmRSS'],
    [
      [`At rest, ${SETTLE_MS / 1000} s after start`, mb(results.rss.atRest)],
      [`Peak over all rounds (sampled every ${RSS_SAMPLE_MS} ms)`, mb(results.rss.peak)],
      ['After the last round, queue drained', mb(results.rss.drained)],
    ],
  );
  const held = WARM_UP_MESSAGES + options.rounds * (options.messages + options.paced);
  return [
    figures,
    cpu,
    memory,
    `Each message: ${(results.messageBytes / 1024).toFixed(1)} KB as sent (4 KB of text and a 12 KB ` +
      `attachment), one recipient, from ${SENDER}. The relay: \`rateLimitPerMinute: false\`, ` +
      `${n} upstream connections for the mailbox (\`connectionsPerMailbox\`), run from the ` +
      `build (\`node dist/cli/main.js relay\`). Dovecot held ${results.delivered.relay} (relay) ` +
      `and ${results.delivered.direct} (direct) of ${held} messages each, warm-up included.`,
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
