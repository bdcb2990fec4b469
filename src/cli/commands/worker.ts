import { DEFAULT_MAX_CONNECTIONS_PER_MAILBOX } from '../../clients/connection-limit.js';
import { onlyAppSettingsAbsent } from '../../config/validate.js';
import { ConfigurationError, ExitCode } from '../../errors.js';
import { readMigrateSection } from '../../jobs/migrate/config-section.js';
import { usageError } from '../args.js';
import type { Command } from '../command.js';
import type { CliIo } from '../output.js';
import { writeJson, writeLine } from '../output.js';
import { QUEUE_FLAG, queueSettingsOf } from './jobs.js';
import { password } from './migrate.js';

export const workerCommand: Command = {
  name: 'worker',
  summary:
    'run queued archive and migrate jobs (from `--queue`) until stopped; start one per machine',
  usage: 'worker [--queue URL] [--concurrency N] [--json]',
  usesSettings: true,
  flags: [
    QUEUE_FLAG,
    {
      name: 'concurrency',
      type: 'string',
      value: 'N',
      help: 'jobs of each kind at once (default: queue.concurrency, else 4)',
    },
    { name: 'json', type: 'boolean', help: 'print the summary at the stop as JSON' },
  ],
  details: [
    'Each job is the crash-safe archive of one mailbox, or migration of one mailbox pair: a job',
    'whose worker dies is taken by another once its lock runs out (queue.lockDuration, 30s) and',
    'continues from the checkpoint. Passwords of imaps:// endpoints in migrate jobs come from this',
    "worker's MAILBRIDGE_FROM_PASSWORD / MAILBRIDGE_TO_PASSWORD or its --config file's",
    'migrate.fromPasswordFile / toPasswordFile, never from the queue; a job this worker has no',
    "password for fails with QUEUE_WORKER_PASSWORD_MISSING. Without the app's settings the worker",
    'still runs: archive jobs and migrate jobs with an m365: side fail with',
    'QUEUE_WORKER_SETTINGS_MISSING, imaps:// migrations run.',
    'SIGTERM or Ctrl-C: the running archives stop between two messages, record what they',
    'fetched, and go back to the queue; the worker then exits 0. Connections to one mailbox are',
    'shared by every worker: at most queue.connectionsPerMailbox (8) at once, and a throttling',
    'reply from the server pauses that mailbox for all of them.',
  ].join('\n'),
  async run({ args, io, logger, loadConfig }) {
    const settings = await queueSettingsOf(args);
    let concurrency = settings.concurrency;
    if (args.values.concurrency !== undefined) {
      const text = String(args.values.concurrency);
      if (!/^[1-9]\d{0,2}$/.test(text) || Number(text) > 100) {
        throw usageError(
          '--concurrency must be a whole number from 1 to 100',
          'For example: --concurrency 4.',
        );
      }
      concurrency = Number(text);
    }
    // A worker for imaps:// migrations needs no app settings: only the jobs that do fail.
    // Settings given wrongly (or an unreadable --config) still stop it here.
    const config = await loadConfig().catch((error: unknown) => {
      if (error instanceof ConfigurationError && onlyAppSettingsAbsent(error.problems))
        return error;
      throw error;
    });
    const passwords = await workerPasswords(args.values, io);
    const { runWorker } = await import('../../jobs/queue/worker.js');
    const controller = new AbortController();
    const stop = () => controller.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      const summary = await runWorker(config, {
        settings,
        concurrency,
        logger,
        signal: controller.signal,
        passwords,
        env: io.env,
      });
      if (args.values.json === true) writeJson(io.stdout, summary);
      else {
        writeLine(
          io.stdout,
          `Worker ${summary.name} stopped: ${summary.completed} job(s) done, ${summary.failed} failed, ${summary.returned} returned to the queue.`,
        );
      }
      return ExitCode.ok;
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
  },
};

/** Passwords for migrate jobs' imaps:// sides, read once at the start: a bad file stops the worker (exit 2). */
async function workerPasswords(
  values: Record<string, unknown>,
  io: CliIo,
): Promise<{ from?: string; to?: string }> {
  const file = typeof values.config === 'string' ? values.config : undefined;
  const section = file ? await readMigrateSection(file, DEFAULT_MAX_CONNECTIONS_PER_MAILBOX) : {};
  const found: { from?: string; to?: string } = {};
  for (const side of ['from', 'to'] as const) {
    const variable = side === 'from' ? 'MAILBRIDGE_FROM_PASSWORD' : 'MAILBRIDGE_TO_PASSWORD';
    const configured = side === 'from' ? section.fromPasswordFile : section.toPasswordFile;
    if (configured || io.env[variable]) found[side] = await password(side, {}, section, io);
  }
  return found;
}
