/**
 * Configuration snippets for the mail tools people already run, with
 * `mailbridge token --show-token --cache FILE` as their password command, so
 * that they log in to Exchange Online with XOAUTH2 and an app-only token.
 *
 * Every value is written in the quoting of the tool that reads it, and the
 * token command is first quoted for sh, which runs it for msmtp and mbsync:
 * - msmtp: the rest of the line is the argument, as it is (a value that
 *   starts or ends with a blank or `"` would be read differently: refused);
 * - mbsync: an argument in double quotes, `\` and `"` escaped with `\`;
 * - getmail6: an INI value, read raw (RawConfigParser, no `%` interpolation),
 *   and the command as a Python tuple of string literals, which getmail
 *   evaluates: JSON string literals are Python string literals too.
 * - offlineimap: an INI value with `%` doubled (its parser interpolates),
 *   and the command as a Python expression that runs it, which offlineimap
 *   evaluates (`oauth2_access_token_eval`).
 * Control characters are refused everywhere (`SETUP_UNSAFE_VALUE`): a line
 * break would start a new configuration line.
 */
import type { Endpoint } from '../config/types.js';
import { ConfigurationError } from '../errors.js';
import { refuseUnsafeCharacter, shQuote } from './shell-quote.js';

export const TOOLS = ['mbsync', 'msmtp', 'getmail', 'offlineimap'] as const;
export type Tool = (typeof TOOLS)[number];

export interface ToolConfigInput {
  mailbox: string;
  imap: Endpoint;
  smtp: Endpoint;
  /** CA certificates to trust for the servers (the caFile setting), else the system's. */
  caFile?: string;
  /** argv of the command that prints the token, e.g. [node, main.js, 'token', '--show-token', '--cache', FILE]. */
  tokenCommand: readonly string[];
}

/** Debian's and Ubuntu's CA bundle: getmail checks certificates only when given one. */
const SYSTEM_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

const SETTINGS_NOTE =
  '# The token command reads the app settings (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET or a certificate) from its environment or --config, as mailbridge always does.';

export function toolConfig(tool: Tool, input: ToolConfigInput): string {
  for (const [what, value] of [
    ['the mailbox', input.mailbox],
    ['the IMAP host', input.imap.host],
    ['the SMTP host', input.smtp.host],
    ['the CA file', input.caFile ?? ''],
  ] as const) {
    refuseUnsafeCharacter(value, what, 'a configuration line');
  }
  const command = input.tokenCommand.map((arg) => shQuote(arg, 'the token command')).join(' ');
  switch (tool) {
    case 'msmtp':
      return lines([
        `# msmtp: send as ${input.mailbox} through Exchange Online (SMTP AUTH XOAUTH2, app-only token).`,
        SETTINGS_NOTE,
        'account mailbridge',
        `host ${msmtpValue(input.smtp.host)}`,
        `port ${input.smtp.port}`,
        'tls on',
        'tls_starttls on',
        ...(input.caFile ? [`tls_trust_file ${msmtpValue(input.caFile)}`] : []),
        'auth xoauth2',
        `user ${msmtpValue(input.mailbox)}`,
        `from ${msmtpValue(input.mailbox)}`,
        `passwordeval ${msmtpValue(command)}`,
        'account default : mailbridge',
      ]);
    case 'mbsync': {
      const local = `~/Mail/${input.mailbox}/`;
      return lines([
        `# mbsync (isync): copy ${input.mailbox} from Exchange Online into ${local} (IMAP XOAUTH2, app-only token).`,
        '# XOAUTH2 needs the Cyrus SASL plugin for it (Debian: libsasl2-modules-kdexoauth2).',
        `# mbsync does not create the Maildir folder: mkdir -p ${shQuote(local.slice(2))} in your home folder first.`,
        SETTINGS_NOTE,
        'IMAPAccount mailbridge',
        `Host ${mbsyncValue(input.imap.host)}`,
        `Port ${input.imap.port}`,
        `User ${mbsyncValue(input.mailbox)}`,
        `PassCmd ${mbsyncValue(command)}`,
        'AuthMechs XOAUTH2',
        'SSLType IMAPS',
        ...(input.caFile ? [`CertificateFile ${mbsyncValue(input.caFile)}`] : []),
        '',
        'IMAPStore mailbridge-remote',
        'Account mailbridge',
        '',
        'MaildirStore mailbridge-local',
        `Path ${mbsyncValue(local)}`,
        `Inbox ${mbsyncValue(`${local}INBOX`)}`,
        'SubFolders Verbatim',
        '',
        'Channel mailbridge',
        'Far :mailbridge-remote:',
        'Near :mailbridge-local:',
        'Patterns *',
        'Create Near',
        'Sync Pull',
        'SyncState *',
      ]);
    }
    case 'getmail': {
      const local = `~/Mail/${input.mailbox}/`;
      return lines([
        `# getmail6: fetch ${input.mailbox} from Exchange Online into the Maildir ${local} (IMAP XOAUTH2, app-only token).`,
        `# getmail does not create the Maildir: mkdir -p ${shQuote(local.slice(2))}/{cur,new,tmp} in your home folder first.`,
        SETTINGS_NOTE,
        '[retriever]',
        'type = SimpleIMAPSSLRetriever',
        `server = ${iniValue(input.imap.host)}`,
        `port = ${input.imap.port}`,
        `username = ${iniValue(input.mailbox)}`,
        'use_xoauth2 = True',
        `password_command = (${pythonStrings(input.tokenCommand)})`,
        // Without ca_certs getmail does not check the server's certificate at all.
        `ca_certs = ${iniValue(input.caFile ?? SYSTEM_CA_BUNDLE)}`,
        'mailboxes = ("INBOX",)',
        '',
        '[destination]',
        'type = Maildir',
        `path = ${iniValue(local)}`,
        '',
        '[options]',
        'read_all = False',
        'delete = False',
      ]);
    }
    case 'offlineimap': {
      const local = `~/Mail/${input.mailbox}`;
      const argv = `[${pythonStrings(input.tokenCommand)}]`;
      const run = `__import__("subprocess").run(${argv}, check=True, capture_output=True, text=True).stdout`;
      return lines([
        `# offlineimap: copy ${input.mailbox} from Exchange Online into ${local} (IMAP XOAUTH2, app-only token).`,
        '# The token is read once per run: run offlineimap from cron or a timer rather than with autorefresh.',
        SETTINGS_NOTE,
        '[general]',
        'accounts = mailbridge',
        '',
        '[Account mailbridge]',
        'localrepository = mailbridge-local',
        'remoterepository = mailbridge-remote',
        '',
        '[Repository mailbridge-local]',
        'type = Maildir',
        `localfolders = ${offlineimapValue(local)}`,
        '',
        '[Repository mailbridge-remote]',
        'type = IMAP',
        `remotehost = ${offlineimapValue(input.imap.host)}`,
        `remoteport = ${input.imap.port}`,
        `remoteuser = ${offlineimapValue(input.mailbox)}`,
        'ssl = yes',
        `sslcacertfile = ${offlineimapValue(input.caFile ?? 'OS-DEFAULT')}`,
        'auth_mechanisms = XOAUTH2',
        `oauth2_access_token_eval = ${offlineimapValue(run)}`,
        'readonly = True',
      ]);
    }
  }
}

function lines(list: string[]): string {
  return `${list.join('\n')}\n`;
}

/** msmtp takes the rest of the line as it is, but strips surrounding blanks and one pair of `"`. */
function msmtpValue(value: string): string {
  if (/^[\s"]|[\s"]$/.test(value)) {
    throw new ConfigurationError({
      code: 'SETUP_UNSAFE_VALUE',
      message: `'${value}' starts or ends with a blank or a double quote, which msmtp's configuration would drop`,
      remedy: 'Use a value (path, host) without a leading or trailing blank or double quote.',
    });
  }
  return value;
}

/** One mbsync argument: in double quotes, with `\` and `"` escaped. */
function mbsyncValue(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** Python string literals, comma-separated: JSON's string literals are Python's too. */
function pythonStrings(values: readonly string[]): string {
  return values.map((value) => JSON.stringify(value)).join(', ');
}

/** An INI value for offlineimap's parser, which interpolates `%`. */
function offlineimapValue(value: string): string {
  return iniValue(value, 'offlineimap').replaceAll('%', '%%');
}

/** An INI value as RawConfigParser reads it: the rest of the line, stripped. */
function iniValue(value: string, tool = 'getmail'): string {
  if (value !== value.trim()) {
    throw new ConfigurationError({
      code: 'SETUP_UNSAFE_VALUE',
      message: `'${value}' starts or ends with a blank, which ${tool}'s configuration would drop`,
      remedy: 'Use a value (path, host) without a leading or trailing blank.',
    });
  }
  return value;
}
