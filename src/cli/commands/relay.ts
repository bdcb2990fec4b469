import { stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { readConfigFile } from '../../config/file.js';
import { ConfigurationError, ExitCode, MailbridgeError } from '../../errors.js';
import { hashPassword } from '../../jobs/listener/password.js';
import { parseRelaySettings } from '../../jobs/relay/config.js';
import { startRelay } from '../../jobs/relay/relay.js';
import { SPOOL_ID, Spool, type SpoolEnvelope } from '../../jobs/relay/spool.js';
import { createJsonLogger } from '../../log/json-logger.js';
import { displayText } from '../../util/display-text.js';
import { formatBytes, formatDuration } from '../../util/format.js';
import { type FlagSpec, usageError } from '../args.js';
import type { Command, CommandContext } from '../command.js';
import type { CliIo } from '../output.js';
import { writeJson, writeLine } from '../output.js';

const RELAY_DETAILS = [
  'Accepts mail from devices and applications on the local network (plain SMTP, AUTH PLAIN/LOGIN',
  'against relay.users, or from relay.allowNetworks) and submits it to Exchange Online over SMTP with',
  'XOAUTH2. A message is acknowledged (250) only once it is flushed to the spool, and leaves the',
  'spool only after Exchange accepted it. The config file needs the usual app settings and a relay:',
  'section: listen, spool, tls {cert, key}, users, allowNetworks, policy [{user | network, senders,',
  'mailbox}], maxMessageSize, maxRecipients, rateLimitPerMinute, connectionsPerMailbox, retryFor,',
  'retryBackoff {initial, max}, bounce, http, shutdownTimeout, hostname, allowPlaintextAuth.',
  '',
  'Logs one JSON line per event on stdout (accepted, delivered, deferred, dead, refused).',
  'SIGTERM or SIGINT: stop accepting, finish deliveries in flight within relay.shutdownTimeout,',
  'keep the rest spooled, exit 0. Listening beyond loopback without an IP allow-list, or without',
  'TLS and a users file, is refused at start-up (exit 2): no open relay.',
].join('\n');

const SPOOL_FLAG: FlagSpec = {
  name: 'spool',
  type: 'string',
  value: 'DIR',
  help: 'spool directory (else relay.spool of --config)',
};

export const relayCommand: Command = {
  name: 'relay',
  summary:
    'accept mail from legacy devices over SMTP and submit it to Exchange Online with XOAUTH2',
  usage: 'relay --config FILE [--listen HOST:PORT...] [--spool DIR]',
  usesSettings: true,
  flags: [
    {
      name: 'listen',
      type: 'string',
      multiple: true,
      value: 'HOST:PORT',
      help: 'listen here instead of relay.listen (repeatable; smtps://HOST:PORT for implicit TLS)',
    },
    { name: 'spool', type: 'string', value: 'DIR', help: 'spool directory instead of relay.spool' },
  ],
  details: RELAY_DETAILS,
  async run({ args, io, loadConfig }) {
    const configFile = typeof args.values.config === 'string' ? args.values.config : undefined;
    if (!configFile) {
      // The policy (who may send as whom) exists only in a file: flags alone cannot make a relay.
      throw usageError(
        '--config FILE is required',
        'Give the config file whose relay: section holds the listeners, spool and policy (see examples/relay).',
      );
    }
    const listen = Array.isArray(args.values.listen) ? (args.values.listen as string[]) : [];
    const spool = typeof args.values.spool === 'string' ? args.values.spool : undefined;
    const config = await loadConfig();
    const settings = parseRelaySettings(config.sections.relay, {
      baseDir: configFile ? dirname(resolve(configFile)) : process.cwd(),
      ...(listen.length > 0 ? { listen } : {}),
      ...(spool ? { spool: resolve(spool) } : {}),
    });
    const logger = createJsonLogger(io.stdout, {
      level: args.values.debug === true ? 'debug' : 'info',
    });
    // Listening before the start: a SIGTERM just after `started` is logged must
    // stop the relay gracefully, not kill it by the signal's default action.
    const signals = catchSignals(['SIGTERM', 'SIGINT']);
    let relay: Awaited<ReturnType<typeof startRelay>>;
    try {
      relay = await startRelay(config, { settings, logger });
    } catch (error) {
      signals.release();
      // The log stream gets the reason too: collectors of the JSON lines may not see stderr.
      logger.log('error', 'relay not started', {
        event: 'start-failed',
        code: error instanceof MailbridgeError ? error.code : 'UNEXPECTED',
      });
      throw error;
    }
    const signal = await signals.first;
    logger.log('info', 'signal received', { event: 'signal', signal });
    const { unfinished } = await relay.stop();
    if (unfinished > 0) {
      logger.log('warn', 'deliveries still in flight at exit stay spooled', {
        event: 'unfinished',
        count: unfinished,
      });
    }
    return ExitCode.ok;
  },
};

export const relayHashPasswordCommand: Command = {
  name: 'relay hash-password',
  summary: 'read a password on stdin and print its scrypt hash (PHC format) for relay.users',
  usage: 'relay hash-password [--user NAME]',
  usesSettings: false,
  flags: [
    {
      name: 'user',
      type: 'string',
      value: 'NAME',
      help: 'print a whole users-file line, NAME:hash',
    },
  ],
  details: [
    'At a terminal it asks twice without echo; otherwise it reads the first line of stdin.',
    'The password is never accepted as an argument (argv is visible to other users).',
    'Example: mailbridge relay hash-password --user scanner >> /etc/mailbridge/relay-users',
  ].join('\n'),
  run: (context) => runHashPassword(context, 'relay hash-password'),
};

/** Reads a password and prints its hash; `command` (relay's or proxy's) is named in its errors. */
export async function runHashPassword(
  { args, io }: CommandContext,
  command: string,
): Promise<number> {
  const user = typeof args.values.user === 'string' ? args.values.user : undefined;
  if (user !== undefined && !/^[\x21-\x39\x3b-\x7e]{1,128}$/.test(user)) {
    throw usageError(
      '--user must be printable ASCII without spaces or colons',
      'For example: --user scanner-2f.',
    );
  }
  const input = stdinOf(io);
  const password = isTty(input)
    ? await promptTwice(input, io.stderr)
    : firstLine(await readAll(input));
  if (password === '') {
    throw usageError(
      'the password is empty',
      `Type it at the prompt, or pipe it in: printf %s "$PW" | mailbridge ${command}.`,
    );
  }
  const hash = await hashPassword(password);
  writeLine(io.stdout, user !== undefined ? `${user}:${hash}` : hash);
  return ExitCode.ok;
}

export const relayStatusCommand: Command = {
  name: 'relay status',
  summary: 'show the relay spool: queued messages, dead letters, and whether a relay is running',
  usage: 'relay status (--spool DIR | --config FILE) [--json]',
  usesSettings: false,
  flags: [
    SPOOL_FLAG,
    {
      name: 'json',
      type: 'boolean',
      help: 'print { spool, running, pid, queue, dead, quarantine } as JSON',
    },
  ],
  details: [
    'Quarantine: accepted messages whose envelope file could not be read at start-up; the message',
    'file is kept there with the reason, since the recipients are unknown it cannot be retried.',
  ].join('\n'),
  async run(context) {
    const { args, io } = context;
    const spool = await openExistingSpool(context);
    const [queue, dead, quarantine, holder] = await Promise.all([
      spool.listQueue(),
      spool.listDead(),
      spool.listQuarantine(),
      spool.lockHolder(),
    ]);
    const pid = holder?.pid;
    const now = Date.now();
    if (args.values.json === true) {
      writeJson(io.stdout, {
        spool: spool.dir,
        running: holder !== undefined,
        ...(pid !== undefined ? { pid } : {}),
        queue: queue.map(summary),
        dead: dead.map(summary),
        quarantine,
      });
      return ExitCode.ok;
    }
    const running = holder ? `relay running (pid ${pid ?? 'unknown'})` : 'no relay running';
    writeLine(io.stdout, `Spool ${displayText(spool.dir)}: ${running}`);
    const bytes = queue.reduce((sum, e) => sum + e.size, 0);
    const oldest = queue.reduce((min, e) => Math.min(min, Date.parse(e.receivedAt)), now);
    writeLine(
      io.stdout,
      `Queue: ${queue.length} message(s)${queue.length > 0 ? `, ${formatBytes(bytes)}, oldest ${formatDuration(now - oldest)}` : ''}`,
    );
    for (const e of queue) {
      const next = Date.parse(e.nextAttemptAt) - now;
      writeLine(
        io.stdout,
        `  ${e.id}  ${formatDuration(now - Date.parse(e.receivedAt)).padStart(6)} old  attempts ${e.attempts}  next ${next > 0 ? `in ${formatDuration(next)}` : 'now'}  as ${displayText(e.mailbox)}  ${e.to.length} rcpt  ${displayText(e.messageId)}${e.lastError ? `\n      last: ${displayText(e.lastError.code)}: ${displayText(e.lastError.reply, 400)}` : ''}`,
      );
    }
    writeLine(io.stdout, `Dead: ${dead.length} message(s)`);
    for (const e of dead) {
      writeLine(
        io.stdout,
        `  ${displayText(e.id)}  ${displayText(e.deadAt ?? '')}  as ${displayText(e.mailbox)}  ${displayText(e.messageId)}\n      ${displayText(e.reason ?? '', 400)}`,
      );
    }
    if (quarantine.length > 0) {
      writeLine(io.stdout, `Quarantine: ${quarantine.length} message(s), envelope unreadable`);
      for (const q of quarantine) {
        writeLine(
          io.stdout,
          `  ${q.id}  ${q.quarantinedAt}  ${displayText(q.path)}\n      ${displayText(q.reason, 400)}`,
        );
      }
    }
    return ExitCode.ok;
  },
};

export const relayRetryCommand: Command = {
  name: 'relay retry',
  summary: 'send dead or waiting messages again now',
  usage: 'relay retry (--spool DIR | --config FILE) (ID... | --all)',
  usesSettings: false,
  operands: 'ID...',
  flags: [
    SPOOL_FLAG,
    { name: 'all', type: 'boolean', help: 'every dead and every waiting message' },
  ],
  details: [
    'A dead message goes back to the queue with a fresh retry window; a waiting one is tried at once.',
    'A running relay picks them up within a few seconds; otherwise the next start does.',
  ].join('\n'),
  async run(context) {
    const { args, io } = context;
    const all = args.values.all === true;
    const ids = args.positionals;
    if (all === ids.length > 0) {
      throw usageError(
        'give either spool ids or --all',
        'List the ids with `mailbridge relay status --spool DIR`.',
      );
    }
    for (const id of ids) {
      if (!SPOOL_ID.test(id)) {
        throw usageError(
          `'${displayText(id, 40)}' is not a spool id`,
          'Spool ids are 19 letters and digits, as `mailbridge relay status` shows them.',
        );
      }
    }
    const spool = await openExistingSpool(context);
    const targets = all
      ? [...(await spool.listDead()), ...(await spool.listQueue())].map((e) => e.id)
      : ids;
    let unknown = 0;
    for (const id of targets) {
      const result = await spool.release(id);
      if (result === 'unknown') unknown++;
      writeLine(
        io.stdout,
        `${id}  ${result === 'released' ? 'moved from dead back to the queue' : result === 'kicked' ? 'will be tried now' : 'not found'}`,
      );
    }
    if (targets.length === 0) writeLine(io.stdout, 'Nothing to retry.');
    return unknown > 0 ? ExitCode.failure : ExitCode.ok;
  },
};

export const RELAY_COMMANDS: Command[] = [
  relayCommand,
  relayHashPasswordCommand,
  relayStatusCommand,
  relayRetryCommand,
];

async function openExistingSpool({ args }: CommandContext): Promise<Spool> {
  let dir = typeof args.values.spool === 'string' ? resolve(args.values.spool) : undefined;
  if (!dir && typeof args.values.config === 'string') {
    const file = resolve(args.values.config);
    const settings = await readConfigFile(file);
    const relay = settings.relay as { spool?: unknown } | undefined;
    if (typeof relay?.spool === 'string' && relay.spool.trim()) {
      dir = isAbsolute(relay.spool) ? relay.spool : resolve(dirname(file), relay.spool);
    }
  }
  if (!dir) {
    throw usageError(
      '--spool DIR is required (or --config FILE with relay.spool)',
      'For example: --spool /var/spool/mailbridge.',
    );
  }
  const queue = await stat(resolve(dir, 'queue')).catch(() => undefined);
  if (!queue?.isDirectory()) {
    throw new ConfigurationError({
      code: 'RELAY_SPOOL_NOT_FOUND',
      message: `${dir} is not a relay spool (it has no queue folder)`,
      remedy: 'Give the directory named by relay.spool; the relay creates it on its first start.',
    });
  }
  return new Spool(dir);
}

function summary(e: SpoolEnvelope): Record<string, unknown> {
  return {
    id: e.id,
    messageId: e.messageId,
    from: e.from,
    recipients: e.to.length,
    mailbox: e.mailbox,
    size: e.size,
    receivedAt: e.receivedAt,
    attempts: e.attempts,
    nextAttemptAt: e.nextAttemptAt,
    ...(e.lastError ? { lastError: e.lastError } : {}),
    ...(e.deadAt ? { deadAt: e.deadAt, reason: e.reason } : {}),
  };
}

/**
 * Handles the signals from now on: `first` resolves with the first to come;
 * `release` gives them back to their default. SIGTERM handling lives in the CLI only.
 */
export function catchSignals(signals: NodeJS.Signals[]): {
  first: Promise<NodeJS.Signals>;
  release(): void;
} {
  const handlers = new Map<NodeJS.Signals, () => void>();
  const release = () => {
    for (const [s, h] of handlers) process.off(s, h);
  };
  const first = new Promise<NodeJS.Signals>((resolvePromise) => {
    for (const signal of signals) {
      const handler = () => {
        release();
        resolvePromise(signal);
      };
      handlers.set(signal, handler);
      process.once(signal, handler);
    }
  });
  return { first, release };
}

type Input = NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => void };

/** `CliIo` has no stdin yet; a caller may pass one, else the process's is used. */
function stdinOf(io: CliIo): Input {
  return ((io as CliIo & { stdin?: Input }).stdin ?? process.stdin) as Input;
}

function isTty(input: Input): boolean {
  return input.isTTY === true && typeof input.setRawMode === 'function';
}

async function readAll(input: Input): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of input) {
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
    if (chunks.reduce((n, c) => n + c.length, 0) > 64 * 1024) break;
  }
  return Buffer.concat(chunks).toString('utf8');
}

function firstLine(text: string): string {
  return (text.split(/\r?\n/)[0] ?? '').replace(/\r$/, '');
}

async function promptTwice(input: Input, output: NodeJS.WritableStream): Promise<string> {
  const first = await promptHidden(input, output, 'Password: ');
  const second = await promptHidden(input, output, 'Again: ');
  if (first !== second) {
    throw usageError(
      'the two passwords differ',
      'Run the command again and type the same password twice.',
    );
  }
  return first;
}

/** Reads one line from a terminal in raw mode, echoing nothing. */
function promptHidden(
  input: Input,
  output: NodeJS.WritableStream,
  prompt: string,
): Promise<string> {
  output.write(prompt);
  input.setRawMode?.(true);
  input.resume();
  return new Promise((resolvePromise, reject) => {
    let value = '';
    const done = (error?: Error) => {
      input.off('data', onData);
      input.setRawMode?.(false);
      input.pause();
      output.write('\n');
      if (error) reject(error);
      else resolvePromise(value);
    };
    const onData = (chunk: Buffer | string) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(usageError('cancelled', 'Run the command again.'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else if (ch >= ' ') value += ch;
      }
    };
    input.on('data', onData);
  });
}
