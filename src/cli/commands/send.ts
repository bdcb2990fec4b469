import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { buffer } from 'node:stream/consumers';
import type Mail from 'nodemailer/lib/mailer/index.js';
import { sendWithTemporaryRetry } from '../../clients/smtp-temporary-retry.js';
import { createSmtpTransport } from '../../clients/smtp-transport.js';
import { ConfigurationError, ExitCode } from '../../errors.js';
import { displayText } from '../../util/display-text.js';
import { type ParsedArgs, usageError } from '../args.js';
import type { Command } from '../command.js';
import { writeJson, writeLine } from '../output.js';

/** Every flag that takes an address; each value must be one bare address. */

/** Flags that shape a composed message, so they make no sense with --eml. */
const COMPOSING_FLAGS = ['subject', 'reply-to', 'header', 'attach'] as const;

/** Headers that the flags or the MIME structure decide; `content-*` too. */
const OWN_HEADERS: Record<string, string> = {
  from: 'Use --from.',
  to: 'Use --to.',
  cc: 'Use --cc.',
  bcc: 'Use --bcc.',
  'reply-to': 'Use --reply-to.',
  subject: 'Use --subject.',
  sender: 'The sender is the --from mailbox.',
  'message-id': 'Each message gets a new Message-ID.',
  date: 'The date is the time of sending.',
  'mime-version': 'The MIME structure follows from the bodies and attachments.',
};

export const sendCommand: Command = {
  name: 'send',
  summary: 'send one message through Exchange Online (SMTP, XOAUTH2) and print its Message-ID',
  usage:
    'send --from ADDRESS --to ADDRESS... [--cc ADDRESS...] [--bcc ADDRESS...] [--reply-to ADDRESS...] --subject S (--text T | --html FILE | --text T --html FILE | --eml FILE) [--attach FILE...] [--header "Name: value"...] [--json]',
  usesSettings: true,
  flags: [
    {
      name: 'from',
      type: 'string',
      value: 'ADDRESS',
      address: true,
      required: true,
      help: 'mailbox that authenticates and sends',
    },
    {
      name: 'to',
      type: 'string',
      multiple: true,
      value: 'ADDRESS',
      address: true,
      required: true,
      help: 'recipient (repeatable)',
    },
    {
      name: 'cc',
      type: 'string',
      multiple: true,
      value: 'ADDRESS',
      address: true,
      help: 'copy recipient (repeatable)',
    },
    {
      name: 'bcc',
      type: 'string',
      multiple: true,
      value: 'ADDRESS',
      address: true,
      help: 'blind copy recipient (repeatable)',
    },
    {
      name: 'reply-to',
      type: 'string',
      multiple: true,
      value: 'ADDRESS',
      address: true,
      help: 'where replies go (repeatable)',
    },
    { name: 'subject', type: 'string', value: 'S', help: 'subject line' },
    { name: 'text', type: 'string', value: 'T', help: 'plain-text body (- reads stdin)' },
    { name: 'html', type: 'string', value: 'FILE', help: 'HTML body from a file (- reads stdin)' },
    {
      name: 'eml',
      type: 'string',
      value: 'FILE',
      help: 'send this RFC 822 file as it is (- reads stdin)',
    },
    {
      name: 'attach',
      type: 'string',
      multiple: true,
      value: 'FILE',
      help: 'attachment (repeatable)',
    },
    {
      name: 'header',
      type: 'string',
      multiple: true,
      value: '"Name: value"',
      help: 'extra header field (repeatable)',
    },
    { name: 'json', type: 'boolean', help: 'print { messageId, accepted, rejected }' },
  ],
  details: [
    'Each address flag takes one bare address (alice@contoso.com); repeat the flag for more.',
    '--text and --html together send both as alternatives. `-` reads standard input, for one of',
    '--text, --html and --eml per run. --header refuses the fields mailbridge sets itself.',
    'Exit 3 with the diagnosis when Exchange refuses the login or the sender (e.g. SendAs missing).',
    'A temporary refusal (4yz, e.g. 451 4.7.500 Server busy) is tried twice more within a few seconds;',
    'then exit 4 with SMTP_TEMPORARY_FAILURE (nothing was sent).',
  ].join('\n'),
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
    const headers = list('header').map(parseHeader);
    const bodies = checkBodies(v);
    const eml = typeof v.eml === 'string' ? v.eml : undefined;
    if (eml === undefined && typeof v.subject !== 'string') {
      throw usageError('--subject is required', 'For example: --subject "Nightly report".');
    }
    const stdin = (): Promise<Buffer> => buffer(io.stdin ?? process.stdin);
    const read = (path: string, what: string): Promise<Buffer> =>
      path === '-' ? stdin() : readInput(path, what);
    const text = bodies.text === '-' ? (await stdin()).toString('utf8') : bodies.text;
    const attachments = await Promise.all(
      list('attach').map(async (path) => ({
        filename: basename(path),
        content: await readInput(path, 'attachment'),
      })),
    );
    const envelope = { from, to: [...to, ...list('cc'), ...list('bcc')] };
    const message: Mail.Options =
      eml !== undefined
        ? { envelope, raw: await read(eml, '--eml') }
        : {
            from,
            to,
            cc: list('cc'),
            bcc: list('bcc'),
            ...(list('reply-to').length > 0 ? { replyTo: list('reply-to') } : {}),
            subject: String(v.subject),
            ...(text !== undefined ? { text } : {}),
            ...(bodies.html !== undefined ? { html: await read(bodies.html, '--html') } : {}),
            attachments,
            headers,
          };
    const config = await loadConfig();
    const transport = createSmtpTransport(config, { from, logger, pool: false });
    try {
      const info = await sendWithTemporaryRetry(() => transport.sendMail(message), {
        from,
        logger,
      });
      // nodemailer makes up an id for a raw message too, but only the file's own is in the message.
      const messageId = Buffer.isBuffer(message.raw)
        ? /^message-id:\s*(<[^>\r\n]+>)/im.exec(message.raw.toString('latin1'))?.[1]
        : info.messageId;
      if (v.json === true) {
        writeJson(io.stdout, {
          messageId: messageId ?? null,
          accepted: info.accepted.map(addressOf),
          rejected: info.rejected.map(addressOf),
        });
      } else {
        writeLine(io.stdout, messageId ?? '(no Message-ID)');
      }
      return ExitCode.ok;
    } finally {
      transport.close();
    }
  },
};

/** Which bodies were given; at most one of them may be `-` (there is one stdin). */
function checkBodies(values: ParsedArgs['values']): { text?: string; html?: string } {
  const given = (['text', 'html', 'eml'] as const).filter(
    (name) => typeof values[name] === 'string',
  );
  if (given.length === 0) {
    throw usageError(
      'give --text, --html or --eml',
      'For example: --text "Nightly report attached".',
    );
  }
  if (given.includes('eml')) {
    const extra = [...given.filter((name) => name !== 'eml'), ...COMPOSING_FLAGS].filter(
      (name) => values[name] !== undefined,
    );
    if (extra.length > 0) {
      throw usageError(
        `--eml sends the file as it is, so ${extra.map((name) => `--${name}`).join(', ')} cannot be added to it`,
        'Put them into the file, or compose the message with --text/--html instead of --eml.',
      );
    }
  }
  const fromStdin = given.filter((name) => values[name] === '-');
  if (fromStdin.length > 1) {
    throw usageError(
      `${fromStdin.map((name) => `--${name}`).join(' and ')} cannot both read standard input (-)`,
      'Give all but one of them as a file or as text.',
    );
  }
  return {
    ...(typeof values.text === 'string' ? { text: values.text } : {}),
    ...(typeof values.html === 'string' ? { html: values.html } : {}),
  };
}

/** `Name: value` → a header field; refuses line breaks and the fields mailbridge sets. */
function parseHeader(field: string): { key: string; value: string } {
  const colon = field.indexOf(':');
  const key = colon > 0 ? field.slice(0, colon).trim() : '';
  if (!/^[\x21-\x39\x3b-\x7e]+$/.test(key)) {
    throw usageError(
      `--header '${displayText(field, 100)}' is not 'Name: value'`,
      "For example: --header 'X-Report-Id: 42'.",
    );
  }
  const value = field.slice(colon + 1).trim();
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point.
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(value)) {
    throw usageError(
      `--header ${key} has a line break or control character in its value`,
      'A header field is one line: give its value without line breaks.',
    );
  }
  const lower = key.toLowerCase();
  const own =
    OWN_HEADERS[lower] ?? (lower.startsWith('content-') ? OWN_HEADERS['mime-version'] : undefined);
  if (own) throw usageError(`--header cannot set ${key}: mailbridge sets it`, own);
  return { key, value };
}

async function readInput(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (cause) {
    throw new ConfigurationError({
      code: 'INPUT_UNREADABLE',
      message: `The ${what} file ${displayText(path)} cannot be read (${(cause as NodeJS.ErrnoException).code ?? 'error'})`,
      remedy: 'Check the path and that this user may read it.',
      cause,
    });
  }
}

function addressOf(value: string | Mail.Address): string {
  return typeof value === 'string' ? value : (value.address ?? '');
}
