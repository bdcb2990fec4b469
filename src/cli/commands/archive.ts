import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ConfigurationError, ExitCode, MailbridgeError } from '../../errors.js';
import { readArchiveSection } from '../../jobs/archive/config-section.js';
import {
  applyProgressEvent,
  formatSummary,
  initialProgress,
  type MailboxProgress,
  markFailed,
  progressLogRecord,
  renderProgressLines,
  summarizeRun,
} from '../../jobs/archive/progress.js';
import {
  type ArchiveProgressEvent,
  archiveMailboxes,
  checkConnections,
  DEFAULT_ARCHIVE_CONCURRENCY,
  DEFAULT_ARCHIVE_CONNECTIONS,
} from '../../jobs/archive/runner.js';
import { isBlobTarget, parseBlobLocation } from '../../jobs/archive/store/blob-location.js';
import { type VerifyReport, verifyArchive } from '../../jobs/archive/verify.js';
import type { Logger } from '../../log/logger.js';
import { displayText } from '../../util/display-text.js';
import { formatBytes } from '../../util/format.js';
import { listFileLines } from '../../util/list-file.js';
import { usageError } from '../args.js';
import type { Command } from '../command.js';
import { parseSince, positiveInteger } from '../flag-values.js';
import { type CliIo, writeJson, writeLine } from '../output.js';
import { enqueueArchive, QUEUE_FLAG } from './jobs.js';

/** Seconds between progress log lines when stderr is not a terminal. */
const LOG_INTERVAL_MS = 10_000;
const REDRAW_INTERVAL_MS = 250;

function strings(value: unknown): string[] {
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return typeof value === 'string' ? [value] : [];
}

/** Addresses from a `--mailboxes` file: one per line; blank lines and `#` comments ignored. */
export function parseMailboxList(text: string): string[] {
  return listFileLines(text).map((line) => line.text);
}

export const archiveCommand: Command = {
  name: 'archive',
  summary: 'archive mailboxes as .eml files with a manifest; incremental and crash-safe',
  usage:
    'archive --mailbox ADDRESS... | --mailboxes FILE  --out DIR|URL [--folder NAME...] [--exclude NAME...] [--since DATE] [--allow-empty] [--repair] [--concurrency N] [--connections N] [--queue URL] [--json]',
  usesSettings: true,
  flags: [
    {
      name: 'mailbox',
      type: 'string',
      multiple: true,
      value: 'ADDRESS',
      address: true,
      help: 'mailbox to archive (repeat for several)',
    },
    {
      name: 'mailboxes',
      type: 'string',
      value: 'FILE',
      help: 'file with one mailbox address per line (# comments)',
    },
    {
      name: 'out',
      type: 'string',
      value: 'DIR|URL',
      help: 'archive directory (one subdirectory per mailbox), or a blob container: azblob://ACCOUNT/CONTAINER[/PREFIX]',
    },
    {
      name: 'folder',
      type: 'string',
      multiple: true,
      value: 'NAME',
      help: 'only this folder: exact IMAP path, * as wildcard (default: all)',
    },
    {
      name: 'exclude',
      type: 'string',
      multiple: true,
      value: 'NAME',
      help: 'leave out this folder: exact IMAP path, * as wildcard',
    },
    {
      name: 'since',
      type: 'string',
      value: 'DATE',
      help: 'only messages received on or after DATE (YYYY-MM-DD)',
    },
    {
      name: 'allow-empty',
      type: 'boolean',
      help: 'succeed when --folder/--exclude select no folder (otherwise exit 2)',
    },
    {
      name: 'repair',
      type: 'boolean',
      help: 'first fetch again the files `archive verify` finds missing or altered',
    },
    {
      name: 'concurrency',
      type: 'string',
      value: 'N',
      help: `mailboxes archived at once (default ${DEFAULT_ARCHIVE_CONCURRENCY})`,
    },
    {
      name: 'connections',
      type: 'string',
      value: 'N',
      help: `IMAP connections per mailbox: folders, and parts of a large one, at once (default ${DEFAULT_ARCHIVE_CONNECTIONS}, at most 8; config: archive.connections)`,
    },
    {
      ...QUEUE_FLAG,
      help: 'enqueue one job per mailbox for `mailbridge worker` instead; print the run id',
    },
    { name: 'json', type: 'boolean', help: 'print the summary and per-mailbox results as JSON' },
  ],
  details: [
    'Layout: DIR/<mailbox>/<folder>/<UIDVALIDITY>/<UID>.eml, each file the exact bytes the server',
    'returned, and DIR/<mailbox>/manifest.jsonl with one JSON line per message (folder,',
    'uidValidity, uid, internalDate, flags, size, sha256, path, messageId, date, from, to, cc,',
    'subject, attachments, parseError). Names are percent-encoded so any folder name is safe.',
    '',
    'Run it again to fetch only new messages. It can be stopped at any moment (Ctrl-C, kill -9,',
    'a crash): the next run completes the archive with nothing missing or twice. Messages deleted',
    'on the server stay in the archive; a folder whose UIDVALIDITY changed is archived again',
    'beside the old copy. Progress goes to stderr: live on a terminal, JSON lines otherwise.',
    'Check an archive with `mailbridge archive verify DIR`; --repair fetches again what it finds',
    'missing or altered, when the server still has that message, and lists what it could not.',
    '',
    'Azure Blob Storage: --out azblob://ACCOUNT/CONTAINER[/PREFIX] (or the https:// URL of the',
    'container) stores the same layout as blobs; the container must exist. Credentials come from',
    'AZURE_STORAGE_CONNECTION_STRING (account key or SAS; BlobEndpoint= for Azurite), else Entra',
    '(DefaultAzureCredential: workload or managed identity, AZURE_CLIENT_ID..., az login).',
  ].join('\n'),
  async run({ args, io, logger, loadConfig }) {
    const json = args.values.json === true;
    const mailboxes = strings(args.values.mailbox);
    const listFile = typeof args.values.mailboxes === 'string' ? args.values.mailboxes : undefined;
    if (listFile) {
      const text = await readFile(listFile, 'utf8').catch((error: NodeJS.ErrnoException) => {
        throw usageError(
          `--mailboxes ${listFile} cannot be read (${error.code ?? error.message})`,
          'Give a text file with one mailbox address per line.',
        );
      });
      mailboxes.push(...parseMailboxList(text));
    }
    if (mailboxes.length === 0) {
      throw usageError(
        '--mailbox or --mailboxes is required',
        'For example: --mailbox archive@contoso.com (repeat it, or list addresses in a file for --mailboxes).',
      );
    }
    const out = args.values.out;
    if (typeof out !== 'string' || out === '') {
      throw usageError('--out is required', 'For example: --out /srv/mail-archive.');
    }
    // A blob URL is checked now, before any mailbox starts (exit 2 with ARCHIVE_STORE_URL_INVALID).
    if (isBlobTarget(out)) parseBlobLocation(out);
    const outDir = isBlobTarget(out) ? out : resolve(out);
    const since = typeof args.values.since === 'string' ? parseSince(args.values.since) : undefined;
    const concurrency = positiveInteger(
      args.values.concurrency,
      '--concurrency',
      DEFAULT_ARCHIVE_CONCURRENCY,
    );
    const connectionsText = args.values.connections;
    if (connectionsText !== undefined && !/^\d{1,4}$/.test(String(connectionsText))) {
      throw new ConfigurationError({
        code: 'ARCHIVE_OPTION_INVALID',
        message: `--connections must be a whole number, not '${displayText(String(connectionsText), 20)}'`,
        remedy: `For example: --connections 4 (from 1 to 8; the default is ${DEFAULT_ARCHIVE_CONNECTIONS}).`,
      });
    }
    if (typeof args.values.queue === 'string') {
      if (connectionsText !== undefined) {
        throw usageError(
          '--connections goes with archives run here, not with --queue',
          "The queue's workers archive each mailbox on one connection; queue.connectionsPerMailbox caps them.",
        );
      }
      return enqueueArchive(args, io, {
        mailboxes,
        outDir,
        folders: strings(args.values.folder),
        exclude: strings(args.values.exclude),
        ...(since ? { since: since.toISOString().slice(0, 10) } : {}),
        allowEmpty: args.values['allow-empty'] === true,
        repair: args.values.repair === true,
      });
    }
    const config = await loadConfig();
    const connections =
      connectionsText !== undefined
        ? Number(connectionsText)
        : readArchiveSection(config).connections;
    checkConnections(
      connections,
      undefined,
      connectionsText !== undefined ? '--connections' : 'archive.connections',
    );

    const controller = new AbortController();
    const onSignal = () => controller.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const reporter = createProgressReporter(io, mailboxes);
    let run: Awaited<ReturnType<typeof archiveMailboxes>>;
    try {
      run = await archiveMailboxes(config, {
        mailboxes,
        outDir,
        folders: strings(args.values.folder),
        exclude: strings(args.values.exclude),
        ...(since ? { since } : {}),
        allowEmpty: args.values['allow-empty'] === true,
        repair: args.values.repair === true,
        concurrency,
        ...(connections !== undefined ? { connections } : {}),
        logger: reporter.wrap(logger),
        signal: controller.signal,
        onProgress: reporter.onEvent,
      });
      for (const m of run.mailboxes) if (!('folders' in m)) reporter.failed(m.mailbox);
    } finally {
      reporter.stop();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }

    const summary = summarizeRun(run);
    if (json) {
      writeJson(io.stdout, {
        ok: run.ok,
        summary,
        mailboxes: run.mailboxes.map((m) =>
          'folders' in m
            ? m
            : {
                mailbox: m.mailbox,
                ok: false,
                messagesNew: m.messagesNew,
                bytesNew: m.bytesNew,
                error: m.error.toJSON(),
              },
        ),
      });
    } else {
      for (const line of formatSummary(summary, run.mailboxes)) writeLine(io.stdout, line);
    }
    if (run.ok) return ExitCode.ok;
    const failed = run.mailboxes.find((m) => !('folders' in m));
    return failed && !('folders' in failed) ? failed.error.exitCode : ExitCode.failure;
  },
};

export const archiveVerifyCommand: Command = {
  name: 'archive verify',
  summary: 're-hash an archive against its manifests; report missing, altered and extra files',
  usage: 'archive verify DIR|URL [--json]',
  usesSettings: false,
  operands: 'DIR|URL',
  flags: [{ name: 'json', type: 'boolean', help: 'print the report as JSON' }],
  details:
    'DIR is the archive directory given to `archive --out`, or one mailbox directory in it;\nURL a blob container given as --out (azblob://ACCOUNT/CONTAINER[/PREFIX][/MAILBOX]).\nExit code 1 when anything is missing, altered or extra, or a manifest line is wrong.\nRun it while no archive run writes to DIR.',
  async run({ args, io }) {
    const [dir, ...rest] = args.positionals;
    if (!dir || rest.length > 0) {
      throw usageError(
        'give one archive directory',
        'For example: mailbridge archive verify /srv/mail-archive.',
      );
    }
    let report: VerifyReport;
    if (isBlobTarget(dir)) {
      parseBlobLocation(dir);
      const { verifyBlobArchive } = await import('../../jobs/archive/store/blob-tree.js');
      report = await verifyBlobArchive(dir);
    } else {
      const root = resolve(dir);
      const info = await stat(root).catch(() => undefined);
      if (!info?.isDirectory()) {
        throw usageError(
          `${dir} is not a directory`,
          'Give the directory used as --out of `mailbridge archive`.',
        );
      }
      report = await verifyArchive(root);
    }
    if (report.mailboxes.length === 0) {
      throw new MailbridgeError({
        code: 'ARCHIVE_NOT_FOUND',
        message: `No manifest.jsonl in ${dir} or its subdirectories`,
        remedy:
          'Give the directory used as --out of `mailbridge archive`, or a mailbox directory in it.',
      });
    }
    if (args.values.json === true) {
      writeJson(io.stdout, report);
    } else {
      for (const path of report.missing) writeLine(io.stdout, `missing  ${path}`);
      for (const a of report.altered) {
        writeLine(
          io.stdout,
          `altered  ${a.path}  ${a.detail ?? `sha256 ${a.actualSha256} (${a.actualSize} bytes), manifest ${a.expectedSha256} (${a.expectedSize} bytes)`}`,
        );
      }
      for (const path of report.extra) writeLine(io.stdout, `extra    ${path}`);
      for (const p of report.manifestProblems) {
        writeLine(
          io.stdout,
          `manifest ${p.manifest}:${p.line}  ${p.problem}${p.path ? ` ${displayText(p.path)}` : ''}`,
        );
      }
      if (report.missing.length > 0 || report.altered.length > 0) {
        writeLine(
          io.stdout,
          'note     `mailbridge archive --repair --mailbox ADDRESS --out DIR` fetches missing and altered files again while the server has them',
        );
      }
      for (const m of report.tornManifests) {
        writeLine(
          io.stdout,
          `note     ${m} ends in a line cut short by a crash (the next archive run removes it)`,
        );
      }
      for (const m of report.locked) {
        writeLine(
          io.stdout,
          `note     ${m} is locked: an archive run is writing to it, or one crashed`,
        );
      }
      writeLine(
        io.stdout,
        `Checked ${report.checked} files (${formatBytes(report.bytes)}) in ${report.mailboxes.length} mailbox(es): ${
          report.ok
            ? 'all match their manifests'
            : `${report.missing.length} missing, ${report.altered.length} altered, ${report.extra.length} extra, ${report.manifestProblems.length} manifest problem(s)`
        }.`,
      );
    }
    return report.ok ? ExitCode.ok : ExitCode.failure;
  },
};

interface ProgressReporter {
  onEvent(event: ArchiveProgressEvent): void;
  failed(mailbox: string): void;
  /** A logger that keeps the live display intact around its lines. */
  wrap(logger: Logger): Logger;
  stop(): void;
}

/**
 * Live lines per mailbox when stderr is a terminal; otherwise a JSON line per
 * active mailbox every {@link LOG_INTERVAL_MS} and one when a mailbox ends.
 */
function createProgressReporter(io: CliIo, mailboxes: string[]): ProgressReporter {
  const stderr = io.stderr as NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  const tty = stderr.isTTY === true;
  const states = new Map<string, MailboxProgress>();
  for (const m of mailboxes) {
    const key = m.trim().toLowerCase();
    if (!states.has(key)) states.set(key, initialProgress(m.trim()));
  }
  let drawn = 0;
  const erase = () => {
    if (!tty || drawn === 0) return;
    stderr.write(`\x1b[${drawn}A\r\x1b[J`);
    drawn = 0;
  };
  const draw = () => {
    if (!tty) return;
    erase();
    const lines = renderProgressLines(
      [...states.values()],
      Date.now(),
      (stderr.columns ?? 100) - 1,
    );
    for (const line of lines) stderr.write(`${line}\n`);
    drawn = lines.length;
  };
  const logLine = (state: MailboxProgress) => {
    writeLine(stderr, JSON.stringify(progressLogRecord(state, Date.now())));
  };
  const timer = setInterval(
    () => {
      if (tty) draw();
      else for (const s of states.values()) if (s.phase === 'archiving') logLine(s);
    },
    tty ? REDRAW_INTERVAL_MS : LOG_INTERVAL_MS,
  );
  timer.unref();
  return {
    onEvent(event) {
      const key = event.mailbox.trim().toLowerCase();
      const next = applyProgressEvent(
        states.get(key) ?? initialProgress(event.mailbox),
        event,
        Date.now(),
      );
      states.set(key, next);
      if (!tty && event.type === 'mailbox-done') logLine(next);
    },
    failed(mailbox) {
      const key = mailbox.trim().toLowerCase();
      const state = states.get(key) ?? initialProgress(mailbox);
      states.set(key, markFailed(state, Date.now()));
      if (!tty) logLine(states.get(key) as MailboxProgress);
    },
    wrap(logger) {
      return {
        log(level, message, fields) {
          erase();
          logger.log(level, message, fields);
        },
      };
    },
    stop() {
      clearInterval(timer);
      draw();
    },
  };
}
