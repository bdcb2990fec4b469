/**
 * Archive benchmark (results and how to read them: bench/README.md).
 *
 * One Dovecot mailbox of `--messages` messages (bench/archive-seed.ts: real
 * MIME, 2 KB – 2 MB, median about 20 KB) is pulled, from cold, in the same
 * run, by these clients, over implicit TLS with the same XOAUTH2 login:
 *   1. ours: `archiveMailbox(config, { mailbox, outDir })` into an empty
 *      directory (fsync per message file and per manifest batch);
 *   2. mbsync (Debian's isync, `FSync yes`, its default) into an empty
 *      Maildir, `Sync Pull`, `Create Near`, the token as its password
 *      through the Cyrus SASL plugin of `libsasl2-modules-kdexoauth2`;
 *   3. the raw ceiling: a minimal TLS client that logs in, SELECTs INBOX,
 *      sends one `UID FETCH 1:* BODY.PEEK[]` and discards what it reads;
 *   4. the disk ceiling: the same bytes, from memory, written as durable
 *      files (temp, fdatasync, rename) with no server at all;
 *   5. the minimal durable client: the raw ceiling's reader writing each
 *      message as the disk ceiling does. No hash, no parsing, no manifest,
 *      no reconnects: what any client that keeps the crash-safety rule with a
 *      flush per file could reach here;
 *   6. the required work only: the minimal client plus what the issue asks
 *      of every message, its SHA-256 and the manifest's metadata
 *      (`parseMessageMetadata`, as ours), and nothing else: no IMAP library,
 *      no manifest file, no session helper;
 *   7. the required work through imapflow: the same, with imapflow (logged
 *      in by `createImapClient`, as ours is) reading one
 *      `UID FETCH 1:* BODY.PEEK[]`. Against 6 it prices the IMAP library,
 *      against ours everything else ours does.
 * `--rounds` rounds, each running the seven in a rotated order; medians, and
 * each client's CPU time.
 *
 * `--wan`: ours with `--connections 4` and with one connection, and mbsync,
 * all through the shaping proxy of the migrate bench
 * (test/helpers/shaping-proxy.ts, bench/wan.ts: 15 ms each way, 2 MB/s per
 * connection), what a user archiving from Exchange Online meets; the results
 * go to their own section of bench/README.md. `--connections N` sets ours's
 * connections on loopback (default: the archive's default).
 *
 * Needs root, the mail servers of test/helpers/mail-servers.ts and
 * `apt-get install isync libsasl2-modules-kdexoauth2`. Like bench/smtp.ts it
 * runs twice: a launcher that makes a throwaway CA and a child that trusts it.
 *
 *   npx tsx bench/archive.ts [--messages 10000] [--rounds 3] [--wan] [--connections N] [--write-readme]
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fdatasync,
  mkdirSync,
  open as openCallback,
  renameSync,
  writeSync,
} from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { promisify } from 'node:util';
import {
  archiveMailbox,
  createImapClient,
  createTokenProvider,
  loadConfig,
  type MailbridgeConfig,
} from '../src/index.js';
import { parseMessageMetadata } from '../src/jobs/archive/metadata.js';
import { DEFAULT_ARCHIVE_CONNECTIONS } from '../src/jobs/archive/runner.js';
import { fsyncDirectory } from '../src/util/durable.js';
import { appEnvironment } from '../test/helpers/app-env.js';
import {
  EXCHANGE_AUDIENCE,
  IMAP_ROLE,
  type MailServers,
  startMailServers,
} from '../test/helpers/mail-servers.js';
import { type ShapingProxy, startShapingProxy } from '../test/helpers/shaping-proxy.js';
import { startTokenService } from '../test/helpers/token-service.js';
import { buildMessage, messageSizes, seedMaildir } from './archive-seed.js';
import {
  childrenCpuSeconds,
  dovecotMaster,
  mailUser,
  ownCpuSeconds,
  serverCpuSeconds,
} from './process-cpu.js';
import {
  type CorpusBenchOptions,
  corpusBenchOptions,
  describeMachine,
  markdownTable,
  median,
  progressLogger,
  README,
  runBench,
  writeReadmeSection,
} from './support.js';
import { describeWan } from './wan.js';

const MAILBOX = 'bench-archive@contoso.example';
const SASL_PLUGIN_DIRS = ['/usr/lib/x86_64-linux-gnu/sasl2', '/usr/lib/aarch64-linux-gnu/sasl2'];
/** Goals from the issue: ours / mbsync and ours / raw, messages per second. */
const GOAL_VS_MBSYNC = 1.5;
/** Issue 16: on the WAN profile, `archive --connections 4` against mbsync. */
const WAN_CONNECTIONS = 4;
const GOAL_VS_RAW = 0.5;

const execFileAsync = promisify(execFile);
const openFile = promisify(openCallback);
const datasync = promisify(fdatasync);

type Side = 'ours' | 'ours1' | 'mbsync' | 'raw' | 'disk' | 'minimal' | 'required' | 'library';
const SIDES: readonly Side[] = ['ours', 'mbsync', 'raw', 'disk', 'minimal', 'required', 'library'];
/** Through the shaping proxy: the real clients, ours with WAN_CONNECTIONS (`ours`) and with one. */
const WAN_SIDES: readonly Side[] = ['ours', 'ours1', 'mbsync'];
/** How the ratio rows name each client. */
const SIDE_NAMES: Record<Side, string> = {
  ours: 'ours',
  ours1: 'ours, one connection',
  mbsync: 'mbsync',
  raw: 'raw ceiling',
  disk: 'disk ceiling',
  minimal: 'minimal durable client',
  required: 'required work only',
  library: 'required work through imapflow',
};
/** Files the disk ceiling writes and flushes at once: as many as the archive (src/jobs/archive/message-archiver.ts). */
const DISK_CONCURRENCY = 32;

interface Run {
  side: Side;
  round: number;
  ms: number;
  /** CPU seconds (user + system) of the client: the bench process, or mbsync. */
  cpu: number;
  /** CPU seconds of the Dovecot instance meanwhile (master, its children, and those it reaped). */
  serverCpu: number;
  messages: number;
  /** Load average (1 min) when the run started. */
  load: number;
}

interface Context {
  /** For ours: IMAP at `imap`. */
  config: MailbridgeConfig;
  servers: MailServers;
  /** Where ours and mbsync connect: Dovecot, or the shaping proxy in front of it. */
  imap: { host: string; port: number };
  /**
   * What mbsync trusts: the test CA and Dovecot's own certificate. isync 1.4
   * matches the host name against DNS names only, never an IP address
   * subjectAltName, and Dovecot listens on 127.0.0.1 only; a certificate
   * listed in CertificateFile is accepted without the host name check.
   */
  mbsyncTrust: string;
  work: string;
}

// ---------------------------------------------------------------------------
// The clients

async function token(config: MailbridgeConfig): Promise<string> {
  return (await createTokenProvider(config).getToken()).accessToken;
}

/** A message file written and flushed, or being so, waiting for its rename. */
interface FileInFlight {
  file: string;
  name: string;
  done: Promise<void>;
}

/**
 * Message files written the way the archive's store does: a temp file opened
 * and flushed through the threadpool, written, closed and renamed with
 * synchronous calls; up to DISK_CONCURRENCY at once, renamed in order; the
 * directory flushed at the end.
 */
class DurableFiles {
  private readonly temp: string;
  private readonly final: string;
  private readonly inFlight: FileInFlight[] = [];
  /** Renames run one at a time, in order, whoever asks for them. */
  private placing: Promise<void> = Promise.resolve();
  private count = 0;

  /** `requiredWork`: also hash and read the manifest metadata of every message, as ours must. */
  constructor(
    dir: string,
    private readonly requiredWork = false,
  ) {
    this.temp = join(dir, 'tmp');
    this.final = join(dir, 'cur');
    mkdirSync(this.temp);
    mkdirSync(this.final);
  }

  get full(): boolean {
    return this.inFlight.length >= DISK_CONCURRENCY;
  }

  add(data: Buffer): void {
    const n = ++this.count;
    const file = join(this.temp, `${n}.part`);
    const written = (async () => {
      const fd = await openFile(file, 'wx', 0o600);
      try {
        writeSync(fd, data);
        await datasync(fd);
      } finally {
        closeSync(fd);
      }
    })();
    let done = written;
    if (this.requiredWork) {
      createHash('sha256').update(data).digest('hex');
      const metadata = parseMessageMetadata(data);
      done = Promise.all([written, metadata]).then(() => {});
    }
    // Awaited in order by place(); until then a failure must not count as unhandled.
    done.catch(() => {});
    this.inFlight.push({ file, name: `${n}.eml`, done });
  }

  /** Renames files in order until fewer than `keep` (at least 1) are in flight. */
  place(keep = DISK_CONCURRENCY): Promise<void> {
    this.placing = this.placing.then(async () => {
      while (this.inFlight.length >= keep) {
        const head = this.inFlight[0] as FileInFlight;
        await head.done;
        this.inFlight.shift();
        renameSync(head.file, join(this.final, head.name));
      }
    });
    return this.placing;
  }

  async finish(): Promise<number> {
    await this.place(1);
    await fsyncDirectory(this.final);
    return this.count;
  }
}

/**
 * The disk ceiling: the messages' bytes, already in memory, written as
 * durable files. No server, no parsing, no hashing: what this machine's
 * filesystem allows for durable message files.
 */
async function runDisk(dir: string, messages: readonly Buffer[]): Promise<number> {
  const files = new DurableFiles(dir);
  for (const message of messages) {
    files.add(message);
    if (files.full) await files.place();
  }
  return files.finish();
}

/**
 * The required work with imapflow as the reader: what any client built on the
 * IMAP library ours uses, keeping the crash-safety rule and doing the issue's
 * per-message work, could reach here. One FETCH of every message, imapflow's
 * backpressure holding the socket while DISK_CONCURRENCY files are in flight.
 */
async function runLibrary(ctx: Context, dir: string): Promise<number> {
  const files = new DurableFiles(dir, true);
  const client = await createImapClient(ctx.config, { mailbox: MAILBOX });
  try {
    await client.mailboxOpen('INBOX', { readOnly: true });
    for await (const message of client.fetch('1:*', { uid: true, source: true }, { uid: true })) {
      if (!message.source) throw new Error(`imapflow gave UID ${message.uid} without its body`);
      files.add(message.source);
      if (files.full) await files.place();
    }
  } finally {
    await client.logout();
  }
  return files.finish();
}

/** Ours, through the library, into an empty directory; the token fetch included. */
async function runOurs(ctx: Context, dir: string, connections: number): Promise<number> {
  const result = await archiveMailbox(ctx.config, { mailbox: MAILBOX, outDir: dir, connections });
  if (!result.ok) throw new Error(`archiveMailbox did not finish: ${JSON.stringify(result)}`);
  return result.messagesNew;
}

/** mbsync into an empty Maildir; the token is fetched before, as a password manager would. */
async function runMbsync(ctx: Context, dir: string, accessToken: string): Promise<number> {
  const tokenFile = join(dir, 'token');
  await writeFile(tokenFile, accessToken, { mode: 0o600 });
  const maildir = join(dir, 'Maildir');
  // mbsync creates folders inside its store, not the store itself.
  await mkdir(maildir);
  const configFile = join(dir, 'mbsyncrc');
  await writeFile(
    configFile,
    [
      'FSync yes',
      '',
      'IMAPAccount bench',
      `Host ${ctx.imap.host}`,
      `Port ${ctx.imap.port}`,
      `User ${MAILBOX}`,
      `PassCmd "cat ${tokenFile}"`,
      'SSLType IMAPS',
      `CertificateFile ${ctx.mbsyncTrust}`,
      'SystemCertificates no',
      'AuthMechs XOAUTH2',
      '',
      'IMAPStore remote',
      'Account bench',
      '',
      'MaildirStore local',
      `Path ${maildir}/`,
      `Inbox ${maildir}/INBOX`,
      'SubFolders Verbatim',
      '',
      'Channel bench',
      'Far :remote:',
      'Near :local:',
      'Patterns *',
      'Sync Pull',
      'Create Near',
      'SyncState *',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn('mbsync', ['-c', configFile, 'bench'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    child.stdout.on('data', (d: Buffer) => {
      text += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      text += d.toString();
    });
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve(text) : reject(new Error(`mbsync exited with ${code}:\n${text}`)),
    );
  });
  let count = 0;
  for (const sub of ['cur', 'new']) {
    count += (await readdir(join(maildir, 'INBOX', sub)).catch(() => [])).length;
  }
  if (count === 0) throw new Error(`mbsync stored nothing:\n${output}`);
  return count;
}

interface RawResult {
  messages: number;
  bytes: number;
}

/**
 * The ceiling: login with SASL-IR, SELECT, one `UID FETCH 1:* BODY.PEEK[]`,
 * every byte read and dropped, skipping literals by their announced length.
 * With `files` (the minimal durable client), each message is written there
 * instead, the socket paused while DISK_CONCURRENCY files are in flight.
 */
function runRaw(ctx: Context, accessToken: string, files?: DurableFiles): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: ctx.servers.imap.host, port: ctx.servers.imap.port });
    const sasl = Buffer.from(`user=${MAILBOX}\x01auth=Bearer ${accessToken}\x01\x01`).toString(
      'base64',
    );
    const steps = [
      `a AUTHENTICATE XOAUTH2 ${sasl}\r\n`,
      'b SELECT INBOX\r\n',
      'c UID FETCH 1:* BODY.PEEK[]\r\n',
      'd LOGOUT\r\n',
    ];
    let step = -1;
    let pending: Buffer = Buffer.alloc(0);
    let literalLeft = 0;
    let message: Buffer[] | undefined;
    let paused = false;
    const result: RawResult = { messages: 0, bytes: 0 };
    const fail = (error: Error) => {
      socket.destroy();
      reject(error);
    };
    const line = (text: string) => {
      const literal = /\{(\d+)\}\r\n$/.exec(text);
      if (literal) {
        literalLeft = Number(literal[1]);
        if (step === 2) {
          result.bytes += literalLeft;
          result.messages++;
          if (files) message = [];
        }
      }
      if (step < 0 ? text.startsWith('* OK') : text.startsWith(`${'abcd'[step]} `)) {
        if (step >= 0 && !text.startsWith(`${'abcd'[step]} OK`)) {
          fail(new Error(`raw client: ${text.trim()}`));
          return;
        }
        step++;
        if (step < steps.length) socket.write(steps[step] as string);
        else {
          socket.end();
          if (files) files.finish().then(() => resolve(result), fail);
          else resolve(result);
        }
      }
    };
    socket.on('data', (chunk: Buffer) => {
      let pos = 0;
      while (pos < chunk.length) {
        if (literalLeft > 0) {
          const take = Math.min(literalLeft, chunk.length - pos);
          message?.push(chunk.subarray(pos, pos + take));
          literalLeft -= take;
          pos += take;
          if (literalLeft === 0 && files && message) {
            files.add(Buffer.concat(message));
            message = undefined;
            if (files.full && !paused) {
              paused = true;
              socket.pause();
              files.place().then(() => {
                paused = false;
                socket.resume();
              }, fail);
            }
          }
          continue;
        }
        const nl = chunk.indexOf(10, pos);
        if (nl < 0) {
          pending = Buffer.concat([pending, chunk.subarray(pos)]);
          break;
        }
        const bytes = Buffer.concat([pending, chunk.subarray(pos, nl + 1)]);
        pending = Buffer.alloc(0);
        pos = nl + 1;
        line(bytes.toString('latin1'));
      }
    });
    socket.on('error', fail);
    socket.on('close', () => {
      if (step < steps.length) fail(new Error('raw client: connection closed early'));
    });
  });
}

// ---------------------------------------------------------------------------

async function measure(options: CorpusBenchOptions): Promise<number> {
  const missing = await missingTools();
  if (missing.length > 0) {
    process.stderr.write(
      `bench:archive needs ${missing.join(' and ')}: apt-get install -y isync libsasl2-modules-kdexoauth2\n`,
    );
    return 2;
  }
  const service = await startTokenService();
  let servers: MailServers | undefined;
  let proxy: ShapingProxy | undefined;
  const work = await mkdtemp(join(os.tmpdir(), 'mailbridge-bench-archive-'));
  try {
    progress('starting Dovecot');
    servers = await startMailServers({ tokenService: service });
    const app = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE] } });
    await servers.grantMailbox(app.clientId, MAILBOX);
    const config = await loadConfig({
      env: appEnvironment(service, app, { imap: servers.imap }),
    });
    const mbsyncTrust = join(work, 'mbsync-trust.pem');
    const tlsDir = join(servers.dir, 'tls');
    await writeFile(
      mbsyncTrust,
      (await readFile(join(tlsDir, 'ca.pem'), 'utf8')) +
        (await readFile(join(tlsDir, 'server.pem'), 'utf8')),
    );
    let ctx: Context = { config, servers, imap: servers.imap, mbsyncTrust, work };
    if (options.wan) {
      proxy = await startShapingProxy(servers.imap);
      ctx = {
        ...ctx,
        imap: proxy,
        config: await loadConfig({ env: appEnvironment(service, app, { imap: proxy }) }),
      };
    }
    const sides = options.wan ? WAN_SIDES : SIDES;
    // How test/helpers/mail-servers.ts lays out the instance: its master runs with this file.
    const dovecot = await dovecotMaster(join(servers.dir, 'dovecot', 'dovecot.conf'));

    progress(`seeding ${options.messages} messages`);
    const seedStart = performance.now();
    const [domain, user] = [MAILBOX.split('@')[1] as string, MAILBOX.split('@')[0] as string];
    const [uid, gid] = await mailUser();
    const seeded = await seedMaildir(
      join(servers.dir, 'mail', domain, user, 'Maildir'),
      options.messages,
      MAILBOX,
      { uid, gid },
    );
    await execFileAsync('sync');
    progress(
      `seeded ${seeded.messages} messages, ${mb(seeded.bytes)} MB, in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`,
    );

    // Dovecot gives the files UIDs and builds its index at the first SELECT: not measured.
    progress('warm-up: one raw fetch (Dovecot indexes the Maildir)');
    const warm = await runRaw(ctx, await token(config));
    if (warm.messages !== options.messages || warm.bytes !== seeded.bytes) {
      throw new Error(
        `Dovecot serves ${warm.messages} messages, ${warm.bytes} bytes; seeded ${seeded.messages}, ${seeded.bytes}`,
      );
    }

    // The disk ceiling's input: the same bytes as served (CRLF), made before anything is timed.
    const sizes = messageSizes(options.messages);
    const served = sizes.map((size, i) =>
      Buffer.from(buildMessage(i, size, MAILBOX).replace(/\n/g, '\r\n'), 'utf8'),
    );
    if (served.reduce((sum, m) => sum + m.length, 0) !== seeded.bytes) {
      throw new Error('the disk ceiling would not write the bytes Dovecot serves');
    }

    const runs: Run[] = [];
    for (let round = 0; round < options.rounds; round++) {
      const order = sides.map((_, i) => sides[(i + round) % sides.length] as Side);
      for (const side of order) {
        const dir = await mkdtemp(join(work, `${side}-`));
        try {
          const accessToken =
            side === 'ours' || side === 'ours1' || side === 'disk' || side === 'library'
              ? ''
              : await token(config);
          await execFileAsync('sync');
          const load = os.loadavg()[0] as number;
          const childCpu = await childrenCpuSeconds();
          const serverStart = await serverCpuSeconds(dovecot);
          const cpuStart = process.cpuUsage();
          const start = performance.now();
          let messages: number;
          if (side === 'ours')
            messages = await runOurs(ctx, dir, options.wan ? WAN_CONNECTIONS : options.connections);
          else if (side === 'ours1') messages = await runOurs(ctx, dir, 1);
          else if (side === 'mbsync') messages = await runMbsync(ctx, dir, accessToken);
          else if (side === 'disk') messages = await runDisk(dir, served);
          else if (side === 'library') messages = await runLibrary(ctx, dir);
          else {
            const files =
              side === 'minimal' || side === 'required'
                ? new DurableFiles(dir, side === 'required')
                : undefined;
            const raw = await runRaw(ctx, accessToken, files);
            if (raw.bytes !== seeded.bytes) throw new Error(`raw read ${raw.bytes} bytes`);
            messages = raw.messages;
          }
          const ms = performance.now() - start;
          const cpu =
            side === 'mbsync' ? (await childrenCpuSeconds()) - childCpu : ownCpuSeconds(cpuStart);
          const serverCpu = (await serverCpuSeconds(dovecot)) - serverStart;
          if (messages !== options.messages)
            throw new Error(`${side} got ${messages} of ${options.messages} messages`);
          runs.push({ side, round, ms, cpu, serverCpu, messages, load });
          progress(
            `round ${round + 1}: ${side} ${(ms / 1000).toFixed(2)} s, ${(messages / (ms / 1000)).toFixed(0)} messages/s, load ${load.toFixed(1)}`,
          );
        } finally {
          // Kept until the end (`work` is removed then), not deleted here: on ext4 without a
          // journal, a new file's inode allocation skips inodes deleted in the last seconds,
          // one inode table lookup each, so 10,000 files just deleted made the next client
          // pay for the previous one (perf: __ext4_new_inode, recently_deleted). This run's
          // writeback is not the next client's cost either.
          await execFileAsync('sync');
        }
      }
    }

    const machine = describeMachine(await softwareVersions());
    const table = proxy
      ? renderWan(runs, options, seeded.bytes, proxy)
      : render(runs, options, seeded.bytes);
    process.stdout.write(`${machine}\n\n${table}\n`);
    if (options.writeReadme) {
      await writeReadmeSection(proxy ? 'archive-wan' : 'archive', `${machine}\n\n${table}`);
      process.stderr.write(`wrote the results into ${README}\n`);
    }
    return 0;
  } finally {
    await proxy?.close();
    await servers?.stop();
    await service.close();
    await rm(work, { recursive: true, force: true });
  }
}

function render(runs: Run[], options: CorpusBenchOptions, bytes: number): string {
  const seconds = (side: Side) => runs.filter((r) => r.side === side).map((r) => r.ms / 1000);
  const wall = Object.fromEntries(SIDES.map((s) => [s, median(seconds(s))])) as Record<
    Side,
    number
  >;
  const rate = (side: Side) => options.messages / wall[side];
  const mbps = (side: Side) => bytes / 1024 / 1024 / wall[side];
  const x = (v: number) => `${v.toFixed(2)}×`;
  // Per round, `side` against `other` of the same round.
  const perRoundOf = (side: Side, other: Side) =>
    Array.from({ length: options.rounds }, (_, round) => {
      const of = (s: Side) => runs.find((r) => r.side === s && r.round === round)?.ms;
      return (of(other) ?? Number.NaN) / (of(side) ?? Number.NaN);
    });
  const perRound = (other: Side) => perRoundOf('ours', other);
  const range = (values: number[]) => `${x(Math.min(...values))} – ${x(Math.max(...values))}`;
  // A ratio row without a goal: of the medians, and over the rounds.
  const compared = (side: Side, other: Side) => [
    `${SIDE_NAMES[side]} / ${SIDE_NAMES[other]}`,
    x(rate(side) / rate(other)),
    range(perRoundOf(side, other)),
    '',
    '',
  ];
  const vsMbsync = rate('ours') / rate('mbsync');
  const vsRaw = rate('ours') / rate('raw');
  const cpu = (side: Side) => median(runs.filter((r) => r.side === side).map((r) => r.cpu));
  const serverCpu = (side: Side) =>
    median(runs.filter((r) => r.side === side).map((r) => r.serverCpu));
  const table = markdownTable(
    [
      `${options.messages} messages, ${mb(bytes)} MB, median of ${options.rounds} round(s)`,
      `ours: \`archiveMailbox\`${options.connections === 1 ? '' : `, ${options.connections} connections`}`,
      'mbsync (isync, FSync yes)',
      'raw ceiling: one `UID FETCH 1:* BODY.PEEK[]`',
      'disk ceiling: the same bytes as durable files, no server',
      "minimal durable client: the raw reader writing the disk ceiling's files",
      'required work only: the minimal client, plus SHA-256 and metadata',
      'required work through imapflow: the same, read by imapflow',
    ],
    [
      ['Messages/s', ...SIDES.map((s) => rate(s).toFixed(0))],
      ['MB/s', ...SIDES.map((s) => mbps(s).toFixed(1))],
      ['Wall time (s), median', ...SIDES.map((s) => wall[s].toFixed(2))],
      [
        'Wall time (s), every round',
        ...SIDES.map((s) =>
          seconds(s)
            .map((v) => v.toFixed(2))
            .join(', '),
        ),
      ],
      ['CPU time (s, user + system), median', ...SIDES.map((s) => cpu(s).toFixed(2))],
      ['CPU per message (µs)', ...SIDES.map((s) => ((cpu(s) / options.messages) * 1e6).toFixed(0))],
      [
        "Dovecot's CPU per message (µs), median",
        ...SIDES.map((s) => ((serverCpu(s) / options.messages) * 1e6).toFixed(0)),
      ],
    ],
  );
  const ratios = markdownTable(
    ['Ratio (messages/s)', 'of the medians', 'range over the rounds', 'goal', 'met'],
    [
      [
        'ours / mbsync',
        x(vsMbsync),
        range(perRound('mbsync')),
        `≥ ${GOAL_VS_MBSYNC.toFixed(2)}×`,
        vsMbsync >= GOAL_VS_MBSYNC ? 'yes' : '**no**',
      ],
      [
        'ours / raw ceiling',
        x(vsRaw),
        range(perRound('raw')),
        `≥ ${GOAL_VS_RAW.toFixed(2)}×`,
        vsRaw >= GOAL_VS_RAW ? 'yes' : '**no**',
      ],
      compared('ours', 'disk'),
      ['disk ceiling / raw ceiling', x(rate('disk') / rate('raw')), '', '', ''],
      compared('minimal', 'mbsync'),
      compared('minimal', 'raw'),
      compared('required', 'mbsync'),
      compared('required', 'raw'),
      compared('library', 'mbsync'),
      compared('library', 'raw'),
      compared('ours', 'library'),
    ],
  );
  return [
    table,
    ratios,
    `Messages: bench/archive-seed.ts, ${options.messages} in INBOX, real MIME, 2 KB – 2 MB, ` +
      `median about 20 KB; MB are the bytes Dovecot serves (${bytes} bytes, CRLF), the same ` +
      'for all seven. Every run starts from an empty directory and logs in anew; rounds rotate ' +
      "the order of the clients. CPU time is the client's own (the bench process, or mbsync); " +
      "Dovecot's, on the same two cores, is on its own row.",
  ].join('\n\n');
}

/** Ours (with WAN_CONNECTIONS, and with one) against mbsync through the shaping proxy. */
function renderWan(
  runs: Run[],
  options: CorpusBenchOptions,
  bytes: number,
  proxy: ShapingProxy,
): string {
  const of = (side: Side) => runs.filter((r) => r.side === side);
  const rate = (side: Side) => options.messages / median(of(side).map((r) => r.ms / 1000));
  const every = (side: Side, value: (r: Run) => string) => of(side).map(value).join(', ');
  const table = markdownTable(
    [
      `${describeWan(proxy)}; ${options.messages} messages, ${mb(bytes)} MB, median of ${options.rounds} round(s)`,
      `ours: \`archive --connections ${WAN_CONNECTIONS}\``,
      'ours: one connection (`--connections 1`)',
      'mbsync (isync, FSync yes)',
    ],
    [
      ['Messages/s', ...WAN_SIDES.map((s) => rate(s).toFixed(0))],
      [
        'MB/s',
        ...WAN_SIDES.map((s) => ((rate(s) * bytes) / options.messages / 2 ** 20).toFixed(1)),
      ],
      [
        'Wall time (s), every round',
        ...WAN_SIDES.map((s) => every(s, (r) => (r.ms / 1000).toFixed(1))),
      ],
      [
        'Load average (1 min) at the start, every round',
        ...WAN_SIDES.map((s) => every(s, (r) => r.load.toFixed(1))),
      ],
      [
        'CPU per message (µs), median',
        ...WAN_SIDES.map((s) =>
          ((median(of(s).map((r) => r.cpu)) / options.messages) * 1e6).toFixed(0),
        ),
      ],
    ],
  );
  // `side` against `other`: of the medians, and per round.
  const compared = (side: Side, other: Side) => {
    const perRound = Array.from({ length: options.rounds }, (_, round) => {
      const ms = (s: Side) => of(s).find((r) => r.round === round)?.ms ?? Number.NaN;
      return ms(other) / ms(side);
    });
    return {
      ratio: rate(side) / rate(other),
      range: `${Math.min(...perRound).toFixed(2)}× – ${Math.max(...perRound).toFixed(2)}×`,
    };
  };
  const vsMbsync = compared('ours', 'mbsync');
  const row = (name: string, c: { ratio: number; range: string }) => [
    name,
    `${c.ratio.toFixed(2)}×`,
    c.range,
    '',
    '',
  ];
  const ratios = markdownTable(
    ['Ratio (messages/s)', 'of the medians', 'range over the rounds', 'goal', 'met'],
    [
      [
        `ours, ${WAN_CONNECTIONS} connections / mbsync`,
        `${vsMbsync.ratio.toFixed(2)}×`,
        vsMbsync.range,
        `≥ ${GOAL_VS_MBSYNC.toFixed(2)}×`,
        vsMbsync.ratio >= GOAL_VS_MBSYNC ? 'yes' : '**no**',
      ],
      row('ours, one connection / mbsync', compared('ours1', 'mbsync')),
      row(`ours, ${WAN_CONNECTIONS} connections / one`, compared('ours', 'ours1')),
    ],
  );
  return [
    table,
    ratios,
    `Messages: bench/archive-seed.ts, ${options.messages} in INBOX (one folder: its UIDs go ` +
      `in parts to the ${WAN_CONNECTIONS} connections). Every client reaches Dovecot through ` +
      'test/helpers/shaping-proxy.ts, each connection shaped on its own; mbsync uses one ' +
      'connection. Rounds rotate the order of the clients.',
  ].join('\n\n');
}

function mb(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}

async function missingTools(): Promise<string[]> {
  const missing: string[] = [];
  try {
    await execFileAsync('mbsync', ['--version']);
  } catch {
    missing.push('mbsync (isync)');
  }
  if (!SASL_PLUGIN_DIRS.some((dir) => existsSync(join(dir, 'libkdexoauth2.so')))) {
    missing.push('the SASL XOAUTH2 plugin (libsasl2-modules-kdexoauth2)');
  }
  return missing;
}

async function softwareVersions(): Promise<string[]> {
  const command = async (file: string, args: string[]) =>
    (await execFileAsync(file, args).catch(() => ({ stdout: 'unknown' }))).stdout.trim();
  const dovecot = (await command('dovecot', ['--version'])).split(' ')[0];
  const isync = (await command('mbsync', ['--version'])).replace(/^isync\s*/, '');
  const imapflow = await readFile(
    new URL('../node_modules/imapflow/package.json', import.meta.url),
    'utf8',
  ).then(
    (text) => (JSON.parse(text) as { version: string }).version,
    () => 'unknown',
  );
  const fs = await command('findmnt', ['-n', '-o', 'FSTYPE', '-T', os.tmpdir()]);
  return [
    `imapflow ${imapflow}`,
    `Dovecot ${dovecot}`,
    `isync ${isync}`,
    `${os.tmpdir()} on ${fs}`,
  ];
}

const progress = progressLogger('archive');

// ---------------------------------------------------------------------------

runBench(
  'archive',
  (argv) => corpusBenchOptions(argv, { rounds: 3, connections: DEFAULT_ARCHIVE_CONNECTIONS }),
  measure,
);
