/**
 * The `migrate --mailboxes FILE` list: one mailbox pair a line,
 * `source,destination`, each an endpoint as `--from`/`--to` take it. Blank
 * lines and `#` comments as `archive --mailboxes` accepts them (the same
 * reader, util/list-file.ts); a first line that names no endpoint
 * (`source,destination`) is a header. Every bad line is reported at once,
 * by its number, before any pair runs.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { type ConfigProblem, ConfigurationError, MailbridgeError } from '../../errors.js';
import { displayText } from '../../util/display-text.js';
import { listFileLines } from '../../util/list-file.js';
import { describeEndpoint, type MigrateEndpoint, parseEndpoint } from './endpoint.js';

export interface MailboxPair {
  from: MigrateEndpoint;
  to: MigrateEndpoint;
  /** Where it came from, for messages: `pairs.csv line 4`. */
  source: string;
}

/** Tens of thousands of pairs are a few MB; anything larger is the wrong file. */
const MAX_LIST_BYTES = 16 * 1024 * 1024;

const REMEDY =
  'Write one pair a line as source,destination (m365:ADDRESS or imaps://USER@HOST each; # starts a comment), then run it again.';

/** Pure: the pairs of `text`, and a problem per bad line. The same pair twice is one pair. */
export function parseMailboxPairs(
  text: string,
  name: string,
): { pairs: MailboxPair[]; problems: ConfigProblem[] } {
  const pairs: MailboxPair[] = [];
  const problems: ConfigProblem[] = [];
  const seen = new Set<string>();
  listFileLines(text).forEach(({ line, text: content }, index) => {
    const fields = content.split(',').map((field) => field.trim());
    // Endpoints all start with a scheme (m365:, imaps:, archive:); a header names none.
    if (index === 0 && fields.every((field) => !field.includes(':'))) return;
    const where = `${name} line ${line}`;
    if (fields.length !== 2 || fields.some((field) => field === '')) {
      problems.push({
        field: where,
        message: `'${displayText(content, 80)}' is not source,destination (${fields.length} field(s))`,
      });
      return;
    }
    try {
      const from = parseEndpoint(fields[0] as string, 'from', 'source');
      const to = parseEndpoint(fields[1] as string, 'to', 'destination');
      const key = `${describeEndpoint(from)}\n${describeEndpoint(to)}`.toLowerCase();
      if (seen.has(key)) return;
      seen.add(key);
      pairs.push({ from, to, source: where });
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
  const { pairs, problems } = parseMailboxPairs(text, basename(path));
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

function invalid(path: string, why: string): ConfigurationError {
  return new ConfigurationError({
    code: 'MIGRATE_MAILBOX_LIST_INVALID',
    message: `The mailbox list ${displayText(path)} cannot be used: ${why}`,
    remedy: REMEDY,
  });
}
