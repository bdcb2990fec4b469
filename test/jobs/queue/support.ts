/**
 * Shared by the queue tests: Dovecot and the token service (test/helpers),
 * a real Redis with a password, mailboxes seeded straight into Dovecot, the
 * built CLI's `worker` as child processes, and what Dovecot itself says
 * about the sessions (its logout lines, `doveadm who`).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ContainerClient } from '@azure/storage-blob';
import type { Queue } from 'bullmq';
import type { ImapFlow } from 'imapflow';
import { Redis } from 'ioredis';
import { createImapClient } from '../../../src/clients/imap-client.js';
import { loadConfig } from '../../../src/config/load.js';
import {
  type ManifestRecord,
  readManifest,
  readManifestChunks,
} from '../../../src/jobs/archive/manifest.js';
import { mailboxDirName } from '../../../src/jobs/archive/paths.js';
import type { JobKind } from '../../../src/jobs/queue/job-data.js';
import {
  enqueueArchiveRun,
  openQueue,
  type RunStatus,
  runKind,
  runStatus,
} from '../../../src/jobs/queue/runs.js';
import { readQueueSettings } from '../../../src/jobs/queue/settings.js';
import { type ArchiveWorkerSummary, runWorker } from '../../../src/jobs/queue/worker.js';
import type { Logger } from '../../../src/log/logger.js';
import { appEnvironment } from '../../helpers/app-env.js';
import {
  EXCHANGE_AUDIENCE,
  IMAP_ROLE,
  type MailServers,
  startMailServers,
} from '../../helpers/mail-servers.js';
import { type RedisServer, startRedisServer } from '../../helpers/redis-server.js';
import { CLI_PATH, type CliResult, cliEnv, runCli } from '../../helpers/run-cli.js';
import { startTokenService, type TokenService } from '../../helpers/token-service.js';

export const REDIS_PASSWORD = 'queue-test-secret';

export interface QueueTestEnv {
  service: TokenService;
  servers: MailServers;
  redis: RedisServer;
  /** App settings and MAILBRIDGE_REDIS_URL (with the password): what a worker machine sets. */
  env: Record<string, string>;
  /** `--queue`: the server without its password. */
  queueUrl: string;
  /** A config file with a `queue:` section. */
  configFile(queue: Record<string, unknown>): Promise<string>;
  direct(mailbox: string): Promise<ImapFlow>;
  cli(args: string[], options?: { timeoutMs?: number }): Promise<CliResult>;
  /**
   * A run's status as `jobs status --json` gives it, read by this process:
   * for polling, where a `jobs status` each time costs a Node start (about a
   * second of CPU) a poll.
   */
  runStatus(runId: string): Promise<RunStatus>;
  /**
   * `extraEnv` on top of `env`, e.g. a migrate source's password.
   * `withoutAppSettings`: only MAILBRIDGE_REDIS_URL of `env`, a worker for imaps:// migrations.
   */
  startWorker(
    args: string[],
    extraEnv?: Record<string, string>,
    options?: { withoutAppSettings?: boolean },
  ): Worker;
  /** SIGKILLs the workers still running: after each test, so that none takes the next test's jobs. */
  killWorkers(): Promise<void>;
  /**
   * One archive job per mailbox, enqueued by this process as `archive --queue`
   * does: for tests about the jobs, not the command.
   */
  enqueueArchive(outDir: string, mailboxes: readonly string[], attempts: number): Promise<string>;
  /**
   * A worker in this process (`runWorker`, what `mailbridge worker` runs),
   * with `configFile`'s queue settings: no Node start, and what it logs.
   */
  startInProcessWorker(configFile: string): Promise<InProcessWorker>;
  close(): Promise<void>;
}

export interface InProcessWorker {
  /** Each log line's message and fields. */
  logged: { message: string; fields: Record<string, unknown> }[];
  stop(): Promise<ArchiveWorkerSummary>;
}

export interface Worker {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

export async function startQueueTestEnv(
  mailboxes: readonly string[],
  options: { passwordUsers?: Record<string, string> } = {},
): Promise<QueueTestEnv> {
  const service = await startTokenService();
  const servers = await startMailServers({
    tokenService: service,
    // Only IMAP here: SMTP submission by this process, not Postfix (about 1.3 s of CPU a start).
    submission: 'node',
    ...(options.passwordUsers ? { passwordUsers: options.passwordUsers } : {}),
  });
  const redis = await startRedisServer({ password: REDIS_PASSWORD });
  const dir = await mkdtemp(join(tmpdir(), 'mailbridge-queue-test-'));
  const app = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE] } });
  for (const mailbox of mailboxes) await servers.grantMailbox(app.clientId, mailbox);
  const env = {
    ...appEnvironment(service, app, { imap: servers.imap }),
    MAILBRIDGE_REDIS_URL: `redis://:${REDIS_PASSWORD}@127.0.0.1:${redis.port}/0`,
  };
  const config = await loadConfig({ env });
  const statusRedis = new Redis(env.MAILBRIDGE_REDIS_URL, { maxRetriesPerRequest: null });
  // Redis restarts in one test: the poll fails meanwhile (waitUntil tries again), nothing to report.
  statusRedis.on('error', () => {});
  const queues = new Map<JobKind, Queue>();
  const queueOf = (kind: JobKind) => {
    let queue = queues.get(kind);
    if (!queue) {
      queue = openQueue(statusRedis, kind);
      queues.set(kind, queue);
    }
    return queue;
  };
  const workers: Worker[] = [];
  const killWorkers = async () => {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
    await Promise.all(workers.map((w) => w.exited));
  };
  let files = 0;
  const inProcess: InProcessWorker[] = [];
  /** The in-process workers stopped, the child workers SIGKILLed. */
  const stopEveryWorker = async () => {
    await Promise.all(inProcess.splice(0).map((w) => w.stop()));
    await killWorkers();
  };
  return {
    service,
    servers,
    redis,
    env,
    queueUrl: redis.url,
    async configFile(queue) {
      const file = join(dir, `config-${++files}.json`);
      await writeFile(file, JSON.stringify({ queue }), { mode: 0o600 });
      return file;
    },
    direct: (mailbox) => createImapClient(config, { mailbox }),
    cli: (args, options = {}) => runCli(args, env, { timeoutMs: options.timeoutMs ?? 30_000 }),
    runStatus: async (runId) =>
      runStatus(queueOf(await runKind(statusRedis, runId)), statusRedis, runId),
    startWorker(args, extraEnv = {}, options = {}) {
      const base = options.withoutAppSettings
        ? { MAILBRIDGE_REDIS_URL: env.MAILBRIDGE_REDIS_URL as string }
        : env;
      const child = spawn(process.execPath, [CLI_PATH, 'worker', ...args], {
        env: cliEnv({ ...base, ...extraEnv }),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout?.setEncoding('utf8').on('data', (d: string) => {
        output += d;
      });
      child.stderr?.setEncoding('utf8').on('data', (d: string) => {
        output += d;
      });
      const exited = new Promise<number | null>((resolve) =>
        child.on('close', (code) => resolve(code)),
      );
      const worker = { child, output: () => output, exited };
      workers.push(worker);
      return worker;
    },
    killWorkers: stopEveryWorker,
    async enqueueArchive(outDir, list, attempts) {
      const run = await enqueueArchiveRun(queueOf('archive'), statusRedis, {
        mailboxes: list,
        job: { outDir, folders: [], exclude: [], allowEmpty: false, repair: false },
        attempts,
      });
      return run.runId;
    },
    async startInProcessWorker(configFile) {
      const settings = await readQueueSettings({ configFile, env });
      const controller = new AbortController();
      const logged: InProcessWorker['logged'] = [];
      const logger: Logger = {
        log: (_level, message, fields = {}) => logged.push({ message, fields }),
      };
      const running = runWorker(config, {
        settings,
        concurrency: settings.concurrency,
        logger,
        signal: controller.signal,
        env,
      });
      const worker: InProcessWorker = {
        logged,
        stop: () => {
          controller.abort();
          return running;
        },
      };
      inProcess.push(worker);
      return worker;
    },
    async close() {
      await stopEveryWorker();
      await Promise.all([...queues.values()].map((q) => q.close()));
      statusRedis.disconnect();
      await redis.stop();
      await servers.stop();
      await service.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Per folder: SHA-256 over each message's SHA-256 in UID order, and the count, as the server has them. */
export async function serverFolderHashes(
  client: ImapFlow,
): Promise<Map<string, { count: number; sha256: string }>> {
  const out = new Map<string, { count: number; sha256: string }>();
  for (const folder of await client.list()) {
    if ([...folder.flags].some((f) => /^\\(noselect|nonexistent)$/i.test(f))) continue;
    const status = await client.mailboxOpen(folder.path, { readOnly: true });
    const hashes: [number, string][] = [];
    if (status.exists > 0) {
      for await (const m of client.fetch('1:*', { uid: true, source: true })) {
        hashes.push([
          m.uid,
          createHash('sha256')
            .update(m.source as Buffer)
            .digest('hex'),
        ]);
      }
    }
    out.set(folder.path, digest(hashes));
  }
  return out;
}

/** The same from an archive directory: each file's SHA-256 as it is on disk, by the manifest's UIDs. */
export async function archiveFolderHashes(
  outDir: string,
  mailbox: string,
): Promise<Map<string, { count: number; sha256: string }>> {
  const dir = join(outDir, mailboxDirName(mailbox));
  const records: ManifestRecord[] = [];
  await readManifest(join(dir, 'manifest.jsonl'), (r) => records.push(r));
  return manifestFolderHashes(records, (path) => readFile(join(dir, ...path.split('/'))));
}

/** The same from a blob container: each blob's SHA-256 as the service returns it. */
export async function blobFolderHashes(
  container: ContainerClient,
  prefix: string,
  mailbox: string,
): Promise<Map<string, { count: number; sha256: string }>> {
  const root = `${prefix}${mailboxDirName(mailbox)}/`;
  const records: ManifestRecord[] = [];
  const manifest = await container.getBlobClient(`${root}manifest.jsonl`).download();
  await readManifestChunks(manifest.readableStreamBody as AsyncIterable<Buffer>, (r) =>
    records.push(r),
  );
  return manifestFolderHashes(records, (path) =>
    container.getBlobClient(`${root}${path}`).downloadToBuffer(),
  );
}

async function manifestFolderHashes(
  records: readonly ManifestRecord[],
  read: (path: string) => Promise<Buffer>,
): Promise<Map<string, { count: number; sha256: string }>> {
  const byFolder = new Map<string, [number, string][]>();
  // A few at a time: thousands of blobs one after another would be slow, all at once too many sockets.
  let next = 0;
  const reader = async () => {
    for (let r = records[next++]; r; r = records[next++]) {
      const sha = createHash('sha256')
        .update(await read(r.path))
        .digest('hex');
      const list = byFolder.get(r.folder) ?? [];
      list.push([r.uid, sha]);
      byFolder.set(r.folder, list);
    }
  };
  await Promise.all(Array.from({ length: 8 }, reader));
  return new Map([...byFolder].map(([folder, list]) => [folder, digest(list)]));
}

function digest(list: [number, string][]): { count: number; sha256: string } {
  const hash = createHash('sha256');
  for (const [uid, sha] of list.sort((a, b) => a[0] - b[0])) hash.update(`${uid} ${sha}\n`);
  return { count: list.length, sha256: hash.digest('hex') };
}

/** Bodies Dovecot served (`body_count=` of its logout lines), in total so far. */
export async function bodiesFetched(servers: MailServers): Promise<number> {
  const log = await servers.logs();
  let total = 0;
  for (const m of log.matchAll(/\bbody_count=(\d+)/g)) total += Number(m[1]);
  return total;
}

/** Sessions per user Dovecot holds now, from `doveadm who`. */
export function sessionsNow(servers: MailServers): Promise<Map<string, number>> {
  return new Promise((resolve) => {
    execFile(
      'doveadm',
      ['-c', join(servers.dir, 'dovecot', 'dovecot.conf'), 'who', '-1'],
      (error, stdout) => {
        const counts = new Map<string, number>();
        if (!error) {
          for (const line of stdout.split('\n').slice(1)) {
            const user = line.trim().split(/\s+/)[0];
            if (user) counts.set(user, (counts.get(user) ?? 0) + 1);
          }
        }
        resolve(counts);
      },
    );
  });
}

export function waitUntil(
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return (async () => {
    let failure: unknown;
    while (Date.now() < deadline) {
      // A check that fails (Redis restarting) is "not yet"; its last error goes with the timeout.
      try {
        if (await check()) return;
      } catch (error) {
        failure = error;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(
      `timed out waiting for ${what}${failure ? ` (last check: ${(failure as Error).message})` : ''}`,
    );
  })();
}

/** A job as `jobs status --json` lists it. */
export interface JobSeen {
  mailbox: string;
  state: string;
  worker?: string;
}

/**
 * Finds one of `workers` holding a job and stops it (SIGSTOP), then reads the
 * jobs again: stopped, it can finish none of them before the caller's SIGKILL,
 * so `held` is exactly what it had in flight (possibly nothing, if its jobs
 * ended in the moment before the stop). One shot: a worker stopped and let go
 * again misses its lock renewals, and its jobs, taken by another worker while
 * it still runs them, fail on the pair's state lock.
 */
export async function stopWorkerHoldingJobs(
  workers: readonly Worker[],
  jobs: () => Promise<JobSeen[]>,
  timeoutMs: number,
): Promise<{ victim: Worker; held: string[] }> {
  const deadline = Date.now() + timeoutMs;
  const heldBy = (list: JobSeen[], worker: Worker) =>
    list
      .filter((m) => m.state === 'active' && m.worker?.endsWith(`:${worker.child.pid}`))
      .map((m) => m.mailbox);
  while (Date.now() < deadline) {
    const now = await jobs();
    if (now.length > 0 && now.every((m) => m.state === 'done')) break;
    const victim = workers.find((w) => heldBy(now, w).length > 0);
    if (!victim) continue;
    victim.child.kill('SIGSTOP');
    // Commands it sent before it stopped still reach Redis: let them land.
    await new Promise((resolve) => setTimeout(resolve, 300));
    return { victim, held: heldBy(await jobs(), victim) };
  }
  throw new Error(
    `no worker was seen holding a job before the run ended or ${timeoutMs} ms passed:\n${workers
      .map((w) => w.output())
      .join('\n---\n')}`,
  );
}
