import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { createSmtpTransport } from '../../clients/smtp-transport.js';
import { ConfigurationError, ExitCode } from '../../errors.js';
import { usageError } from '../args.js';
import type { Command } from '../command.js';
import { writeLine } from '../output.js';

export const sendCommand: Command = {
  name: 'send',
  summary: 'send one message through Exchange Online (SMTP, XOAUTH2) and print its Message-ID',
  usage:
    'send --from ADDRESS --to ADDRESS... [--cc ADDRESS...] [--bcc ADDRESS...] --subject S (--text T | --html FILE | --eml FILE) [--attach FILE...]',
  usesSettings: true,
  flags: [
    {
      name: 'from',
      type: 'string',
      value: 'ADDRESS',
      help: 'mailbox that authenticates and sends',
    },
    {
      name: 'to',
      type: 'string',
      multiple: true,
      value: 'ADDRESS',
      help: 'recipient (repeatable)',
    },
    {
      name: 'cc',
      type: 'string',
      multiple: true,
      value: 'ADDRESS',
      help: 'copy recipient (repeatable)',
    },
    {
      name: 'bcc',
      type: 'string',
      multiple: true,
      value: 'ADDRESS',
      help: 'blind copy recipient (repeatable)',
    },
    { name: 'subject', type: 'string', value: 'S', help: 'subject line' },
    { name: 'text', type: 'string', value: 'T', help: 'plain-text body' },
    { name: 'html', type: 'string', value: 'FILE', help: 'HTML body from a file' },
    { name: 'eml', type: 'string', value: 'FILE', help: 'send this RFC 822 file as it is' },
    {
      name: 'attach',
      type: 'string',
      multiple: true,
      value: 'FILE',
      help: 'attachment (repeatable)',
    },
  ],
  details:
    'Exit 3 with the diagnosis when Exchange refuses the login or the sender (e.g. SendAs missing).',
  async run({ args, io, logger, loadConfig }) {
    const v = args.values;
    const list = (name: string): string[] => (Array.isArray(v[name]) ? (v[name] as string[]) : []);
    const from = typeof v.from === 'string' ? v.from : '';
    const to = list('to');
    if (!from)
      throw usageError(
        '--from ADDRESS is required',
        'Name the sending mailbox, e.g. --from reports@contoso.com.',
      );
    if (to.length === 0)
      throw usageError('at least one --to ADDRESS is required', 'Add --to for each recipient.');
    const bodies = ['text', 'html', 'eml'].filter((name) => typeof v[name] === 'string');
    if (bodies.length !== 1) {
      throw usageError(
        'give exactly one of --text, --html or --eml',
        'For example: --text "Nightly report attached".',
      );
    }
    if (v.eml === undefined && typeof v.subject !== 'string') {
      throw usageError('--subject is required', 'For example: --subject "Nightly report".');
    }
    const readInput = async (path: string, what: string): Promise<Buffer> => {
      try {
        return await readFile(path);
      } catch (cause) {
        throw new ConfigurationError({
          code: 'INPUT_UNREADABLE',
          message: `The ${what} file ${path} cannot be read (${(cause as NodeJS.ErrnoException).code ?? 'error'})`,
          remedy: 'Check the path and that this user may read it.',
          cause,
        });
      }
    };
    const attachments = await Promise.all(
      list('attach').map(async (path) => ({
        filename: basename(path),
        content: await readInput(path, 'attachment'),
      })),
    );
    const envelope = { from, to: [...to, ...list('cc'), ...list('bcc')] };
    const message =
      typeof v.eml === 'string'
        ? { envelope, raw: await readInput(v.eml, '--eml') }
        : {
            from,
            to,
            cc: list('cc'),
            bcc: list('bcc'),
            subject: String(v.subject),
            ...(typeof v.text === 'string' ? { text: v.text } : {}),
            ...(typeof v.html === 'string' ? { html: await readInput(v.html, '--html') } : {}),
            attachments,
          };
    const config = await loadConfig();
    const transport = createSmtpTransport(config, { from, logger, pool: false });
    try {
      const info = await transport.sendMail(message);
      const messageId =
        info.messageId ??
        /^message-id:\s*(<[^>\r\n]+>)/im.exec(
          (message as { raw?: Buffer }).raw?.toString('latin1') ?? '',
        )?.[1];
      writeLine(io.stdout, messageId ?? '(no Message-ID)');
      return ExitCode.ok;
    } finally {
      transport.close();
    }
  },
};
