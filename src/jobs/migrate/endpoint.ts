/**
 * Pure: what `--from` / `--to` name. A Microsoft 365 mailbox through our own
 * configuration (`m365:ADDRESS`), any IMAP server with a user name and a
 * password (`imaps://USER@HOST[:PORT]`, `imap://…` with STARTTLS), or, as a
 * source only, a mailbox's folder written by `mailbridge archive`
 * (`archive:DIR`, made absolute). The password never comes from the URL:
 * argv is visible to every user in `ps`.
 */
import { resolve } from 'node:path';
import { ConfigurationError } from '../../errors.js';
import { displayText } from '../../util/display-text.js';
import { isMailAddress } from '../../util/mail-address.js';

export type Side = 'from' | 'to';

export interface M365Endpoint {
  kind: 'm365';
  mailbox: string;
}

export interface PasswordImapEndpoint {
  kind: 'imap';
  host: string;
  port: number;
  user: string;
  /** `implicit`: TLS from the first byte; `starttls`: upgrade required; `plain`: loopback only. */
  security: 'implicit' | 'starttls' | 'starttls-if-offered';
}

export interface ArchiveEndpoint {
  kind: 'archive';
  /** Absolute path of one mailbox's archive folder (it holds manifest.jsonl). */
  dir: string;
}

export type MigrateEndpoint = M365Endpoint | PasswordImapEndpoint | ArchiveEndpoint;

const EXAMPLES =
  'Give m365:user@contoso.com, or imaps://USER@HOST:993 with the user name percent-encoded (bob%40example.org).';

/** `name` is how errors call the value: the flag, or the config field it came from. */
export function parseEndpoint(text: string, side: Side, name = `--${side}`): MigrateEndpoint {
  const flag = name;
  const value = text.trim();
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(value)?.[1]?.toLowerCase();
  if (scheme === 'm365') {
    const mailbox = value.slice('m365:'.length);
    if (!isMailAddress(mailbox)) {
      throw invalid(
        flag,
        `'${displayText(mailbox, 80)}' is not a mailbox address`,
        'Give the mailbox as m365:user@contoso.com.',
      );
    }
    return { kind: 'm365', mailbox };
  }
  if (scheme === 'archive') {
    if (side === 'to') throw archiveDestinationError(flag);
    const dir = value.slice('archive:'.length);
    if (/^azblob:/i.test(dir)) {
      throw new ConfigurationError({
        code: 'MIGRATE_ENDPOINT_UNSUPPORTED',
        message: `${flag} archive:azblob://… (restoring from Azure Blob Storage) is not supported yet`,
        remedy:
          "Copy the mailbox's archive to a local folder first (azcopy copy … --recursive), then give --from archive:FOLDER.",
      });
    }
    if (dir === '') {
      throw invalid(
        flag,
        'archive: names no folder',
        'Give archive:DIR/ADDRESS, the folder `mailbridge archive --out DIR` wrote for the mailbox.',
      );
    }
    return { kind: 'archive', dir: resolve(dir) };
  }
  if (scheme === 'imaps' || scheme === 'imap') return parseImapUrl(value, scheme, flag, side);
  throw invalid(flag, `'${displayText(value, 80)}' is not an endpoint`, EXAMPLES);
}

function parseImapUrl(
  value: string,
  scheme: 'imap' | 'imaps',
  flag: string,
  side: Side,
): PasswordImapEndpoint {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid(flag, `'${displayText(value, 80)}' is not a valid URL`, EXAMPLES);
  }
  if (url.password !== '' || /^[a-z]+:\/\/[^/@]*:[^/@]*@/i.test(value)) {
    // The URL is not echoed: it holds a password.
    throw invalid(
      flag,
      'the URL holds a password, and command lines are visible to every user of this machine',
      `Remove it from the URL and put it in a file for --${side}-password-file, or in MAILBRIDGE_${side === 'from' ? 'FROM' : 'TO'}_PASSWORD.`,
    );
  }
  if (url.username === '') {
    throw invalid(flag, `'${displayText(value, 80)}' names no user`, EXAMPLES);
  }
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') {
    throw invalid(
      flag,
      `'${displayText(value, 80)}' has a path or query, which migrate does not use`,
      'Give only imaps://USER@HOST:PORT; choose folders with --folder.',
    );
  }
  let user: string;
  try {
    user = decodeURIComponent(url.username);
  } catch {
    throw invalid(flag, 'the user name is not valid percent-encoding', EXAMPLES);
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port === '' ? (scheme === 'imaps' ? 993 : 143) : Number(url.port);
  let security: PasswordImapEndpoint['security'] = 'implicit';
  if (scheme === 'imap') security = isLoopback(host) ? 'starttls-if-offered' : 'starttls';
  return { kind: 'imap', host, port, user, security };
}

/** migrate reads archives, it does not write them: that is `mailbridge archive`'s job. */
export function archiveDestinationError(flag: string): ConfigurationError {
  return new ConfigurationError({
    code: 'MIGRATE_ENDPOINT_UNSUPPORTED',
    message: `${flag} archive:DIR: migrate restores from an archive but does not write one`,
    remedy:
      'Archive the mailbox with `mailbridge archive --mailbox ADDRESS --out DIR` (incremental, verified with `mailbridge archive verify DIR`).',
  });
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function invalid(flag: string, what: string, remedy: string): ConfigurationError {
  return new ConfigurationError({
    code: 'MIGRATE_ENDPOINT_INVALID',
    message: `${flag}: ${what}`,
    remedy,
  });
}

/** How the endpoint is shown to people and written into the state folder: never a secret. */
export function describeEndpoint(endpoint: MigrateEndpoint): string {
  if (endpoint.kind === 'm365') return `m365:${endpoint.mailbox}`;
  if (endpoint.kind === 'archive') return `archive:${endpoint.dir}`;
  const scheme = endpoint.security === 'implicit' ? 'imaps' : 'imap';
  const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
  return `${scheme}://${encodeURIComponent(endpoint.user)}@${host}:${endpoint.port}`;
}

export interface PasswordSources {
  /**
   * Contents of `--from-password-file` / `--to-password-file`, read by the
   * caller; `name` is how errors call the setting. @default the flag
   */
  file?: { path: string; text: string; name?: string };
  env?: Readonly<Record<string, string | undefined>>;
}

/** The password for a password endpoint: the file's first line, else the environment. */
export function resolvePassword(side: Side, sources: PasswordSources): string {
  const variable = side === 'from' ? 'MAILBRIDGE_FROM_PASSWORD' : 'MAILBRIDGE_TO_PASSWORD';
  if (sources.file) {
    const password = sources.file.text.split(/\r?\n/)[0] ?? '';
    if (password === '') {
      throw new ConfigurationError({
        code: 'MIGRATE_PASSWORD_MISSING',
        message: `${sources.file.name ?? `--${side}-password-file`} ${displayText(sources.file.path)} is empty`,
        remedy: 'Put the password on its first line.',
      });
    }
    return password;
  }
  const fromEnv = sources.env?.[variable];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  throw new ConfigurationError({
    code: 'MIGRATE_PASSWORD_MISSING',
    message: `No password for the --${side} IMAP server`,
    remedy: `Give it in a file with --${side}-password-file FILE (first line), or in ${variable}; never on the command line.`,
  });
}
