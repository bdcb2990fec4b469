/**
 * The `migrate --mailboxes FILE` list: one mailbox pair a line,
 * `source,destination`, each an endpoint as `--from`/`--to` take it, and
 * optionally a third and fourth field naming a file that holds the
 * password of that pair's `imaps://` source and destination (a hosting
 * provider has no master login: a password per user). The password itself
 * never goes in the list, and a password file's name is never shown: a
 * password typed there by mistake must not reach an error. Blank lines and
 * `#` comments as `archive --mailboxes` accepts them (the same reader,
 * util/list-file.ts); a first line that names no endpoint
 * (`source,destination`) is a header. Every bad line is reported at once,
 * by its number, before any pair runs, unreadable password files included.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { type ConfigProblem, ConfigurationError, MailbridgeError } from '../../errors.js';
import { displayText } from '../../util/display-text.js';
import { listFileLines } from '../../util/list-file.js';
import { describeEndpoint, type MigrateEndpoint, parseEndpoint, type Side } from './endpoint.js';

export interface MailboxPair {
  from: MigrateEndpoint;
  to: MigrateEndpoint;
  /** Where it came from, for messages: `pairs.csv line 4`. */
  source: string;
  /** This pair's own passwords, from the files its line names; else the run's. */
  fromPassword?: string;
  toPassword?: string;
}

/** A parsed line: the password files it names, as written (relative to the list's folder). */
export interface ListedPair extends MailboxPair {
  passwordFiles?: { from?: string; to?: string };
}

/** Tens of thousands of pairs are a few MB; anything larger is the wrong file. */
const MAX_LIST_BYTES = 16 * 1024 * 1024;

const REMEDY =
  'Write one pair a line as source,destination[,source password file[,destination password file]] (m365:ADDRESS or imaps://USER@HOST each, or archive:DIR as a source; # starts a comment), then run it again.';

const COLUMNS: Record<Side, string> = { from: 'the source', to: 'the destination' };

/** Pure: the pairs of `text`, and a problem per bad line. The same pair twice is one pair. */
export function parseMailboxPairs(
  text: string,
  name: string,
): { pairs: ListedPair[]; problems: ConfigProblem[] } {
  const pairs: ListedPair[] = [];
  const problems: ConfigProblem[] = [];
  const seen = new Set<string>();
  listFileLines(text).forEach(({ line, text: content }, index) => {
    const fields = content.split(',').map((field) => field.trim());
    // Endpoints all start with a scheme (m365:, imaps:, archive:); a header names none.
    if (index === 0 && fields.every((field) => !field.includes(':'))) return;
    const where = `${name} line ${line}`;
    const [fromText = '', toText = '', fromFile, toFile] = fields;
    if (fields.length < 2 || fields.length > 4 || fromText === '' || toText === '') {
      // Only the endpoints are shown: the other fields may hold a password typed by mistake.
      const shown = fields.length > 2 ? `${fromText},${toText},…` : content;
      problems.push({
        field: where,
        message: `'${displayText(shown, 80)}' is not source,destination (${fields.length} field(s); at most two password files may follow)`,
      });
      return;
    }
    try {
      const from = parseEndpoint(fromText, 'from', 'source');
      const to = parseEndpoint(toText, 'to', 'destination');
      const passwordFiles = {
        ...(fromFile ? { from: fromFile } : {}),
        ...(toFile ? { to: toFile } : {}),
      };
      for (const [side, endpoint] of [
        ['from', from],
        ['to', to],
      ] as const) {
        if (passwordFiles[side] !== undefined && endpoint.kind !== 'imap') {
          problems.push({
            field: where,
            message: `${COLUMNS[side]}'s password file is given, but ${displayText(describeEndpoint(endpoint), 80)} takes no password (only imaps:// and imap:// do)`,
          });
          return;
        }
      }
      const key = `${describeEndpoint(from)}\n${describeEndpoint(to)}`.toLowerCase();
      if (seen.has(key)) return;
      seen.add(key);
      pairs.push({ from, to, source: where, ...(fromFile || toFile ? { passwordFiles } : {}) });
    } catch (error) {
      if (!(error instanceof MailbridgeError)) throw error;
      problems.push({ field: where, message: error.message });
    }
  });
  return { pairs, problems };
}

/**
 * Reads and parses a list file.
 * @throws ConfigurationError MIGRATE_MAILBOX_LIST_INVALID: unreadable, empty, or bad lines (each named)
 */
export async function readMailboxPairs(path: string): Promise<MailboxPair[]> {
  let text: string;
  try {
    const info = await stat(path);
    if (info.isDirectory()) throw invalid(path, 'it is a directory');
    if (info.size > MAX_LIST_BYTES) throw invalid(path, `it is ${info.size} bytes long`);
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (error instanceof ConfigurationError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw invalid(path, `it cannot be read (${code ?? String(error)})`);
  }
  const { pairs: listed, problems } = parseMailboxPairs(text, basename(path));
  const pairs = await Promise.all(
    listed.map(({ passwordFiles, ...pair }) =>
      passwordFiles ? withPasswords(pair, passwordFiles, dirname(path), problems) : pair,
    ),
  );
  if (problems.length > 0) {
    throw new ConfigurationError({
      code: 'MIGRATE_MAILBOX_LIST_INVALID',
      message: `The mailbox list ${displayText(path)} has ${problems.length} bad line(s): ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`,
      remedy: REMEDY,
      problems,
    });
  }
  if (pairs.length === 0) throw invalid(path, 'it lists no mailbox pair');
  return pairs;
}

/** The pair with the passwords its files hold; a problem for each file that cannot give one. */
async function withPasswords(
  pair: MailboxPair,
  files: NonNullable<ListedPair['passwordFiles']>,
  folder: string,
  problems: ConfigProblem[],
): Promise<MailboxPair> {
  const out: MailboxPair = { ...pair };
  for (const side of ['from', 'to'] as const) {
    const file = files[side];
    if (file === undefined) continue;
    // The file's name is not shown: it might be the password itself, written in the wrong place.
    const what = `${COLUMNS[side]}'s password file (field ${side === 'from' ? 3 : 4})`;
    try {
      const password = (await readFile(resolve(folder, file), 'utf8')).split(/\r?\n/)[0] ?? '';
      if (password === '') problems.push({ field: pair.source, message: `${what} is empty` });
      else out[side === 'from' ? 'fromPassword' : 'toPassword'] = password;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      problems.push({
        field: pair.source,
        message: `${what} cannot be read (${displayText(code, 40)}); name a file, relative to the list's folder, holding the password on its first line`,
      });
    }
  }
  return out;
}

function invalid(path: string, why: string): ConfigurationError {
  return new ConfigurationError({
    code: 'MIGRATE_MAILBOX_LIST_INVALID',
    message: `The mailbox list ${displayText(path)} cannot be used: ${why}`,
    remedy: REMEDY,
  });
}
