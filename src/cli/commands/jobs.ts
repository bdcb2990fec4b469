import { ExitCode } from '../../errors.js';
import type { QueueSettings } from '../../jobs/queue/settings.js';
import { displayText } from '../../util/display-text.js';
import { formatBytes } from '../../util/format.js';
import type { FlagSpec, ParsedArgs } from '../args.js';
import { usageError } from '../args.js';
import type { Command } from '../command.js';
import { type CliIo, writeJson, writeLine } from '../output.js';

/** `--queue`: the server only; its password comes from MAILBRIDGE_REDIS_URL or queue.url. */
export const QUEUE_FLAG: FlagSpec = {
  name: 'queue',
  type: 'string',
  value: 'URL',
  help: 'Redis of the job queue, redis://HOST:PORT/DB (password from MAILBRIDGE_REDIS_URL)',
};

/** The queue's settings from `--queue`, the environment and `--config`'s `queue:` section. */
export async function queueSettingsOf(args: ParsedArgs): Promise<QueueSettings> {
  const { readQueueSettings } = await import('../../jobs/queue/settings.js');
  return readQueueSettings({
    flag: typeof args.values.queue === 'string' ? args.values.queue : undefined,
    configFile: typeof args.values.config === 'string' ? args.values.config : undefined,
  });
}

type JobKind = import('../../jobs/queue/job-data.js').JobKind;

/**
 * Runs `use` with a command connection to the queue, closed afterwards, and
 * the queue of a kind of job (`kind`, or the kind of run `runOf` names once known).
 */
async function withQueue<T>(
  settings: QueueSettings,
  kind: JobKind | ((redis: import('ioredis').Redis) => Promise<JobKind>),
  use: (
    queue: import('bullmq').Queue,
    redis: import('ioredis').Redis,
    runs: typeof import('../../jobs/queue/runs.js'),
  ) => Promise<T>,
): Promise<T> {
  const { connectForCommand } = await import('../../jobs/queue/redis.js');
  const runs = await import('../../jobs/queue/runs.js');
  const redis = await connectForCommand(settings);
  let queue: import('bullmq').Queue | undefined;
  try {
    queue = runs.openQueue(redis, typeof kind === 'string' ? kind : await kind(redis));
    return await use(queue, redis, runs);
  } finally {
    await queue?.close().catch(() => {});
    redis.disconnect();
  }
}

/** The run's kind, `runId` or the latest; QUEUE_RUN_NOT_FOUND when there is none. */
async function kindOfRun(redis: import('ioredis').Redis, runId: string | undefined) {
  const runs = await import('../../jobs/queue/runs.js');
  return runs.runKind(redis, await runs.findRun(redis, runId));
}

const runFlag: FlagSpec = {
  name: 'run',
  type: 'string',
  value: 'ID',
  help: 'the run (default: the latest)',
};

export const jobsStatusCommand: Command = {
  name: 'jobs status',
  summary: 'show a queued run per mailbox: waiting, active (worker, progress), done, failed',
  usage: 'jobs status [--queue URL] [--run ID] [--json]',
  usesSettings: false,
  flags: [QUEUE_FLAG, runFlag, { name: 'json', type: 'boolean', help: 'print the status as JSON' }],
  details:
    'Exit code 1 when a mailbox of the run failed for good (after its attempts), else 0,\nalso while mailboxes still wait or run: check `counts` (or --json) for done.',
  async run({ args, io }) {
    const settings = await queueSettingsOf(args);
    const runId = typeof args.values.run === 'string' ? args.values.run : undefined;
    return withQueue(
      settings,
      (redis) => kindOfRun(redis, runId),
      async (queue, redis, runs) => {
        const id = await runs.findRun(redis, runId);
        const status = await runs.runStatus(queue, redis, id);
        if (args.values.json === true) {
          writeJson(io.stdout, { ...status, runs: await runs.listRuns(redis) });
        } else {
          printStatus(io, status);
        }
        const refused = status.mailboxes.some(
          (m) => m.result && 'skipped' in m.result && m.result.skipped > 0,
        );
        return status.counts.failed > 0 || refused ? ExitCode.failure : ExitCode.ok;
      },
    );
  },
};

function printStatus(io: CliIo, status: import('../../jobs/queue/runs.js').RunStatus): void {
  const c = status.counts;
  const what =
    status.kind === 'migrate'
      ? `${status.mailboxes.length} mailbox pairs migrated`
      : `${status.mailboxes.length} mailboxes into ${displayText(status.outDir)}`;
  writeLine(
    io.stdout,
    `Run ${status.runId} (${status.created}, ${what}): ${c.done} done, ${c.active} active, ${c.waiting} waiting, ${c.retrying} retrying, ${c.failed} failed`,
  );
  for (const m of status.mailboxes) {
    const mailbox = displayText(m.mailbox);
    const r = m.result;
    if (m.state === 'done' && r && 'copied' in r) {
      writeLine(
        io.stdout,
        `done      ${mailbox}  ${r.copied} copied (${formatBytes(r.bytes)}), ${r.alreadyPresent} already there, ${r.skipped} skipped  on ${displayText(r.worker)}`,
      );
      for (const s of r.refused ?? []) {
        writeLine(
          io.stdout,
          `  skipped ${displayText(s.folder)} UID ${s.uid}: ${displayText(s.reason)}`,
        );
      }
    } else if (m.state === 'done' && r && 'messagesNew' in r) {
      writeLine(
        io.stdout,
        `done      ${mailbox}  ${r.messagesNew} new (${formatBytes(r.bytesNew)}), ${r.messagesTotal} in the archive  on ${displayText(r.worker)}`,
      );
    } else if (m.state === 'active') {
      const p = m.progress;
      writeLine(
        io.stdout,
        `active    ${mailbox}  on ${displayText(m.worker ?? '?')}${p ? `  ${p.messages}/${p.expected} messages (${formatBytes(p.bytes)})` : ''}`,
      );
    } else if (m.state === 'failed' || m.state === 'retrying') {
      writeLine(
        io.stdout,
        `${m.state.padEnd(9)} ${mailbox}  ${m.error?.code ?? ''} ${displayText(m.error?.message ?? '')} (attempts: ${m.attempts})`,
      );
    } else {
      writeLine(io.stdout, `waiting   ${mailbox}`);
    }
  }
}

export const jobsRetryCommand: Command = {
  name: 'jobs retry',
  summary: "put a run's failed (and with no --failed, its done) mailboxes back in the queue",
  usage: 'jobs retry --run ID [--failed] [--queue URL] [--json]',
  usesSettings: false,
  flags: [
    QUEUE_FLAG,
    { ...runFlag, help: 'the run', required: true },
    { name: 'failed', type: 'boolean', help: 'only the failed mailboxes' },
    { name: 'json', type: 'boolean', help: 'print the count as JSON' },
  ],
  details:
    'Done mailboxes (or mailbox pairs) run again incrementally: only what is new is fetched\nor copied. Attempts count from zero again.',
  async run({ args, io }) {
    const runId = args.values.run;
    if (typeof runId !== 'string' || runId === '') {
      throw usageError(
        '--run is required',
        'For example: --run 20261206T1305Z-3fa1 (`jobs status` shows it).',
      );
    }
    const settings = await queueSettingsOf(args);
    return withQueue(
      settings,
      (redis) => kindOfRun(redis, runId),
      async (queue, redis, runs) => {
        const id = await runs.findRun(redis, runId);
        const retried = await runs.retryRun(queue, redis, id, args.values.failed === true);
        if (args.values.json === true) writeJson(io.stdout, { runId: id, retried });
        else writeLine(io.stdout, `${retried} job(s) of run ${id} back in the queue.`);
        return ExitCode.ok;
      },
    );
  },
};

/** `archive --queue`: one job per mailbox, the run id on stdout. */
export async function enqueueArchive(
  args: ParsedArgs,
  io: CliIo,
  job: Omit<import('../../jobs/queue/job-data.js').ArchiveJobData, 'runId' | 'mailbox'> & {
    mailboxes: string[];
  },
): Promise<number> {
  const settings = await queueSettingsOf(args);
  const { mailboxes, ...options } = job;
  return withQueue(settings, 'archive', async (queue, redis, runs) => {
    const run = await runs.enqueueArchiveRun(queue, redis, {
      mailboxes,
      job: options,
      attempts: settings.attempts,
    });
    return reportEnqueued(args, io, settings, run, 'mailbox');
  });
}

/** `migrate --mailboxes --queue`: one job per pair, the run id on stdout. No password goes to Redis. */
export async function enqueueMigrate(
  args: ParsedArgs,
  io: CliIo,
  job: Omit<import('../../jobs/queue/job-data.js').MigrateJobData, 'runId' | 'from' | 'to'> & {
    pairs: { from: string; to: string }[];
  },
): Promise<number> {
  const settings = await queueSettingsOf(args);
  const { pairs, ...options } = job;
  return withQueue(settings, 'migrate', async (queue, redis, runs) => {
    const run = await runs.enqueueMigrateRun(queue, redis, {
      pairs,
      job: options,
      attempts: settings.attempts,
    });
    return reportEnqueued(args, io, settings, run, 'mailbox pair');
  });
}

function reportEnqueued(
  args: ParsedArgs,
  io: CliIo,
  settings: QueueSettings,
  run: import('../../jobs/queue/runs.js').EnqueuedRun,
  what: string,
): number {
  if (args.values.json === true) writeJson(io.stdout, { ...run, queue: settings.shownUrl });
  else {
    writeLine(io.stdout, run.runId);
    writeLine(
      io.stderr,
      `${run.jobs} ${what} job(s) queued as run ${run.runId} on ${settings.shownUrl}; \`mailbridge worker\` runs them, \`mailbridge jobs status --run ${run.runId}\` follows them.`,
    );
  }
  return ExitCode.ok;
}
