import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { createImapClient, imapErrorToMailbridge } from '../../clients/imap-client.js';
import { ExitCode, ProtocolError } from '../../errors.js';
import { usageError } from '../args.js';
import type { Command } from '../command.js';
import { writeJson, writeLine } from '../output.js';

const mailboxFlag = {
  name: 'mailbox',
  type: 'string',
  value: 'ADDRESS',
  help: 'mailbox to log in as',
} as const;

function requireString(value: unknown, flag: string, example: string): string {
  if (typeof value !== 'string' || value === '')
    throw usageError(`${flag} is required`, `For example: ${example}.`);
  return value;
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
  async run({ args, io, logger, loadConfig }) {
    const mailbox = requireString(
      args.values.mailbox,
      '--mailbox',
      '--mailbox archive@contoso.com',
    );
    const config = await loadConfig();
    const client = await createImapClient(config, { mailbox, logger });
    try {
      const folders = await client
        .list({ statusQuery: { messages: true } })
        .catch((error: unknown) => {
          throw imapErrorToMailbridge(error, { config, mailbox });
        });
      const rows = folders.map((f) => ({
        path: f.path,
        name: f.name,
        specialUse: f.specialUse ?? null,
        messages: f.status?.messages ?? null,
      }));
      if (args.values.json === true) writeJson(io.stdout, rows);
      else
        for (const r of rows)
          writeLine(
            io.stdout,
            `${String(r.messages ?? '-').padStart(8)}  ${r.path}${r.specialUse ? `  ${r.specialUse}` : ''}`,
          );
      return ExitCode.ok;
    } finally {
      await client.logout().catch(() => client.close());
    }
  },
};

export const imapFetchCommand: Command = {
  name: 'imap fetch',
  summary: 'write one message, exactly as the server stores it (RFC 822), to stdout or a file',
  usage: 'imap fetch --mailbox ADDRESS --folder NAME --uid N [--out FILE]',
  usesSettings: true,
  flags: [
    mailboxFlag,
    { name: 'folder', type: 'string', value: 'NAME', help: 'folder path, e.g. INBOX' },
    { name: 'uid', type: 'string', value: 'N', help: 'UID of the message' },
    {
      name: 'out',
      type: 'string',
      value: 'FILE',
      help: 'write here (complete or not at all) instead of stdout',
    },
  ],
  async run({ args, io, logger, loadConfig }) {
    const mailbox = requireString(
      args.values.mailbox,
      '--mailbox',
      '--mailbox archive@contoso.com',
    );
    const folder = requireString(args.values.folder, '--folder', '--folder INBOX');
    const uidText = requireString(args.values.uid, '--uid', '--uid 42');
    if (!/^[1-9]\d{0,9}$/.test(uidText))
      throw usageError(
        `--uid must be a positive whole number, not '${uidText.slice(0, 20)}'`,
        'Find UIDs with an IMAP client or the archive manifest.',
      );
    const out = typeof args.values.out === 'string' ? args.values.out : undefined;
    const config = await loadConfig();
    const client = await createImapClient(config, { mailbox, logger });
    try {
      const download = await (async () => {
        await client.mailboxOpen(folder, { readOnly: true });
        return client.download(uidText, undefined, { uid: true });
      })().catch((error: unknown) => {
        throw imapErrorToMailbridge(error, { config, mailbox });
      });
      if (!download?.content) {
        throw new ProtocolError({
          code: 'IMAP_MESSAGE_NOT_FOUND',
          message: `No message with UID ${uidText} in ${folder} of ${mailbox}`,
          remedy: 'Check the folder and the UID (UIDs are per folder).',
        });
      }
      if (!out) {
        await pipeline(download.content, io.stdout, { end: false });
        return ExitCode.ok;
      }
      // Written under a temporary name and renamed, so a failed download never leaves a partial file.
      const partial = `${out}.partial-${process.pid}`;
      try {
        await pipeline(download.content, createWriteStream(partial, { flags: 'wx', mode: 0o600 }));
        await rename(partial, out);
      } catch (error) {
        await rm(partial, { force: true });
        throw imapErrorToMailbridge(error, { config, mailbox });
      }
      return ExitCode.ok;
    } finally {
      await client.logout().catch(() => client.close());
    }
  },
};
