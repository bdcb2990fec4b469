import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { DEFAULT_MAX_CONNECTIONS_PER_MAILBOX } from '../../clients/connection-limit.js';
import { readableByOthers } from '../../config/file.js';
import { loadConfig as loadConfigFile } from '../../config/load.js';
import type { MailbridgeConfig } from '../../config/types.js';
import { ConfigurationError, ExitCode } from '../../errors.js';
import {
  type MigrateSectionSettings,
  readMigrateSection,
} from '../../jobs/migrate/config-section.js';
import {
  describeEndpoint,
  parseEndpoint,
  resolvePassword,
  type Side,
} from '../../jobs/migrate/endpoint.js';
import {
  DEFAULT_MIGRATE_CONNECTIONS,
  DEFAULT_PAIR_CONCURRENCY,
  type MigrateProgressEvent,
  type MigrateResult,
  migrateMailbox,
  readMailboxPairs,
} from '../../jobs/migrate/index.js';
import { displayText } from '../../util/display-text.js';
import { formatBytes } from '../../util/format.js';
import { usageError } from '../args.js';
import type { Command, CommandContext } from '../command.js';
import { parseSince, positiveInteger } from '../flag-values.js';
import { type CliIo, writeLine, writeWarning } from '../output.js';
import { enqueueMigrate, QUEUE_FLAG } from './jobs.js';
import { runMigrateList } from './migrate-list.js';

const REDRAW_INTERVAL_MS = 250;

function strings(value: unknown): string[] {
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return typeof value === 'string' ? [value] : [];
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

export const migrateCommand: Command = {
  name: 'migrate',
  summary:
    'copy a mailbox into another over IMAP: folders, flags and dates; resumable, no duplicates',
  usage:
    "migrate --from SOURCE --to DEST | --mailboxes FILE [--concurrency N] [--queue URL] [--folder P]... [--exclude P]... [--map 'SRC=DEST']... [--since DATE] [--state DIR] [--connections N] [--sync-flags] [--dry-run] [--json]",
  usesSettings: true,
  flags: [
    {
      name: 'from',
      type: 'string',
      value: 'SOURCE',
      help: 'm365:ADDRESS, imaps://USER@HOST:PORT or archive:DIR (or migrate.from in the config file)',
    },
    {
      name: 'to',
      type: 'string',
      value: 'DEST',
      help: 'm365:ADDRESS or imaps://USER@HOST:PORT (or migrate.to in the config file)',
    },
    {
      name: 'mailboxes',
      type: 'string',
      value: 'FILE',
      help: 'many pairs instead: CSV source,destination, one pair a line (# comments)',
    },
    {
      name: 'concurrency',
      type: 'string',
      value: 'N',
      help: `with --mailboxes: pairs at once (default ${DEFAULT_PAIR_CONCURRENCY})`,
    },
    {
      ...QUEUE_FLAG,
      help: 'with --mailboxes: enqueue one job per pair for `mailbridge worker`; print the run id',
    },
    {
      name: 'folder',
      type: 'string',
      multiple: true,
      value: 'P',
      help: 'only this source folder (* as wildcard)',
    },
    {
      name: 'exclude',
      type: 'string',
      multiple: true,
      value: 'P',
      help: 'leave out this source folder (* as wildcard)',
    },
    {
      name: 'map',
      type: 'string',
      multiple: true,
      value: 'SRC=DEST',
      help: 'put source folder SRC (and its subfolders) at DEST',
    },
    {
      name: 'since',
      type: 'string',
      value: 'DATE',
      help: 'only messages received on or after DATE (YYYY-MM-DD)',
    },
    {
      name: 'state',
      type: 'string',
      value: 'DIR',
      help: "state folder of this pair, or with --mailboxes the folder of every pair's (default under ~/.local/state/mailbridge/migrate)",
    },
    {
      name: 'connections',
      type: 'string',
      value: 'N',
      help: `connections on each side, folders spread over them (default ${DEFAULT_MIGRATE_CONNECTIONS}, at most 8)`,
    },
    {
      name: 'sync-flags',
      type: 'boolean',
      help: 'also bring flag changes on messages copied before across (never \\Deleted)',
    },
    {
      name: 'dry-run',
      type: 'boolean',
      help: 'show what would be created and copied; change nothing',
    },
    {
      name: 'json',
      type: 'boolean',
      help: 'progress as JSON lines on stdout, the last line the summary',
    },
    {
      name: 'from-password-file',
      type: 'string',
      value: 'FILE',
      help: 'password of an imaps:// source (first line)',
    },
    {
      name: 'to-password-file',
      type: 'string',
      value: 'FILE',
      help: 'password of an imaps:// destination (first line)',
    },
    {
      name: 'from-config',
      type: 'string',
      value: 'FILE',
      help: 'config file of an m365: source (other tenant)',
    },
    {
      name: 'to-config',
      type: 'string',
      value: 'FILE',
      help: 'config file of an m365: destination (other tenant)',
    },
  ],
  details: [
    'SOURCE and DEST are m365:user@contoso.com (app-only XOAUTH2 with the usual configuration, or',
    '--from-config/--to-config FILE), or imaps://USER@HOST:993 (user name percent-encoded:',
    'imaps://bob%40example.org@mail.example.org) with the password in --from-password-file /',
    '--to-password-file or MAILBRIDGE_FROM_PASSWORD / MAILBRIDGE_TO_PASSWORD, never on the command',
    'line. imap://USER@HOST:143 requires STARTTLS (plain IMAP only on loopback). An imaps:// server that',
    'takes OAuth (Gmail) logs in with XOAUTH2 and the token printed by migrate.fromTokenCommand /',
    'toTokenCommand in the --config file. SOURCE may be archive:DIR, a mailbox folder written by',
    '`mailbridge archive`: restored with its flags and dates, each file checked against the manifest.',
    '',
    "Folders keep their names with the destination's delimiter; Sent, Drafts, Trash, Junk and Archive",
    "go to the destination's folders of that use (Sent Items, Deleted Items, Junk Email on Exchange).",
    'Each message keeps its bytes, received date and flags (\\Seen \\Answered \\Flagged \\Draft, keywords',
    'where the destination keeps them). Run it again to copy only what is new (with --sync-flags also',
    'flag changes on messages copied before, never \\Deleted); it can be stopped at',
    'any moment. A message already at the destination (same Message-ID, Date, From and Subject) is',
    'not copied twice, even without the state folder. Exit 1 when the destination refused a message',
    '(listed with its reason), 0 when every message is there.',
    '',
    '--mailboxes FILE runs many pairs, --concurrency at a time (pairs sharing a mailbox one after',
    'another), each with a state folder named for it under --state; one line per pair, exit 1 if',
    'any failed (3 or 4 when all failed so). The passwords and configurations above serve every pair;',
    'a line may name its own password files: source,destination[,SRC-PASSWORD-FILE[,DEST-PASSWORD-FILE]]',
    '(relative to the list). A token command learns the user it is run for from MAILBRIDGE_USER.',
    'With --queue URL it enqueues one job per pair for `mailbridge worker`; workers take imaps://',
    'passwords from their own environment or config, never from Redis.',
    '',
    'With --config FILE, its migrate section gives what the flags leave out (from, to, folders, exclude,',
    'map, since, state, connections, syncFlags, fromPasswordFile, toPasswordFile, fromTokenCommand,',
    'toTokenCommand); a flag given replaces',
    'its setting.',
  ].join('\n'),
  async run(context) {
    const { args, io } = context;
    const json = args.values.json === true;
    const configFile = text(args.values.config);
    const section = configFile
      ? await readMigrateSection(configFile, DEFAULT_MAX_CONNECTIONS_PER_MAILBOX)
      : {};
    const sinceText = text(args.values.since);
    const since = sinceText
      ? parseSince(sinceText)
      : section.since
        ? parseSince(section.since)
        : undefined;
    const stateFlag = text(args.values.state);
    const state = stateFlag ? resolve(stateFlag) : section.state;
    const connectionsText = text(args.values.connections);
    if (connectionsText !== undefined && !/^\d{1,4}$/.test(connectionsText)) {
      throw usageError(
        `--connections must be a whole number, not '${displayText(connectionsText, 20)}'`,
        `For example: --connections ${DEFAULT_MIGRATE_CONNECTIONS}.`,
      );
    }
    const connections = connectionsText ? Number(connectionsText) : section.connections;
    // A list given as flags replaces the section's list rather than adding to it.
    const list = (flag: string, fromSection: string[] | undefined) => {
      const given = strings(args.values[flag]);
      return given.length > 0 ? given : (fromSection ?? []);
    };
    const shared = {
      folders: list('folder', section.folders),
      exclude: list('exclude', section.exclude),
      map: list('map', section.map),
      ...(since ? { since } : {}),
      ...(connections !== undefined ? { connections } : {}),
      dryRun: args.values['dry-run'] === true,
      syncFlags: args.values['sync-flags'] === true || section.syncFlags === true,
    };
    const listFile = text(args.values.mailboxes);
    if (listFile) return runList(context, listFile, section, { ...shared, state, json });
    for (const flag of ['concurrency', 'queue']) {
      if (args.values[flag] !== undefined) {
        throw usageError(
          `--${flag} goes with --mailboxes FILE`,
          'One pair (--from/--to) runs alone; --connections sets its connections.',
        );
      }
    }
    const from = endpoint('from', args.values, section);
    const to = endpoint('to', args.values, section);
    const passwords: { fromPassword?: string; toPassword?: string } = {};
    // A side with a token command logs in with XOAUTH2: it has no password.
    const { fromTokenCommand, toTokenCommand } = section;
    if (from.kind === 'imap' && !fromTokenCommand)
      passwords.fromPassword = await password('from', args.values, section, io);
    if (to.kind === 'imap' && !toTokenCommand)
      passwords.toPassword = await password('to', args.values, section, io);
    const configs: { fromConfig?: MailbridgeConfig; toConfig?: MailbridgeConfig } = {};
    if (from.kind === 'm365') configs.fromConfig = await endpointConfig('from', context);
    if (to.kind === 'm365') configs.toConfig = await endpointConfig('to', context);

    const controller = new AbortController();
    const onSignal = () => controller.abort(new Error('interrupted'));
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const progress = createProgress(io, json);
    let result: MigrateResult;
    try {
      result = await migrateMailbox({
        from,
        to,
        ...configs,
        ...passwords,
        ...(fromTokenCommand ? { fromTokenCommand } : {}),
        ...(toTokenCommand ? { toTokenCommand } : {}),
        ...shared,
        ...(state ? { stateDir: state } : {}),
        logger: context.logger,
        signal: controller.signal,
        onProgress: progress.onEvent,
        env: io.env,
      });
    } finally {
      progress.stop();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    if (json) writeLine(io.stdout, JSON.stringify(result));
    else for (const line of formatResult(result)) writeLine(io.stdout, line);
    return result.ok ? ExitCode.ok : ExitCode.failure;
  },
};

/** `--mailboxes FILE`: the pairs here, or (`--queue`) one job per pair on the queue. */
async function runList(
  context: CommandContext,
  listFile: string,
  section: MigrateSectionSettings,
  options: {
    folders: string[];
    exclude: string[];
    map: string[];
    since?: Date;
    connections?: number;
    dryRun: boolean;
    syncFlags: boolean;
    state: string | undefined;
    json: boolean;
  },
): Promise<number> {
  const { args, io } = context;
  for (const side of ['from', 'to'] as const) {
    if (text(args.values[side]) !== undefined) {
      throw usageError(
        `--${side} and --mailboxes cannot go together: the list names every pair`,
        'Put the pair in the list file as source,destination, or drop --mailboxes.',
      );
    }
  }
  const concurrency = positiveInteger(
    args.values.concurrency,
    '--concurrency',
    DEFAULT_PAIR_CONCURRENCY,
  );
  const pairs = await readMailboxPairs(listFile);
  const { state, json, since, ...shared } = options;
  if (typeof args.values.queue === 'string') {
    if (pairs.some((p) => p.fromPassword !== undefined || p.toPassword !== undefined)) {
      throw usageError(
        'Password files in the list do not go with --queue: passwords never travel through the queue',
        'Give each worker the password in its own environment or config (a master login), or run the list here without --queue.',
      );
    }
    if (shared.dryRun) {
      throw usageError(
        '--dry-run does not go with --queue',
        'Run the list here with --dry-run first.',
      );
    }
    const configFile = (side: Side) => {
      const file = text(args.values[`${side}-config`]);
      return file ? resolve(file) : undefined;
    };
    const fromConfig = configFile('from');
    const toConfig = configFile('to');
    return enqueueMigrate(args, io, {
      pairs: pairs.map((p) => ({ from: describeEndpoint(p.from), to: describeEndpoint(p.to) })),
      folders: shared.folders,
      exclude: shared.exclude,
      map: shared.map,
      ...(since ? { since: since.toISOString().slice(0, 10) } : {}),
      ...(shared.connections !== undefined ? { connections: shared.connections } : {}),
      syncFlags: shared.syncFlags,
      ...(state ? { stateRoot: state } : {}),
      ...(fromConfig ? { fromConfig } : {}),
      ...(toConfig ? { toConfig } : {}),
    });
  }
  // The run's password serves the imaps:// sides whose line names no file of their own.
  const passwords: { fromPassword?: string; toPassword?: string } = {};
  const { fromTokenCommand, toTokenCommand } = section;
  if (!fromTokenCommand && pairs.some((p) => p.from.kind === 'imap' && !p.fromPassword))
    passwords.fromPassword = await password('from', args.values, section, io);
  if (!toTokenCommand && pairs.some((p) => p.to.kind === 'imap' && !p.toPassword))
    passwords.toPassword = await password('to', args.values, section, io);
  const configs: { fromConfig?: MailbridgeConfig; toConfig?: MailbridgeConfig } = {};
  if (pairs.some((p) => p.from.kind === 'm365'))
    configs.fromConfig = await endpointConfig('from', context);
  if (pairs.some((p) => p.to.kind === 'm365'))
    configs.toConfig = await endpointConfig('to', context);
  return runMigrateList(
    io,
    {
      pairs,
      ...shared,
      ...(since ? { since } : {}),
      ...passwords,
      ...(fromTokenCommand ? { fromTokenCommand } : {}),
      ...(toTokenCommand ? { toTokenCommand } : {}),
      ...configs,
      ...(state ? { stateRoot: state } : {}),
      concurrency,
      logger: context.logger,
      env: io.env,
    },
    json,
  );
}

/** `--from`/`--to`, else the section's `from`/`to`; errors name where the value came from. */
function endpoint(side: Side, values: Record<string, unknown>, section: MigrateSectionSettings) {
  const flag = text(values[side]);
  if (flag !== undefined) return parseEndpoint(flag, side);
  const configured = section[side];
  if (configured !== undefined) return parseEndpoint(configured, side, `migrate.${side}`);
  throw usageError(
    `--${side} ${side === 'from' ? 'SOURCE' : 'DEST'} is required (or migrate.${side} in the --config file)`,
    `Usage: mailbridge ${migrateCommand.usage}`,
  );
}

/** The password of an `imaps://` side: its flag's file, the section's file, else the environment. */
export async function password(
  side: Side,
  values: Record<string, unknown>,
  section: MigrateSectionSettings,
  io: CliIo,
): Promise<string> {
  const flag = text(values[`${side}-password-file`]);
  const path = flag ?? section[side === 'from' ? 'fromPasswordFile' : 'toPasswordFile'];
  if (!path) return resolvePassword(side, { env: io.env });
  const name = flag ? `--${side}-password-file` : `migrate.${side}PasswordFile`;
  const content = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new ConfigurationError({
      code: 'MIGRATE_PASSWORD_MISSING',
      message: `${name} ${displayText(path)} cannot be read (${error.code ?? error.message})`,
      remedy: 'Give a file this user may read, holding the password on its first line.',
    });
  });
  const password = resolvePassword(side, { file: { path, text: content, name } });
  const readable = await readableByOthers(path, `${name} ${displayText(path)} holds a password`);
  if (readable) writeWarning(io.stderr, `${readable}: run chmod 600 on it.`);
  return password;
}

/** `--from-config`/`--to-config` when given, else the usual configuration (flags, environment, --config). */
function endpointConfig(side: Side, context: CommandContext): Promise<MailbridgeConfig> {
  const file = text(context.args.values[`${side}-config`]);
  return file
    ? loadConfigFile({ file, env: context.io.env, fileIsIdentity: true })
    : context.loadConfig();
}

export function formatResult(result: MigrateResult): string[] {
  const lines: string[] = [];
  const verb = result.dryRun ? 'would copy' : 'copied';
  for (const f of result.folders) {
    const parts = [`${verb} ${f.copied}`];
    if (f.alreadyPresent > 0) parts.push(`already there ${f.alreadyPresent}`);
    if (f.skipped.length > 0) parts.push(`skipped ${f.skipped.length}`);
    if (f.flagsUpdated) parts.push(`flags updated ${f.flagsUpdated}`);
    lines.push(
      `${displayText(f.source)} → ${displayText(f.destination)}${f.created ? (result.dryRun ? ' (would create)' : ' (created)') : ''}: ${parts.join(', ')}`,
    );
    for (const s of f.skipped) {
      lines.push(`  skipped UID ${s.uid}${s.size ? ` (${formatBytes(s.size)})` : ''}: ${s.reason}`);
    }
  }
  lines.push(
    `${result.dryRun ? 'Dry run: would copy' : 'Copied'} ${result.copied} message(s) (${formatBytes(result.bytes)}), ${result.alreadyPresent} already there, ${result.skipped} skipped,${result.flagsUpdated > 0 ? ` flags updated on ${result.flagsUpdated},` : ''} in ${result.folders.length} folder(s). State: ${result.stateDir}`,
  );
  return lines;
}

interface Progress {
  onEvent(event: MigrateProgressEvent): void;
  stop(): void;
}

/** JSON lines on stdout with --json; otherwise one live line on a terminal's stderr. */
function createProgress(io: CliIo, json: boolean): Progress {
  const stderr = io.stderr as NodeJS.WritableStream & { isTTY?: boolean };
  const tty = !json && stderr.isTTY === true;
  let folder = '';
  let pending = 0;
  let done = 0;
  let bytes = 0;
  let drawn = false;
  const draw = () => {
    if (!tty || folder === '') return;
    stderr.write(`\r\x1b[K${displayText(folder, 60)}: ${done}/${pending} (${formatBytes(bytes)})`);
    drawn = true;
  };
  const timer = tty ? setInterval(draw, REDRAW_INTERVAL_MS) : undefined;
  timer?.unref();
  return {
    onEvent(event) {
      if (json) {
        if (event.type !== 'message') writeLine(io.stdout, JSON.stringify(event));
        return;
      }
      if (event.type === 'folder-start') {
        folder = event.source;
        pending = event.pending;
        done = 0;
      } else if (event.type === 'message') {
        done++;
        bytes += event.bytes;
      }
    },
    stop() {
      if (timer) clearInterval(timer);
      if (drawn) stderr.write('\r\x1b[K');
    },
  };
}
