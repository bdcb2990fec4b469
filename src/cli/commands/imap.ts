import { type FileHandle, open, rename, rm, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import type { FetchMessageObject, ImapFlow } from 'imapflow';
import { createImapClient, imapErrorToMailbridge, openFolder } from '../../clients/imap-client.js';
import type { MailbridgeConfig } from '../../config/types.js';
import { ConfigurationError, ExitCode, ProtocolError } from '../../errors.js';
import { newUids, toUidSet } from '../../jobs/mailbox-read/index.js';
import { displayText } from '../../util/display-text.js';
import { usageError } from '../args.js';
import type { Command, CommandContext } from '../command.js';
import { parseSince } from '../flag-values.js';
import { writeJson, writeLine } from '../output.js';

const mailboxFlag = {
  name: 'mailbox',
  type: 'string',
  value: 'ADDRESS',
  address: true,
  required: true,
  help: 'mailbox to log in as',
} as const;

const folderFlag = {
  name: 'folder',
  type: 'string',
  value: 'NAME',
  required: true,
  help: 'folder path as `imap folders` lists it, e.g. INBOX',
} as const;

function requireString(value: unknown, flag: string, example: string): string {
  if (typeof value !== 'string' || value === '')
    throw usageError(`${flag} is required`, `For example: ${example}.`);
  return value;
}

/** Logs in as --mailbox, runs `work`, and logs out whatever happened. */
async function withMailbox<T>(
  { args, logger, loadConfig }: CommandContext,
  work: (client: ImapFlow, context: { config: MailbridgeConfig; mailbox: string }) => Promise<T>,
): Promise<T> {
  const mailbox = requireString(args.values.mailbox, '--mailbox', '--mailbox archive@contoso.com');
  const config = await loadConfig();
  const client = await createImapClient(config, { mailbox, logger });
  try {
    return await work(client, { config, mailbox });
  } finally {
    await client.logout().catch(() => client.close());
  }
}

export const imapFoldersCommand: Command = {
  name: 'imap folders',
  summary: "list a mailbox's folders with their message counts",
  usage: 'imap folders --mailbox ADDRESS [--json]',
  usesSettings: true,
  flags: [
    mailboxFlag,
    { name: 'json', type: 'boolean', help: 'print [{ path, name, specialUse, messages }]' },
  ],
  async run(context) {
    const { args, io } = context;
    const rows = await withMailbox(context, async (client, where) => {
      const folders = await client
        .list({ statusQuery: { messages: true } })
        .catch((error: unknown) => {
          throw imapErrorToMailbridge(error, where);
        });
      return folders.map((f) => ({
        path: f.path,
        name: f.name,
        specialUse: f.specialUse ?? null,
        messages: f.status?.messages ?? null,
      }));
    });
    if (args.values.json === true) writeJson(io.stdout, rows);
    else
      for (const r of rows)
        writeLine(
          io.stdout,
          `${String(r.messages ?? '-').padStart(8)}  ${displayText(r.path)}${r.specialUse ? `  ${displayText(r.specialUse)}` : ''}`,
        );
    return ExitCode.ok;
  },
};

/** One message as `imap list --json` prints it. */
interface MessageRow {
  uid: number;
  /** When the server received it (INTERNALDATE), ISO 8601. */
  date: string | null;
  from: { name: string | null; address: string | null } | null;
  subject: string | null;
  messageId: string | null;
  size: number | null;
  flags: string[];
}

export const imapListCommand: Command = {
  name: 'imap list',
  summary: 'list the messages of a folder: UID, date, sender, size, flags and subject',
  usage: 'imap list --mailbox ADDRESS --folder NAME [--since DATE] [--limit N] [--json]',
  usesSettings: true,
  flags: [
    mailboxFlag,
    folderFlag,
    {
      name: 'since',
      type: 'string',
      value: 'DATE',
      help: 'only messages received on or after this day (YYYY-MM-DD)',
    },
    { name: 'limit', type: 'string', value: 'N', help: 'only the newest N messages' },
    {
      name: 'json',
      type: 'boolean',
      help: 'print [{ uid, date, from, subject, messageId, size, flags }]',
    },
  ],
  details: [
    'One line per message, oldest first: UID, date received (UTC), size in bytes, flags, sender, subject.',
    'UIDs are what `imap fetch --uid` takes. The folder is opened read-only.',
  ].join('\n'),
  async run(context) {
    const { args, io } = context;
    const folder = requireString(args.values.folder, '--folder', '--folder INBOX');
    const since = typeof args.values.since === 'string' ? sinceOf(args.values.since) : undefined;
    const limit = typeof args.values.limit === 'string' ? limitOf(args.values.limit) : undefined;
    const rows = await withMailbox(context, async (client, where) => {
      await openFolder(client, folder, where);
      try {
        const found = await client.search(since ? { since } : { all: true }, { uid: true });
        if (!Array.isArray(found)) {
          throw new ProtocolError({
            code: 'IMAP_SEARCH_REFUSED',
            message: `The server refused UID SEARCH in ${displayText(folder)}`,
            remedy:
              'Run the command again; if it keeps failing, check the folder with `imap folders`.',
          });
        }
        // UIDs grow with each message a folder receives: the highest are the newest.
        const uids = newUids(found, 0).slice(limit === undefined ? 0 : -limit);
        const messages: MessageRow[] = [];
        if (uids.length === 0) return messages;
        const query = { uid: true, envelope: true, flags: true, size: true, internalDate: true };
        for await (const msg of client.fetch(toUidSet(uids), query, { uid: true })) {
          messages.push(messageRow(msg));
        }
        return messages.sort((a, b) => a.uid - b.uid);
      } catch (error) {
        throw imapErrorToMailbridge(error, where);
      }
    });
    if (args.values.json === true) writeJson(io.stdout, rows);
    else for (const line of messageLines(rows)) writeLine(io.stdout, line);
    return ExitCode.ok;
  },
};

function sinceOf(text: string): Date {
  try {
    return parseSince(text);
  } catch {
    throw usageError(
      `--since must be a date like 2026-01-31, not '${displayText(text, 40)}'`,
      'Messages received on or after that day (UTC) are listed.',
    );
  }
}

function limitOf(text: string): number {
  if (!/^[1-9]\d{0,6}$/.test(text)) {
    throw usageError(
      `--limit must be a whole number from 1 to 9999999, not '${displayText(text, 40)}'`,
      'For example: --limit 20 lists the 20 newest messages.',
    );
  }
  return Number(text);
}

function messageRow(msg: FetchMessageObject): MessageRow {
  const from = msg.envelope?.from?.[0];
  const date = msg.internalDate ? new Date(msg.internalDate) : undefined;
  return {
    uid: msg.uid,
    date: date && !Number.isNaN(date.getTime()) ? date.toISOString() : null,
    from: from ? { name: from.name || null, address: from.address || null } : null,
    subject: msg.envelope?.subject ?? null,
    messageId: msg.envelope?.messageId ?? null,
    size: msg.size ?? null,
    // \Recent says which session saw the message first (RFC 3501), nothing about the message.
    flags: [...(msg.flags ?? [])].filter((flag) => flag.toLowerCase() !== '\\recent'),
  };
}

/** Aligned columns; everything the server sent goes through displayText. */
function messageLines(rows: readonly MessageRow[]): string[] {
  const cells = rows.map((r) => [
    String(r.uid),
    r.date ? r.date.slice(0, 16).replace('T', ' ') : '-',
    String(r.size ?? '-'),
    r.flags.length > 0 ? displayText(r.flags.join(','), 60) : '-',
    displayText(r.from?.address ?? r.from?.name ?? '-', 60),
    displayText(r.subject ?? '', 200),
  ]);
  const width = (i: number) => Math.max(0, ...cells.map((c) => (c[i] as string).length));
  const right = new Set([0, 2]);
  return cells.map((c) =>
    c
      .map((cell, i) =>
        i === c.length - 1 ? cell : right.has(i) ? cell.padStart(width(i)) : cell.padEnd(width(i)),
      )
      .join('  ')
      .trimEnd(),
  );
}

export const imapFetchCommand: Command = {
  name: 'imap fetch',
  summary: 'write one message, exactly as the server stores it (RFC 822), to stdout or a file',
  usage: 'imap fetch --mailbox ADDRESS --folder NAME --uid N [--out FILE [--force]]',
  usesSettings: true,
  flags: [
    mailboxFlag,
    folderFlag,
    {
      name: 'uid',
      type: 'string',
      value: 'N',
      required: true,
      help: 'UID of the message (see `imap list`)',
    },
    {
      name: 'out',
      type: 'string',
      value: 'FILE',
      help: 'write here (complete or not at all) instead of stdout',
    },
    { name: 'force', type: 'boolean', help: 'replace an existing --out file' },
  ],
  async run(context) {
    const { args, io } = context;
    const folder = requireString(args.values.folder, '--folder', '--folder INBOX');
    const uidText = requireString(args.values.uid, '--uid', '--uid 42');
    if (!/^[1-9]\d{0,9}$/.test(uidText))
      throw usageError(
        `--uid must be a positive whole number, not '${displayText(uidText, 20)}'`,
        'Find UIDs with `mailbridge imap list` or the archive manifest.',
      );
    const out = typeof args.values.out === 'string' ? args.values.out : undefined;
    // The file is opened before the server is asked: a path we cannot write is the user's to fix, not the server's.
    const file = out ? await openOutput(out, args.values.force === true) : undefined;
    return withMailbox(context, async (client, where) => {
      await openFolder(client, folder, where);
      const download = await client
        .download(uidText, undefined, { uid: true })
        .catch((error: unknown) => {
          throw imapErrorToMailbridge(error, where);
        });
      if (!download?.content) {
        throw new ProtocolError({
          code: 'IMAP_MESSAGE_NOT_FOUND',
          message: `No message with UID ${uidText} in ${displayText(folder)} of ${displayText(where.mailbox)}`,
          remedy:
            'Check the folder and the UID (UIDs are per folder): `mailbridge imap list` shows them.',
        });
      }
      if (!out || !file) {
        await pipeline(download.content, io.stdout, { end: false });
        return ExitCode.ok;
      }
      // Written under a temporary name and renamed, so a failed download never leaves a partial file.
      try {
        await pipeline(download.content, file.handle.createWriteStream());
        await rename(file.partial, out);
      } catch (error) {
        await rm(file.partial, { force: true });
        throw imapErrorToMailbridge(error, where);
      }
      return ExitCode.ok;
    });
  },
};

/** The temporary file `imap fetch --out` writes before renaming it to `out`. */
async function openOutput(
  out: string,
  force: boolean,
): Promise<{ partial: string; handle: FileHandle }> {
  const shown = displayText(out);
  if (!force && (await stat(out).catch(() => undefined))) {
    throw usageError(
      `${shown} already exists; it was left as it is`,
      'Pass --force to replace it, or choose another --out file.',
    );
  }
  const partial = `${out}.partial-${process.pid}`;
  try {
    return { partial, handle: await open(partial, 'wx', 0o600) };
  } catch (error) {
    throw new ConfigurationError({
      code: 'OUTPUT_UNWRITABLE',
      message: `Cannot write ${shown}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      remedy: 'Check that the directory exists and that this user may write to it.',
      cause: error,
    });
  }
}
