/**
 * A worker: takes archive jobs and migrate jobs from their queues,
 * `concurrency` of each kind at a time, and runs each as that job's own
 * crash-safe run of one mailbox (or mailbox pair, migrate-job.ts). So a job
 * retried after its worker died continues from that run's checkpoint (the
 * manifest, the pair's state), and does again only what was in flight.
 *
 * Connections to a mailbox are leased from Redis (connection-leases.ts), so
 * the per-mailbox budget holds across every worker. A stop (`signal`, SIGTERM
 * in the CLI) ends each run between two messages with what it fetched
 * recorded, and puts its job back in the queue for any worker.
 */
import { hostname } from 'node:os';
import { type Job, UnrecoverableError, WaitingError, Worker } from 'bullmq';
import type { TokenProvider } from '../../auth/token-provider.js';
import { createTokenProvider } from '../../auth/token-provider.js';
import type { MailbridgeConfig } from '../../config/types.js';
import { ConfigurationError, MailbridgeError } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import { archiveMailbox } from '../archive/index.js';
import { appSettingsFor, type WorkerAppSettings } from './app-settings.js';
import { createConnectionLeases } from './connection-leases.js';
import {
  ARCHIVE_QUEUE,
  type ArchiveJobData,
  type ArchiveJobProgress,
  type ArchiveJobResult,
  failureReason,
  MIGRATE_QUEUE,
  type MigrateJobData,
  type MigrateJobResult,
} from './job-data.js';
import { deferWhileLocked, forgetLockWait, isHeldByAnotherRun } from './lock-wait.js';
import { migrateJobResult, runMigrateJob } from './migrate-job.js';
import { connectForWorker, firstReady, KEY_PREFIX } from './redis.js';
import type { QueueSettings } from './settings.js';

/** How often a job's progress is written to Redis. */
const PROGRESS_INTERVAL_MS = 1_000;
/**
 * Times a job may lose its worker (killed, or cut from Redis longer than the
 * lock) before it is failed: enough for a rolling restart of the workers.
 */
const MAX_STALLED = 5;

export interface ArchiveWorkerOptions {
  settings: QueueSettings;
  /** Mailboxes at once. */
  concurrency: number;
  logger: Logger;
  /** Aborted: stop taking jobs, interrupt the running ones and hand them back. */
  signal: AbortSignal;
  /** Shown in `jobs status`. @default host:pid */
  name?: string;
  /** The worker's own passwords for migrate jobs' `imaps://` endpoints. */
  passwords?: { from?: string; to?: string };
  /** For the default state folders and other configuration files. @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
}

export interface ArchiveWorkerSummary {
  name: string;
  completed: number;
  failed: number;
  /** Jobs put back in the queue at the stop. */
  returned: number;
}

/**
 * Runs jobs until `signal` is aborted; resolves once every job it held is
 * finished or back in the queue. `config`: the app's settings, or the
 * ConfigurationError that says why the worker has none; then the jobs that
 * need them fail with QUEUE_WORKER_SETTINGS_MISSING and the others run.
 */
export async function runWorker(
  config: WorkerAppSettings,
  options: ArchiveWorkerOptions,
): Promise<ArchiveWorkerSummary> {
  const { settings, logger, signal } = options;
  const name = options.name ?? `${hostname()}:${process.pid}`;
  const summary: ArchiveWorkerSummary = { name, completed: 0, failed: 0, returned: 0 };
  const stopped = new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
  const redis = connectForWorker(settings, logger);
  const ready = await Promise.race([
    firstReady(redis, settings).then(() => true),
    stopped.then(() => false),
  ]).catch((error: unknown) => {
    redis.disconnect();
    throw error;
  });
  if (!ready) {
    redis.disconnect();
    return summary;
  }
  const leases = createConnectionLeases(redis, { leaseMs: settings.lockDurationMs, logger });
  const tokenProviders = new Map<MailbridgeConfig, TokenProvider>();
  let tokenProvider: TokenProvider | undefined;
  if (config instanceof ConfigurationError) {
    logger.log('warn', 'queue: no app settings; archive jobs and m365 migrate jobs will fail', {
      code: config.code,
      error: config.message,
    });
  } else {
    tokenProvider = createTokenProvider(config, { logger });
    tokenProviders.set(config, tokenProvider);
  }

  /** Writes the job's progress to Redis at most once per PROGRESS_INTERVAL_MS. */
  const progressOf = (job: Job) => {
    let reported = 0;
    return (counts: { messages: number; bytes: number; estimatedMessages: number }) => {
      const now = Date.now();
      if (now - reported < PROGRESS_INTERVAL_MS) return;
      reported = now;
      const progress: ArchiveJobProgress = {
        worker: name,
        messages: counts.messages,
        bytes: counts.bytes,
        expected: counts.estimatedMessages,
      };
      job.updateProgress(progress).catch(() => {});
    };
  };
  /** Back in the queue for any worker, without counting as a failed attempt. */
  const handBack = async (job: Job, token: string | undefined, what: string): Promise<never> => {
    await forgetLockWait(job);
    await job.moveToWait(token);
    summary.returned++;
    logger.log('info', 'queue: job returned to the queue', { job: job.id, what });
    throw new WaitingError();
  };
  /** Another run holds what the job writes: it waits its turn (lock-wait.ts). */
  const tryLater = (job: Job, token: string | undefined, what: string, error: MailbridgeError) =>
    deferWhileLocked(job, token, what, error, {
      retryInMs: settings.lockDurationMs,
      lockWaitMs: settings.lockWaitMs,
      logger,
    });

  const migrateProcessor = async (job: Job, token?: string): Promise<MigrateJobResult> => {
    const data = job.data as MigrateJobData;
    const pair = `${data.from} → ${data.to}`;
    const report = progressOf(job);
    const counts = { messages: 0, bytes: 0, estimatedMessages: 0 };
    report(counts);
    logger.log('info', 'queue: job started', { job: job.id, pair, worker: name });
    const started = Date.now();
    try {
      const result = await runMigrateJob(
        data,
        {
          config,
          passwords: options.passwords ?? {},
          connectionSlots: leases,
          connectionsPerMailbox: settings.connectionsPerMailbox,
          tokenProviders,
          logger,
          signal,
          env: options.env ?? process.env,
        },
        (event) => {
          if (event.type === 'folder-start') counts.estimatedMessages += event.pending;
          else if (event.type === 'message') {
            counts.messages++;
            counts.bytes += event.bytes;
          }
          report(counts);
        },
      );
      return migrateJobResult(name, result, Date.now() - started);
    } catch (error) {
      if (
        signal.aborted &&
        error instanceof MailbridgeError &&
        error.code === 'MIGRATE_INTERRUPTED'
      )
        return handBack(job, token, pair);
      if (isHeldByAnotherRun(error)) return tryLater(job, token, pair, error);
      await forgetLockWait(job);
      throw asJobFailure(error, `Migrating ${pair}`, 'MIGRATE_COMMAND_FAILED');
    }
  };

  const processor = async (job: Job, token?: string): Promise<ArchiveJobResult> => {
    const data = job.data as ArchiveJobData;
    const report = progressOf(job);
    report({ messages: 0, bytes: 0, estimatedMessages: 0 });
    logger.log('info', 'queue: job started', { job: job.id, mailbox: data.mailbox, worker: name });
    let result: Awaited<ReturnType<typeof archiveMailbox>>;
    try {
      const appConfig = appSettingsFor(config, `Archiving ${data.mailbox}`);
      result = await archiveMailbox(appConfig, {
        mailbox: data.mailbox,
        outDir: data.outDir,
        folders: data.folders,
        exclude: data.exclude,
        ...(data.since ? { since: new Date(`${data.since}T00:00:00Z`) } : {}),
        allowEmpty: data.allowEmpty,
        repair: data.repair,
        tokenProvider: tokenProviders.get(appConfig),
        logger,
        signal,
        maxConnections: settings.connectionsPerMailbox,
        session: { connectionSlots: leases },
        onProgress: (event) => report(event.counts),
      });
    } catch (error) {
      if (isHeldByAnotherRun(error)) return tryLater(job, token, data.mailbox, error);
      await forgetLockWait(job);
      throw asJobFailure(error, `Archiving ${data.mailbox}`);
    }
    if (result.interrupted) return handBack(job, token, data.mailbox);
    if (!result.ok) {
      await forgetLockWait(job);
      const failed = result.folders.find((f) => f.status === 'failed');
      const code = failed?.error?.code ?? 'ARCHIVE_FAILED';
      const message = failed
        ? `folder ${failed.folder}: ${failed.error?.message ?? 'failed'}`
        : `${result.unrepairable.length} damaged file(s) could not be fetched again`;
      throw new Error(failureReason(code, `Archiving ${data.mailbox}: ${message}`));
    }
    return {
      worker: name,
      messagesNew: result.messagesNew,
      bytesNew: result.bytesNew,
      messagesTotal: result.messagesTotal,
      bytesTotal: result.bytesTotal,
      folders: result.folders.length,
      durationMs: result.durationMs,
    };
  };

  const workerOptions = {
    connection: redis,
    prefix: KEY_PREFIX,
    concurrency: options.concurrency,
    name,
    lockDuration: settings.lockDurationMs,
    stalledInterval: settings.lockDurationMs,
    maxStalledCount: MAX_STALLED,
    autorun: false,
  };
  const workers = [
    new Worker(ARCHIVE_QUEUE, processor, workerOptions),
    new Worker(MIGRATE_QUEUE, migrateProcessor, workerOptions),
  ];
  const label = (job: Job | undefined) =>
    job?.data.mailbox ?? (job ? `${job.data.from} → ${job.data.to}` : undefined);
  for (const worker of workers) {
    worker.on('completed', (job) => {
      summary.completed++;
      logger.log('info', 'queue: job done', { job: job.id, what: label(job) });
    });
    worker.on('failed', (job, error) => {
      if (error instanceof WaitingError || error.name === 'WaitingError') return;
      summary.failed++;
      logger.log('warn', 'queue: job failed', {
        job: job?.id,
        what: label(job),
        attempts: job?.attemptsMade,
        error: error.message,
      });
    });
    worker.on('error', (error) => {
      logger.log('warn', 'queue: worker error', { error: error.message });
    });
  }

  const running = Promise.all(workers.map((w) => w.run()));
  logger.log('info', 'queue: worker started', {
    worker: name,
    redis: settings.shownUrl,
    concurrency: options.concurrency,
  });
  await Promise.race([stopped, running]);
  // close() stops taking jobs and waits for the running ones, which the signal has interrupted.
  await Promise.all(workers.map((w) => w.close()));
  await running.catch(() => {});
  await leases.close();
  await redis.quit().catch(() => redis.disconnect());
  return summary;
}

/**
 * A failure as BullMQ keeps it, its code in front. Settings problems do not
 * mend by waiting: they fail the job at once instead of using its attempts.
 */
function asJobFailure(error: unknown, doing: string, code = 'ARCHIVE_FAILED'): Error {
  if (!(error instanceof MailbridgeError)) {
    return new Error(failureReason(code, `${doing}: ${String((error as Error).message ?? error)}`));
  }
  const reason = failureReason(error.code, error.message);
  return error instanceof ConfigurationError ? new UnrecoverableError(reason) : new Error(reason);
}
