/**
 * Tenant scale (issue 20; results and how to read them: bench/README.md):
 * many mailboxes archived through the job queue by 1, 2 and 4 worker
 * processes, in the same run, each mailbox reached through the WAN-like
 * shaping proxy (test/helpers/shaping-proxy.ts: 15 ms each way, 2 MB/s per
 * connection each way), since Exchange Online serves each connection slowly
 * and the throughput of a tenant comes from many mailboxes at once.
 *
 * `--mailboxes` mailboxes of `--messages` messages each (bench/archive-seed.ts,
 * written straight into Dovecot's Maildirs and indexed before anything is
 * timed), a real Redis (test/helpers/redis-server.ts). For each worker count:
 * that many `mailbridge worker --queue …` processes (the built CLI, its
 * defaults: concurrency 4, 8 connections per mailbox) are started and ready,
 * then `mailbridge archive --mailboxes FILE --out DIR --queue …` enqueues one
 * job per mailbox, and the clock runs until every job is done. Then the
 * workers get SIGTERM and the archive is checked (a manifest line per message).
 *
 * Then, in the same run, the second table: bench/archive-blob.ts
 * (the 10,000-message corpus archived into Azurite against into a local
 * directory, Azurite through the same shaping proxy), as a child process of
 * its own once the scale servers are stopped; `--blob-messages 0` skips it.
 *
 *   npm run bench:scale -- [--mailboxes 200] [--messages 50] [--workers 1,2,4]
 *     [--rounds 1] [--blob-messages 10000] [--blob-rounds 1] [--write-readme]
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createImapClient, loadConfig } from '../src/index.js';
import { mailboxDirName } from '../src/jobs/archive/paths.js';
import { ARCHIVE_QUEUE } from '../src/jobs/queue/job-data.js';
import { KEY_PREFIX } from '../src/jobs/queue/redis.js';
import { appEnvironment } from '../test/helpers/app-env.js';
import {
  EXCHANGE_AUDIENCE,
  IMAP_ROLE,
  type MailServers,
  startMailServers,
} from '../test/helpers/mail-servers.js';
import { type RedisServer, startRedisServer } from '../test/helpers/redis-server.js';
import { CLI_PATH, cliEnv, runCli } from '../test/helpers/run-cli.js';
import { type ShapingProxy, startShapingProxy } from '../test/helpers/shaping-proxy.js';
import { startTokenService } from '../test/helpers/token-service.js';
import { seedMaildir } from './archive-seed.js';
import { childrenCpuSeconds, dovecotMaster, mailUser, serverCpuSeconds } from './process-cpu.js';
import {
  describeMachine,
  markdownTable,
  median,
  progressLogger,
  README,
  runBench,
  wholeOption,
  writeReadmeSection,
} from './support.js';
import { describeWan } from './wan.js';

/** The goal: 4 workers against 1, mailboxes per minute. */
const GOAL_AT_4 = 3.2;
const WARM_UP_LANES = 4;
const POLL_MS = 250;

const execFileAsync = promisify(execFile);
const progress = progressLogger('scale');

interface BenchOptions {
  mailboxes: number;
  messages: number;
  workers: number[];
  rounds: number;
  /** Messages of the blob bench's corpus (bench/archive-blob.ts); 0: not run. */
  blobMessages: number;
  blobRounds: number;
  writeReadme: boolean;
}

function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      mailboxes: { type: 'string', default: '200' },
      messages: { type: 'string', default: '50' },
      workers: { type: 'string', default: '1,2,4' },
      rounds: { type: 'string', default: '1' },
      'blob-messages': { type: 'string', default: '10000' },
      'blob-rounds': { type: 'string', default: '1' },
      'write-readme': { type: 'boolean', default: false },
    },
  });
  const workers = values.workers
    .split(',')
    .map((w) => wholeOption('workers', w.trim(), 1, 16))
    .sort((a, b) => a - b);
  if (!workers.includes(1)) throw new Error('--workers must include 1: the ratios are to 1 worker');
  return {
    mailboxes: wholeOption('mailboxes', values.mailboxes, 1, 10_000),
    messages: wholeOption('messages', values.messages, 1, 10_000),
    workers,
    rounds: wholeOption('rounds', values.rounds, 1, 10),
    blobMessages: wholeOption('blob-messages', values['blob-messages'], 0, 100_000),
    blobRounds: wholeOption('blob-rounds', values['blob-rounds'], 1, 20),
    writeReadme: values['write-readme'],
  };
}

interface Run {
  workers: number;
  round: number;
  /** From the first job a worker took to the last one it finished (BullMQ's timestamps). */
  ms: number;
  /** From starting `archive --queue` (a CLI start: seconds on a loaded machine) to the last job done. */
  endToEndMs: number;
  /** Load average (1 min) when the run started. */
  load: number;
  /** CPU seconds of the worker processes (reaped children) and of Dovecot. */
  workerCpu: number;
  serverCpu: number;
  connections: number;
}

interface WorkerProcess {
  child: ChildProcess;
  output(): string;
}

/** A `mailbridge worker` process. */
function startWorker(env: Record<string, string>, queueUrl: string): WorkerProcess {
  const child = spawn(process.execPath, [CLI_PATH, 'worker', '--queue', queueUrl], {
    env: cliEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (d: string) => {
    output = (output + d).slice(-20_000);
  };
  child.stdout?.setEncoding('utf8').on('data', keep);
  child.stderr?.setEncoding('utf8').on('data', keep);
  return { child, output: () => output };
}

/** Resolves once Redis lists `count` workers of the queue (BullMQ names their connections). */
async function workersReady(queue: Queue, workers: WorkerProcess[]): Promise<void> {
  const deadline = Date.now() + 120_000;
  while ((await queue.getWorkersCount()) < workers.length) {
    for (const w of workers) {
      if (w.child.exitCode !== null) throw new Error(`a worker exited at start:\n${w.output()}`);
    }
    if (Date.now() > deadline) throw new Error('the workers did not start in 120 s');
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stopWorkers(workers: WorkerProcess[]): Promise<void> {
  await Promise.all(
    workers.map(async ({ child }) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }),
  );
}

/** Manifest lines under `out`, one per archived message. */
async function archivedMessages(out: string, mailboxes: readonly string[]): Promise<number> {
  let lines = 0;
  for (const mailbox of mailboxes) {
    const text = await readFile(join(out, mailboxDirName(mailbox), 'manifest.jsonl'), 'utf8');
    lines += text.split('\n').filter((l) => l.trim() !== '').length;
  }
  return lines;
}

/** The scale table, then the blob table of bench/archive-blob.ts. */
async function measure(options: BenchOptions): Promise<number> {
  const code = await measureScale(options);
  if (code !== 0 || options.blobMessages === 0) return code;
  progress(`archive of ${options.blobMessages} messages into Azurite against a local directory`);
  return archiveBlobBench(options);
}

/** bench/archive-blob.ts in a child (its own CA and servers), through the same shaping proxy. */
async function archiveBlobBench(options: BenchOptions): Promise<number> {
  const file = join(dirname(fileURLToPath(import.meta.url)), 'archive-blob.ts');
  const args = [
    '--messages',
    String(options.blobMessages),
    '--rounds',
    String(options.blobRounds),
    '--wan',
    ...(options.writeReadme ? ['--write-readme'] : []),
  ];
  // execArgv carries tsx's loader, as bench/support.ts runs the measuring child.
  const child = spawn(process.execPath, [...process.execArgv, file, ...args], {
    stdio: 'inherit',
  });
  const [exitCode] = (await once(child, 'exit')) as [number | null];
  return exitCode ?? 1;
}

async function measureScale(options: BenchOptions): Promise<number> {
  const service = await startTokenService();
  const work = await mkdtemp(join(os.tmpdir(), 'mailbridge-bench-scale-'));
  let servers: MailServers | undefined;
  let redisServer: RedisServer | undefined;
  let proxy: ShapingProxy | undefined;
  let redis: Redis | undefined;
  let queue: Queue | undefined;
  const running: WorkerProcess[] = [];
  try {
    progress('starting Dovecot and Redis');
    [servers, redisServer] = await Promise.all([
      startMailServers({ tokenService: service }),
      startRedisServer(),
    ]);
    const app = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE] } });
    const mailboxes = Array.from(
      { length: options.mailboxes },
      (_, i) => `scale${String(i).padStart(4, '0')}@contoso.example`,
    );
    progress(`seeding ${options.mailboxes} mailboxes × ${options.messages} messages`);
    const seedStart = performance.now();
    const [uid, gid] = await mailUser();
    let bytes = 0;
    for (const mailbox of mailboxes) {
      await servers.grantMailbox(app.clientId, mailbox);
      const [user, domain] = mailbox.split('@') as [string, string];
      const seeded = await seedMaildir(
        join(servers.dir, 'mail', domain, user, 'Maildir'),
        options.messages,
        mailbox,
        { uid, gid },
      );
      bytes += seeded.bytes;
    }
    await execFileAsync('sync');
    // Dovecot gives the files UIDs and builds its index at the first SELECT: not measured.
    const direct = await loadConfig({ env: appEnvironment(service, app, { imap: servers.imap }) });
    let next = 0;
    await Promise.all(
      Array.from({ length: WARM_UP_LANES }, async () => {
        for (let i = next++; i < mailboxes.length; i = next++) {
          const mailbox = mailboxes[i] as string;
          const client = await createImapClient(direct, { mailbox });
          const status = await client.mailboxOpen('INBOX', { readOnly: true });
          await client.logout();
          if (status.exists !== options.messages) {
            throw new Error(`${mailbox}: Dovecot serves ${status.exists} messages`);
          }
        }
      }),
    );
    const total = options.mailboxes * options.messages;
    progress(
      `seeded and indexed ${total} messages, ${mb(bytes)} MB, in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`,
    );

    proxy = await startShapingProxy(servers.imap);
    const env = appEnvironment(service, app, { imap: proxy });
    const listFile = join(work, 'mailboxes.txt');
    await writeFile(listFile, `${mailboxes.join('\n')}\n`);
    redis = new Redis(redisServer.port, redisServer.host, { maxRetriesPerRequest: null });
    queue = new Queue(ARCHIVE_QUEUE, { connection: redis, prefix: KEY_PREFIX });
    const dovecot = await dovecotMaster(join(servers.dir, 'dovecot', 'dovecot.conf'));

    const runs: Run[] = [];
    for (let round = 0; round < options.rounds; round++) {
      // Rounds alternate the order, so a busy stretch of the machine does not hit one count only.
      const order = round % 2 === 0 ? options.workers : [...options.workers].reverse();
      for (const count of order) {
        await redis.flushall();
        const out = await mkdtemp(join(work, `out-${count}-`));
        const workerCpuStart = await childrenCpuSeconds();
        const workers: WorkerProcess[] = [];
        for (let w = 0; w < count; w++) {
          const worker = startWorker(env, redisServer.url);
          workers.push(worker);
          running.push(worker);
        }
        await workersReady(queue, workers);
        await execFileAsync('sync');
        const load = os.loadavg()[0] as number;
        const serverStart = await serverCpuSeconds(dovecot);
        const connectionsStart = proxy.connections;
        const start = performance.now();
        const enqueued = await runCli(
          ['archive', '--mailboxes', listFile, '--out', out, '--queue', redisServer.url, '--json'],
          env,
          { timeoutMs: 120_000 },
        );
        if (enqueued.code !== 0) throw new Error(`archive --queue failed:\n${enqueued.stderr}`);
        for (;;) {
          const counts = await queue.getJobCounts('completed', 'failed');
          if ((counts.failed ?? 0) > 0) {
            const [failed] = await queue.getFailed(0, 0);
            throw new Error(`a job failed: ${failed?.failedReason}`);
          }
          if ((counts.completed ?? 0) >= options.mailboxes) break;
          for (const w of workers) {
            if (w.child.exitCode !== null) throw new Error(`a worker exited:\n${w.output()}`);
          }
          await new Promise((r) => setTimeout(r, POLL_MS));
        }
        const endToEndMs = performance.now() - start;
        const jobs = await queue.getJobs(['completed'], 0, -1);
        const ms =
          Math.max(...jobs.map((j) => j.finishedOn ?? 0)) -
          Math.min(...jobs.map((j) => j.processedOn ?? Number.POSITIVE_INFINITY));
        const serverCpu = (await serverCpuSeconds(dovecot)) - serverStart;
        const connections = proxy.connections - connectionsStart;
        await stopWorkers(workers);
        const workerCpu = (await childrenCpuSeconds()) - workerCpuStart;
        const archived = await archivedMessages(out, mailboxes);
        if (archived !== total)
          throw new Error(`${count} workers archived ${archived} of ${total}`);
        runs.push({
          workers: count,
          round,
          ms,
          endToEndMs,
          load,
          workerCpu,
          serverCpu,
          connections,
        });
        progress(
          `round ${round + 1}: ${count} worker(s) ${(ms / 1000).toFixed(1)} s (${(endToEndMs / 1000).toFixed(1)} s with the enqueue), ${((options.mailboxes / ms) * 60_000).toFixed(0)} mailboxes/min, load ${load.toFixed(1)}`,
        );
        await rm(out, { recursive: true, force: true });
      }
    }

    const machine = describeMachine(await softwareVersions());
    const text = `${machine}\n\n${render(runs, options, bytes, proxy)}`;
    process.stdout.write(`${text}\n`);
    if (options.writeReadme) {
      await writeReadmeSection('scale', text);
      process.stderr.write(`wrote the results into ${README}\n`);
    }
    return 0;
  } finally {
    await stopWorkers(running).catch(() => {});
    await queue?.close().catch(() => {});
    redis?.disconnect();
    await proxy?.close();
    await redisServer?.stop();
    await servers?.stop();
    await service.close();
    await rm(work, { recursive: true, force: true });
  }
}

function render(runs: Run[], options: BenchOptions, bytes: number, proxy: ShapingProxy): string {
  const of = (workers: number) => runs.filter((r) => r.workers === workers);
  const perMinute = (workers: number) =>
    (options.mailboxes / median(of(workers).map((r) => r.ms))) * 60_000;
  const base = perMinute(1);
  const total = options.mailboxes * options.messages;
  const rows = options.workers.map((workers) => {
    const mine = of(workers);
    const rate = perMinute(workers);
    const ratio = rate / base;
    return [
      `${workers} worker${workers === 1 ? '' : 's'}`,
      mine.map((r) => (r.ms / 1000).toFixed(1)).join(', '),
      mine.map((r) => (r.endToEndMs / 1000).toFixed(1)).join(', '),
      rate.toFixed(0),
      ((rate / 60) * options.messages).toFixed(0),
      `${ratio.toFixed(2)}×`,
      workers === 4
        ? `≥ ${GOAL_AT_4.toFixed(1)}× ${ratio >= GOAL_AT_4 ? '(met)' : '(**not met**)'}`
        : '',
      mine.map((r) => r.load.toFixed(1)).join(', '),
      ((median(mine.map((r) => r.workerCpu)) / total) * 1e6).toFixed(0),
      ((median(mine.map((r) => r.serverCpu)) / total) * 1e6).toFixed(0),
      String(median(mine.map((r) => r.connections))),
    ];
  });
  const table = markdownTable(
    [
      `${options.mailboxes} mailboxes × ${options.messages} messages (${mb(bytes)} MB), ${describeWan(proxy)}`,
      'first job taken → last done (s), every round',
      'with the enqueue (s)',
      'mailboxes/min (median)',
      'messages/s',
      'ratio to 1 worker',
      'goal',
      'load average (1 min) at the start',
      'workers’ CPU per message (µs)',
      'Dovecot’s CPU per message (µs)',
      'IMAP connections opened',
    ],
    rows,
  );
  return [
    table,
    `Each worker: \`mailbridge worker --queue …\` (built CLI, defaults: 4 mailboxes at once, ` +
      'up to 8 connections per mailbox), started and ready (listed by Redis) before anything is ' +
      'timed. The rates are over the span from the first job a worker took to the last one ' +
      'finished (the jobs’ own timestamps); the column with the enqueue adds the start of ' +
      '`mailbridge archive --mailboxes FILE --queue …` (a Node start). Messages: ' +
      `bench/archive-seed.ts, ${options.messages} per mailbox, into a local directory. ` +
      'The shaping proxy and the token service run in the bench process; Dovecot, Redis and the ' +
      'workers share the same cores.',
  ].join('\n\n');
}

function mb(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}

async function softwareVersions(): Promise<string[]> {
  const command = async (file: string, args: string[]) =>
    (await execFileAsync(file, args).catch(() => ({ stdout: 'unknown' }))).stdout.trim();
  const dovecot = (await command('dovecot', ['--version'])).split(' ')[0];
  const redis = /v=(\S+)/.exec(await command('redis-server', ['--version']))?.[1] ?? 'unknown';
  const load = os.loadavg().map((l) => l.toFixed(1));
  return [`Dovecot ${dovecot}`, `Redis ${redis}`, `load average at the end ${load.join(' ')}`];
}

runBench('scale', parseOptions, measure);
