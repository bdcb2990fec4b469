/**
 * Reads the `--mailboxes FILE` list: either one address per line (blank lines
 * and `#` comments ignored), or a CSV file with an `address` column, such as an
 * export of `Get-Mailbox | Select-Object PrimarySmtpAddress | Export-Csv`.
 * Parsing is pure (`parseMailboxList`); only `readMailboxList` touches the disk.
 * Addresses are returned as written and deduplicated case-insensitively
 * (Exchange matches addresses without regard to case); they are validated with
 * the rest of the plan, so every bad line is reported at once.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { describeFsError } from '../config/file.js';
import { type ConfigProblem, ConfigurationError } from '../errors.js';

export interface MailboxEntry {
  address: string;
  /** Where it came from, for messages: `list.csv line 4`, `--mailbox`. */
  source: string;
}

/** Column names taken as the address column, compared case-insensitively. */
export const ADDRESS_COLUMNS: readonly string[] = [
  'address',
  'primarysmtpaddress',
  'emailaddress',
  'email',
  'mail',
];

/** A list of even 100,000 addresses is a few MB; anything larger is the wrong file. */
const MAX_LIST_BYTES = 8 * 1024 * 1024;

export interface ParsedMailboxList {
  entries: MailboxEntry[];
  problems: ConfigProblem[];
  format: 'lines' | 'csv';
}

/**
 * @param text the file's content
 * @param name the file name used in `source` and problem fields
 */
export function parseMailboxList(text: string, name: string): ParsedMailboxList {
  const content = text.replace(/^\uFEFF/, '');
  const lines = content.split(/\r\n|\n|\r/);
  const first = lines.findIndex((line) => line.trim() !== '' && !line.trimStart().startsWith('#'));
  if (first < 0) return { entries: [], problems: [], format: 'lines' };
  const header = csvHeader(lines[first] ?? '');
  return header
    ? parseCsv(content, name, first, header)
    : parseLines(lines, name, first, lines[first] ?? '');
}

/** Reads and parses a list file. @throws ConfigurationError on an unreadable file or bad lines. */
export async function readMailboxList(path: string): Promise<MailboxEntry[]> {
  let text: string;
  try {
    const info = await stat(path);
    if (info.isDirectory()) throw unreadable(path, 'it is a directory');
    if (info.size > MAX_LIST_BYTES) throw unreadable(path, `it is ${info.size} bytes long`);
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (error instanceof ConfigurationError) throw error;
    throw unreadable(path, describeFsError(error), error);
  }
  const parsed = parseMailboxList(text, basename(path));
  if (parsed.problems.length > 0) {
    throw new ConfigurationError({
      code: 'SETUP_MAILBOX_LIST_INVALID',
      message: `The mailbox list ${path} has problems`,
      remedy:
        'Write one address per line (# starts a comment), or a CSV file with an "address" column.',
      problems: parsed.problems,
    });
  }
  return parsed.entries;
}

/** Keeps the first of addresses that differ only in case. */
export function dedupeMailboxes<T extends { address: string }>(entries: readonly T[]): T[] {
  const seen = new Set<string>();
  const result: T[] = [];
  for (const entry of entries) {
    const key = entry.address.toLowerCase();
    if (seen.has(key)) continue;
    seen.add(key);
    result.push(entry);
  }
  return result;
}

function parseLines(
  lines: string[],
  name: string,
  first: number,
  firstLine: string,
): ParsedMailboxList {
  const problems: ConfigProblem[] = [];
  if (/[,;\t]/.test(firstLine.trim())) {
    problems.push({
      field: `${name} line ${first + 1}`,
      message: `this looks like a CSV header without an address column (expected one of: ${ADDRESS_COLUMNS.join(', ')})`,
    });
    return { entries: [], problems, format: 'csv' };
  }
  const entries: MailboxEntry[] = [];
  lines.forEach((line, index) => {
    // `#` is a valid character inside an address, so a comment starts only at
    // the beginning of a line or after whitespace.
    const value = line.replace(/(^|\s)#.*$/, '').trim();
    if (value === '') return;
    const source = `${name} line ${index + 1}`;
    if (/\s/.test(value)) {
      problems.push({ field: source, message: 'a line holds more than one word' });
      return;
    }
    entries.push({ address: value, source });
  });
  return { entries: dedupeMailboxes(entries), problems, format: 'lines' };
}

interface CsvHeader {
  delimiter: string;
  column: number;
}

/** The header if `line` is a CSV header with an address column, in any common delimiter. */
function csvHeader(line: string): CsvHeader | undefined {
  for (const delimiter of [',', ';', '\t']) {
    const records = csvRecords(line, delimiter);
    const fields = records[0]?.fields ?? [];
    const column = fields.findIndex((f) => ADDRESS_COLUMNS.includes(f.trim().toLowerCase()));
    if (column >= 0) return { delimiter, column };
  }
  return undefined;
}

function parseCsv(
  content: string,
  name: string,
  headerLineIndex: number,
  header: CsvHeader,
): ParsedMailboxList {
  const problems: ConfigProblem[] = [];
  const entries: MailboxEntry[] = [];
  const records = csvRecords(content, header.delimiter);
  for (const record of records) {
    if (record.line <= headerLineIndex + 1) continue;
    const raw = record.fields.join('');
    if (raw.trim() === '' || (!record.quotedFirst && raw.trimStart().startsWith('#'))) continue;
    const source = `${name} line ${record.line}`;
    if (record.unterminated) {
      problems.push({ field: source, message: 'a quoted field is not closed' });
      continue;
    }
    const value = (record.fields[header.column] ?? '').trim();
    if (value === '') {
      problems.push({ field: source, message: 'the address column is empty' });
      continue;
    }
    entries.push({ address: value, source });
  }
  return { entries: dedupeMailboxes(entries), problems, format: 'csv' };
}

interface CsvRecord {
  fields: string[];
  /** 1-based line on which the record starts. */
  line: number;
  quotedFirst: boolean;
  unterminated: boolean;
}

/**
 * RFC 4180 records: fields in double quotes may hold the delimiter, line
 * breaks and `""` for a quote.
 */
function csvRecords(text: string, delimiter: string): CsvRecord[] {
  const records: CsvRecord[] = [];
  let fields: string[] = [];
  let field = '';
  let line = 1;
  let start = 1;
  let inQuotes = false;
  let quotedFirst = false;
  const endRecord = (unterminated: boolean) => {
    fields.push(field);
    records.push({ fields, line: start, quotedFirst, unterminated });
    fields = [];
    field = '';
    quotedFirst = false;
  };
  for (let i = 0; i < text.length; i++) {
    const char = text.charAt(i);
    if (inQuotes) {
      if (char === '"') {
        if (text.charAt(i + 1) === '"') {
          field += '"';
          i++;
        } else {
          inQuotes = false;
        }
      } else {
        if (char === '\n' || (char === '\r' && text.charAt(i + 1) !== '\n')) line++;
        field += char;
      }
      continue;
    }
    // A quote opens a quoted field only at its start (spaces before it are dropped).
    if (char === '"' && field.trim() === '') {
      inQuotes = true;
      field = '';
      if (fields.length === 0) quotedFirst = true;
      continue;
    }
    if (char === delimiter) {
      fields.push(field);
      field = '';
      continue;
    }
    if (char === '\r' || char === '\n') {
      if (char === '\r' && text.charAt(i + 1) === '\n') i++;
      endRecord(false);
      line++;
      start = line;
      continue;
    }
    field += char;
  }
  if (inQuotes || field !== '' || fields.length > 0) endRecord(inQuotes);
  return records;
}

function unreadable(path: string, why: string, cause?: unknown): ConfigurationError {
  return new ConfigurationError({
    code: 'SETUP_MAILBOX_LIST_UNREADABLE',
    message: `Cannot read the mailbox list ${path}: ${why}.`,
    remedy: 'Check the path given to --mailboxes and that this user may read the file.',
    cause,
  });
}
