import { ExitCode } from '../../errors.js';
import { usageError } from '../args.js';
import type { Command } from '../command.js';
import { writeJson, writeLine } from '../output.js';
import { QUEUE_FLAG, queueSettingsOf } from './jobs.js';

export const workerCommand: Command = {
  name: 'worker',
  summary: 'run queued archive jobs (from `archive --queue`) until stopped; start one per machine',
  usage: 'worker [--queue URL] [--concurrency N] [--json]',
  usesSettings: true,
  flags: [
    QUEUE_FLAG,
    {
      name: 'concurrency',
      type: 'string',
      value: 'N',
      help: 'mailboxes at once (default: queue.concurrency, else 4)',
    },
    { name: 'json', type: 'boolean', help: 'print the summary at the stop as JSON' },
  ],
  details: [
    'Each job is the crash-safe archive of one mailbox: a job whose worker dies is taken by',
    'another once its lock runs out (queue.lockDuration, 30s) and continues from the checkpoint.',
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
    const config = await loadConfig();
    const { runArchiveWorker } = await import('../../jobs/queue/worker.js');
    const controller = new AbortController();
    const stop = () => controller.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      const summary = await runArchiveWorker(config, {
        settings,
        concurrency,
        logger,
        signal: controller.signal,
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
