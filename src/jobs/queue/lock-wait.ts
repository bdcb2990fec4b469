/**
 * A job that meets another run's lock on what it writes (an archive's
 * `.lock` or blob lease, ARCHIVE_LOCKED; a migrate pair's state,
 * MIGRATE_STATE_LOCKED) waits its turn instead of failing: that run is
 * usually a worker that lost its queue lock (stopped, cut from Redis) but
 * still works, and the lock keeps the two from ever running at once.
 *
 * The wait is bounded: a local lock taken on another machine is assumed
 * held as long as it exists, so a machine that died holding one would
 * defer its job for ever. When the job first met a lock is kept in its data
 * (`lockedSince`), so the bound holds across workers; after `lockWaitMs`
 * the job fails for good with the lock's code and remedy.
 */
import { DelayedError, type Job, UnrecoverableError } from 'bullmq';
import type { MailbridgeError } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import { failureReason } from './job-data.js';

/** The codes that mean "another run holds it now", not "broken". */
const LOCK_CODES: ReadonlySet<string> = new Set(['ARCHIVE_LOCKED', 'MIGRATE_STATE_LOCKED']);

export function isHeldByAnotherRun(error: unknown): error is MailbridgeError {
  return LOCK_CODES.has((error as MailbridgeError | undefined)?.code ?? '');
}

/** What a job's data records while it waits for a lock. */
interface LockWaitData {
  /** Epoch ms of the first deferral since the job last got past the lock. */
  lockedSince?: number;
}

export interface LockWaitOptions {
  /** Between two tries: the queue's lock duration, after which a cut-off worker's job moves. */
  retryInMs: number;
  /** Deferred this long in all, the job fails. */
  lockWaitMs: number;
  logger: Logger;
}

/**
 * Defers `job` by `retryInMs` without using an attempt (DelayedError), or,
 * once it has waited `lockWaitMs`, fails it for good (UnrecoverableError:
 * another attempt would only wait again).
 */
export async function deferWhileLocked(
  job: Job,
  token: string | undefined,
  what: string,
  error: MailbridgeError,
  options: LockWaitOptions,
): Promise<never> {
  const now = Date.now();
  const recorded = (job.data as LockWaitData).lockedSince;
  const since = recorded ?? now;
  const waited = now - since;
  if (waited >= options.lockWaitMs) {
    throw new UnrecoverableError(
      failureReason(
        error.code,
        // The message ends with the lock's remedy already.
        `${error.message} (Still held after ${seconds(waited)} s of waiting: queue.lockWait is ${seconds(options.lockWaitMs)} s.)`,
      ),
    );
  }
  if (recorded === undefined) await job.updateData({ ...job.data, lockedSince: since });
  await job.moveToDelayed(now + options.retryInMs, token);
  options.logger.log('info', 'queue: job deferred', {
    job: job.id,
    what,
    code: error.code,
    error: error.message,
    retryInMs: options.retryInMs,
    waitedMs: waited,
  });
  throw new DelayedError();
}

/**
 * Forgets an earlier wait once the job got past the lock and ends otherwise
 * than done (handed back, failed for a retry): a later lock starts a new wait.
 */
export async function forgetLockWait(job: Job): Promise<void> {
  if ((job.data as LockWaitData).lockedSince === undefined) return;
  const { lockedSince: _, ...data } = job.data as LockWaitData & Record<string, unknown>;
  await job.updateData(data);
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(0);
}
