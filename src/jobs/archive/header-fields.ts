/**
 * The manifest's header fields (messageId, subject, date, from, to, cc) as
 * MailParser reads them: from its parsed headers, or, for a message read
 * without MailParser's stream pipeline (outline-metadata.ts), from the raw
 * header lines with the same steps MailParser's header processing takes
 * (libmime, and mailparser's own address parser).
 */
import {
  type AddressObject,
  type EmailAddress,
  type HeaderLines,
  type Headers,
  parseAddressHeader,
} from 'mailparser';
import { libmime } from './mailparser-parsers.js';
import type { MessageAddress, MessageMetadata } from './metadata-types.js';

export type HeaderFields = Pick<
  MessageMetadata,
  'messageId' | 'date' | 'from' | 'to' | 'cc' | 'subject'
>;

/** From the headers MailParser parsed (its `headers` event) and its raw lines (`headerLines`). */
export function headerFields(headers: Headers, lines: HeaderLines): HeaderFields {
  const text = (key: string): string | null => {
    const value = headers.get(key);
    return typeof value === 'string' ? value : null;
  };
  return {
    messageId: text('message-id'),
    date: dateFromHeaderLines(lines),
    subject: text('subject'),
    from: addresses(headers.get('from')),
    to: addresses(headers.get('to')),
    cc: addresses(headers.get('cc')),
  };
}

/**
 * From raw header lines (mailsplit's, keys lowercased), as MailParser's
 * header processing gives them: the value decoded as MailParser decodes it,
 * the first non-empty Subject and Message-ID, the first From, every To and Cc.
 */
export function headerFieldsFromLines(lines: HeaderLines): HeaderFields {
  const fields: HeaderFields = {
    messageId: null,
    date: dateFromHeaderLines(lines),
    subject: null,
    from: [],
    to: [],
    cc: [],
  };
  let fromSeen = false;
  for (const { key, line } of lines) {
    if (key === 'subject' && fields.subject === null) {
      fields.subject = decodeWords(headerValue(line)) || null;
    } else if (key === 'message-id' && fields.messageId === null) {
      fields.messageId = messageIdFormat(decodeWords(headerValue(line)));
    } else if (key === 'from' && !fromSeen) {
      fromSeen = true;
      fields.from = addresses(parseAddressHeader(headerValue(line)));
    } else if (key === 'to' || key === 'cc') {
      fields[key].push(...addresses(parseAddressHeader(headerValue(line))));
    }
  }
  return fields;
}

/**
 * A header line's value as MailParser takes it: unfolded and decoded by
 * libmime, then the raw bytes (kept one per char) read as UTF-8.
 */
export function headerValue(line: string): string {
  const value = String(libmime.decodeHeader(line)?.value ?? '').trim();
  return Buffer.from(value, 'binary').toString();
}

/** libmime's encoded-word decoding, keeping the value as it is where MailParser does. */
export function decodeWords(value: string): string {
  try {
    return libmime.decodeWords(value);
  } catch {
    // An unknown charset: MailParser keeps the value as it is.
    return value;
  }
}

/** MailParser's form of a Message-ID: in angle brackets; none when empty. */
function messageIdFormat(value: string): string | null {
  if (value.length === 0) return null;
  return `${value.startsWith('<') ? '' : '<'}${value}${value.endsWith('>') ? '' : '>'}`;
}

function addresses(value: unknown): MessageAddress[] {
  const objects = (Array.isArray(value) ? value : value ? [value] : []) as AddressObject[];
  const out: MessageAddress[] = [];
  const visit = (entry: EmailAddress) => {
    if (entry.group) for (const member of entry.group) visit(member);
    else if (entry.address !== undefined || entry.name)
      out.push({ name: entry.name ?? '', address: entry.address ?? '' });
  };
  for (const object of objects) for (const entry of object?.value ?? []) visit(entry);
  return out;
}

/**
 * MailParser puts the time of parsing in place of a Date header it cannot
 * read; an archive must not, so the raw header is parsed here.
 */
function dateFromHeaderLines(lines: HeaderLines): string | null {
  const line = lines.find((l) => l.key === 'date')?.line;
  if (!line) return null;
  const value = line
    .slice(line.indexOf(':') + 1)
    .replace(/\r?\n[ \t]+/g, ' ')
    .trim();
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}
