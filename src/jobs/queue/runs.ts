/**
 * Runs on the queue: `archive --queue` adds one job per mailbox under a new
 * run id, `migrate --mailboxes --queue` one per mailbox pair; `jobs status` reads each job's state, progress, result or failure;
 * `jobs retry` puts finished jobs back. A run is a Redis hash (when, what,
 * how many jobs) and its jobs are `RUN.0` … `RUN.n-1`, so a run's jobs are
 * found without scanning the queue.
 */
import { randomBytes } from 'node:crypto';
import { type Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { ConfigurationError } from '../../errors.js';
import {
  ARCHIVE_QUEUE,
  type ArchiveJobData,
  type ArchiveJobProgress,
  type ArchiveJobResult,
  type JobKind,
  MIGRATE_QUEUE,
  type MigrateJobData,
  type MigrateJobResult,
  parseFailureReason,
} from './job-data.js';
import { KEY_PREFIX } from './redis.js';

const RUNS_KEY = `${KEY_PREFIX}:runs`;
const runKey = (id: string) => `${KEY_PREFIX}:run:${id}`;

export interface EnqueueOptions {
  mailboxes: readonly string[];
  /** Everything but the mailbox and the run id. */
  job: Omit<ArchiveJobData, 'runId' | 'mailbox'>;
  attempts: number;
}

export interface EnqueuedRun {
  runId: string;
  jobs: number;
}

export interface EnqueueMigrateOptions {
  pairs: readonly { from: string; to: string }[];
  job: Omit<MigrateJobData, 'runId' | 'from' | 'to'>;
  attempts: number;
}

export function openQueue(redis: Redis, kind: JobKind): Queue {
  const name = kind === 'migrate' ? MIGRATE_QUEUE : ARCHIVE_QUEUE;
  return new Queue(name, { connection: redis, prefix: KEY_PREFIX });
}

export function openArchiveQueue(redis: Redis): Queue {
  return openQueue(redis, 'archive');
}

/** What kind of jobs a run holds (runs from before migrate jobs have no kind: archive). */
export async function runKind(redis: Redis, runId: string): Promise<JobKind> {
  return (await redis.hget(runKey(runId), 'kind')) === 'migrate' ? 'migrate' : 'archive';
}

/** A sortable id: the UTC time and 4 random hex digits, e.g. `20261206T1305Z-3fa1`. */
function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').slice(0, 13);
  return `${stamp}Z-${randomBytes(2).toString('hex')}`;
}

/** One job per mailbox (the same mailbox twice is one job), then the run record. */
export async function enqueueArchiveRun(
  queue: Queue,
  redis: Redis,
  options: EnqueueOptions,
): Promise<EnqueuedRun> {
  const unique = [
    ...new Map(options.mailboxes.map((m) => [m.trim().toLowerCase(), m.trim()])).values(),
  ];
  return enqueueRun(queue, redis, {
    kind: 'archive',
    record: { outDir: options.job.outDir },
    data: unique.map((mailbox) => ({ ...options.job, mailbox })),
    attempts: options.attempts,
  });
}

/** One job per mailbox pair (a pair listed twice is one job), then the run record. */
export async function enqueueMigrateRun(
  queue: Queue,
  redis: Redis,
  options: EnqueueMigrateOptions,
): Promise<EnqueuedRun> {
  const unique = [
    ...new Map(options.pairs.map((p) => [`${p.from}\n${p.to}`.toLowerCase(), p])).values(),
  ];
  return enqueueRun(queue, redis, {
    kind: 'migrate',
    record: options.job.stateRoot ? { stateRoot: options.job.stateRoot } : {},
    data: unique.map((pair) => ({ ...options.job, from: pair.from, to: pair.to })),
    attempts: options.attempts,
  });
}

async function enqueueRun(
  queue: Queue,
  redis: Redis,
  run: {
    kind: JobKind;
    record: Record<string, string>;
    data: (Omit<ArchiveJobData, 'runId'> | Omit<MigrateJobData, 'runId'>)[];
    attempts: number;
  },
): Promise<EnqueuedRun> {
  const runId = newRunId();
  const created = Date.now();
  // The record first: a run whose jobs are partly added is still listed (and its count says so).
  await redis
    .multi()
    .hset(runKey(runId), { kind: run.kind, created, jobs: run.data.length, ...run.record })
    .zadd(RUNS_KEY, created, runId)
    .exec();
  const BATCH = 500;
  for (let start = 0; start < run.data.length; start += BATCH) {
    await queue.addBulk(
      run.data.slice(start, start + BATCH).map((data, i) => ({
        name: run.kind,
        data: { ...data, runId },
        opts: {
          jobId: `${runId}.${start + i}`,
          attempts: run.attempts,
          backoff: { type: 'exponential', delay: 5_000 },
          removeOnComplete: false,
          removeOnFail: false,
        },
      })),
    );
  }
  return { runId, jobs: run.data.length };
}

export type MailboxState = 'waiting' | 'retrying' | 'active' | 'done' | 'failed';

export interface MailboxStatus {
  /** The mailbox; for a migrate job, `FROM → TO`. */
  mailbox: string;
  /** A migrate job's endpoints. */
  from?: string;
  to?: string;
  jobId: string;
  state: MailboxState;
  attempts: number;
  /** While active. */
  worker?: string;
  progress?: Omit<ArchiveJobProgress, 'worker'>;
  /** When done. */
  result?: ArchiveJobResult | MigrateJobResult;
  /** When failed, or retrying after a failure. */
  error?: { code: string; message: string };
}

export interface RunStatus {
  runId: string;
  kind: JobKind;
  created: string;
  /** Archive runs: where to. */
  outDir: string;
  /** Migrate runs: the state folders' folder, when one was given. */
  stateRoot?: string;
  counts: Record<MailboxState, number>;
  mailboxes: MailboxStatus[];
}

/** The run's id: `runId`, or the latest run when absent. */
export async function findRun(redis: Redis, runId: string | undefined): Promise<string> {
  const id = runId ?? (await redis.zrange(RUNS_KEY, -1, -1))[0];
  if (id && (await redis.exists(runKey(id))) === 1) return id;
  throw new ConfigurationError({
    code: 'QUEUE_RUN_NOT_FOUND',
    message: runId ? `No run '${runId.slice(0, 60)}' in this queue` : 'No run in this queue yet',
    remedy: runId
      ? '`mailbridge jobs status --queue URL` shows the latest run; `--json` lists all run ids.'
      : 'Enqueue one with `mailbridge archive --mailboxes FILE --out DIR --queue URL`.',
  });
}

export async function listRuns(redis: Redis): Promise<string[]> {
  return redis.zrange(RUNS_KEY, 0, -1);
}

async function runJobs(queue: Queue, redis: Redis, runId: string): Promise<Job[]> {
  const record = await redis.hgetall(runKey(runId));
  const count = Number(record.jobs ?? 0);
  const jobs = await Promise.all(
    Array.from({ length: count }, (_, i) => queue.getJob(`${runId}.${i}`)),
  );
  return jobs.filter((job): job is Job => job !== undefined);
}

export async function runStatus(queue: Queue, redis: Redis, runId: string): Promise<RunStatus> {
  const record = await redis.hgetall(runKey(runId));
  const jobs = await runJobs(queue, redis, runId);
  const mailboxes = await Promise.all(jobs.map(mailboxStatus));
  const counts: Record<MailboxState, number> = {
    waiting: 0,
    retrying: 0,
    active: 0,
    done: 0,
    failed: 0,
  };
  for (const m of mailboxes) counts[m.state]++;
  return {
    runId,
    kind: record.kind === 'migrate' ? 'migrate' : 'archive',
    created: new Date(Number(record.created ?? 0)).toISOString(),
    outDir: record.outDir ?? '',
    ...(record.stateRoot ? { stateRoot: record.stateRoot } : {}),
    counts,
    mailboxes,
  };
}

async function mailboxStatus(job: Job): Promise<MailboxStatus> {
  const data = job.data as Partial<ArchiveJobData & MigrateJobData>;
  const state = await job.getState();
  const names =
    data.from !== undefined && data.to !== undefined
      ? { mailbox: `${data.from} → ${data.to}`, from: data.from, to: data.to }
      : { mailbox: data.mailbox ?? '' };
  const base = { ...names, jobId: job.id ?? '', attempts: job.attemptsMade };
  const error = job.failedReason ? parseFailureReason(job.failedReason) : undefined;
  if (state === 'completed') {
    return {
      ...base,
      state: 'done',
      result: job.returnvalue as ArchiveJobResult | MigrateJobResult,
    };
  }
  if (state === 'failed') return { ...base, state: 'failed', ...(error ? { error } : {}) };
  if (state === 'active') {
    const p = job.progress as Partial<ArchiveJobProgress> | number;
    if (typeof p !== 'object') return { ...base, state: 'active' };
    const { worker, ...progress } = p;
    return {
      ...base,
      state: 'active',
      ...(worker ? { worker } : {}),
      progress: { messages: 0, bytes: 0, expected: 0, ...progress },
    };
  }
  if (state === 'delayed') return { ...base, state: 'retrying', ...(error ? { error } : {}) };
  return { ...base, state: 'waiting' };
}

/**
 * Puts the run's failed jobs (and, unless `failedOnly`, its done ones: an
 * incremental archive fetches only what is new) back in the queue, their
 * attempts counted from zero again. Returns how many.
 */
export async function retryRun(
  queue: Queue,
  redis: Redis,
  runId: string,
  failedOnly: boolean,
): Promise<number> {
  let retried = 0;
  for (const job of await runJobs(queue, redis, runId)) {
    const state = await job.getState();
    if (state === 'failed' || (!failedOnly && state === 'completed')) {
      await job.retry(state, { resetAttemptsMade: true, resetAttemptsStarted: true });
      retried++;
    }
  }
  return retried;
}
