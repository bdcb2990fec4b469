/**
 * The MIME outline of a message held in memory: its headers and part
 * structure with the bulky part bodies left out, so that mailparser reads a
 * few kilobytes per message instead of every byte. Measured on the archive
 * bench's messages, MailParser spent most of its time splitting base64
 * attachment bodies into lines and decoding them only for their size, which
 * the outline computes from the encoded bytes instead.
 *
 * The outline is a message of its own: the header blocks byte for byte, the
 * multipart delimiters, and each leaf part's body either kept or left empty.
 * The inline text bodies the manifest does not describe are left out
 * altogether, headers and all (each part costs mailparser a set of streams).
 * Base64 bodies are left empty and their decoded size is counted here. Every
 * other body (a quoted-printable or 7bit attachment) is kept, so mailparser
 * decodes it and counts its size itself.
 *
 * Only plainly well-formed structures are outlined. Anything this module
 * would have to guess at (a missing closing delimiter, a boundary without a
 * value or continued with RFC 2231, a boundary that another one starts with,
 * an attached message/rfc822, which mailparser may open as a nested message,
 * base64 with padding in the middle) gives `undefined`, and the caller parses
 * the whole message as before. Delimiters are recognised as mailparser's
 * splitter recognises them: at the start of a line, `--boundary` then a line
 * end, or `--boundary--` then a line end or the end of the part.
 */

export interface MessageOutline {
  /** The message with bulky bodies left out: what mailparser parses. */
  skeleton: Buffer;
  /**
   * One entry per leaf part of the skeleton, in document order: the decoded
   * size of a body left out, or undefined where the body was kept (mailparser
   * counts it) or is the message's own text body (not reported).
   */
  leafSizes: (number | undefined)[];
  /** The header block of each of those leaf parts (ending in its blank line), parallel to `leafSizes`. */
  leafHeaders: Buffer[];
  /** The message's own header block, ending in its blank line. */
  rootHeaders: Buffer;
}

/** mailparser's splitter gives up beyond this many parts; so does the outline (the caller parses it whole). */
const MAX_PARTS = 1000;
const MAX_DEPTH = 50;
/** Inline parts mailparser takes as the message text (its `textTypes`). */
const BODY_TYPES = new Set(['text/plain', 'text/html', 'message/delivery-status']);

/**
 * Whether a part is the message's own text, which the manifest does not list
 * as an attachment: MailParser's rule, for the outline and for metadata.ts.
 * `disposition` lowercased, without parameters ('' when absent).
 */
export function isMessageText(contentType: string, disposition: string): boolean {
  return (disposition === '' || disposition === 'inline') && BODY_TYPES.has(contentType);
}

const CR = 0x0d;
const LF = 0x0a;
const DASH = 0x2d;
const EQUALS = 0x3d;
const SPACE = 0x20;
const TAB = 0x09;
const CRLF = Buffer.from('\r\n');
const DOUBLE_CRLF = Buffer.from('\r\n\r\n');

class NotOutlined extends Error {}

/** Outlines `message`, or undefined when its structure is not plainly well-formed. */
export function outlineMessage(message: Buffer): MessageOutline | undefined {
  const out: Outlining = {
    pieces: [],
    leafSizes: [],
    leafHeaders: [],
    rootHeaders: Buffer.alloc(0),
    parts: 0,
  };
  try {
    outlineEntity(message, 0, message.length, [], 0, out);
  } catch (error) {
    if (error instanceof NotOutlined) return undefined;
    throw error;
  }
  return {
    skeleton: Buffer.concat(out.pieces),
    leafSizes: out.leafSizes,
    leafHeaders: out.leafHeaders,
    rootHeaders: out.rootHeaders,
  };
}

interface Outlining {
  pieces: Buffer[];
  leafSizes: (number | undefined)[];
  leafHeaders: Buffer[];
  rootHeaders: Buffer;
  parts: number;
}

function outlineEntity(
  message: Buffer,
  start: number,
  end: number,
  boundaries: readonly string[],
  depth: number,
  out: Outlining,
): 'text' | 'other' {
  const { pieces, leafSizes, leafHeaders } = out;
  if (depth > MAX_DEPTH || ++out.parts > MAX_PARTS) throw new NotOutlined();
  const { bodyStart, blankLine } = headerEnd(message, start, end);
  const headers = parseHeaderBlock(message.toString('latin1', start, bodyStart));
  const headerPieces = [message.subarray(start, bodyStart)];
  // A header block without a body: mailparser is given the blank line that ends it.
  if (!blankLine) headerPieces.push(message[bodyStart - 1] === LF ? CRLF : DOUBLE_CRLF);
  pieces.push(...headerPieces);
  if (depth === 0) out.rootHeaders = Buffer.concat(headerPieces);
  const type = headers.contentType;
  if (type.startsWith('multipart/')) {
    const boundary = headers.boundary;
    if (!boundary || boundaries.some((b) => b.startsWith(boundary) || boundary.startsWith(b))) {
      throw new NotOutlined();
    }
    const parts = splitMultipart(message, bodyStart, end, boundary);
    const open = Buffer.from(`--${boundary}\r\n`, 'latin1');
    for (const [partStart, partEnd] of parts) {
      const [piecesBefore, leavesBefore] = [pieces.length, leafSizes.length];
      pieces.push(open);
      const kind = outlineEntity(
        message,
        partStart,
        partEnd,
        [...boundaries, boundary],
        depth + 1,
        out,
      );
      if (kind === 'text') {
        // Left out altogether: the manifest does not describe text bodies, and every part
        // costs mailparser a set of streams.
        pieces.length = piecesBefore;
        leafSizes.length = leavesBefore;
        leafHeaders.length = leavesBefore;
        continue;
      }
      pieces.push(CRLF);
    }
    pieces.push(Buffer.from(`--${boundary}--\r\n`, 'latin1'));
    return 'other';
  }
  if (type === 'message/rfc822' || type === 'message/global') throw new NotOutlined();
  leafHeaders.push(Buffer.concat(headerPieces));
  if (isMessageText(type, headers.disposition)) {
    leafSizes.push(undefined);
    return 'text';
  }
  if (headers.encoding === 'base64') {
    leafSizes.push(base64DecodedSize(message, bodyStart, end));
    return 'other';
  }
  pieces.push(message.subarray(bodyStart, end));
  leafSizes.push(undefined);
  return 'other';
}

/** Where the body starts: after the blank line ending the headers, or at `end` without one. */
function headerEnd(
  message: Buffer,
  start: number,
  end: number,
): { bodyStart: number; blankLine: boolean } {
  // An entity may start with its blank line: no headers at all.
  if (message[start] === LF && start < end) return { bodyStart: start + 1, blankLine: true };
  if (message[start] === CR && message[start + 1] === LF && start + 1 < end) {
    return { bodyStart: start + 2, blankLine: true };
  }
  let at = start;
  for (;;) {
    const lf = message.indexOf(LF, at);
    if (lf < 0 || lf >= end - 1) return { bodyStart: end, blankLine: false };
    if (message[lf + 1] === LF) return { bodyStart: lf + 2, blankLine: true };
    if (message[lf + 1] === CR && message[lf + 2] === LF && lf + 2 < end) {
      return { bodyStart: lf + 3, blankLine: true };
    }
    at = lf + 1;
  }
}

interface PartHeaders {
  /** Lowercased `type/subtype`; `text/plain` when absent, as RFC 2045 says. */
  contentType: string;
  boundary: string | undefined;
  encoding: string;
  disposition: string;
}

function parseHeaderBlock(block: string): PartHeaders {
  const fields = new Map<string, string>();
  for (const line of block.replace(/\r?\n[ \t]/g, ' ').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (
      name !== 'content-type' &&
      name !== 'content-transfer-encoding' &&
      name !== 'content-disposition'
    ) {
      continue;
    }
    // Which of two copies mailparser would take is not worth guessing.
    if (fields.has(name)) throw new NotOutlined();
    fields.set(name, line.slice(colon + 1));
  }
  const contentType = fields.get('content-type') ?? '';
  const typeValue = fieldValue(contentType) || 'text/plain';
  let boundary: string | undefined;
  if (typeValue.startsWith('multipart/')) {
    if (/;\s*boundary\*/i.test(contentType)) throw new NotOutlined();
    const match = /;\s*boundary\s*=\s*(?:"([^"\\]*)"|([^;\s"]+))/i.exec(contentType);
    boundary = match?.[1] ?? match?.[2];
  }
  return {
    contentType: typeValue,
    boundary,
    encoding: fieldValue(fields.get('content-transfer-encoding') ?? ''),
    disposition: fieldValue(fields.get('content-disposition') ?? ''),
  };
}

function fieldValue(field: string): string {
  const semicolon = field.indexOf(';');
  return (semicolon < 0 ? field : field.slice(0, semicolon)).trim().toLowerCase();
}

/**
 * The parts of a multipart body as [start, end) ranges, without the line end
 * before each delimiter (it belongs to the delimiter). The preamble and the
 * epilogue are dropped, as mailparser drops them.
 */
function splitMultipart(
  message: Buffer,
  start: number,
  end: number,
  boundary: string,
): [number, number][] {
  const delimiter = Buffer.from(`--${boundary}`, 'latin1');
  const parts: [number, number][] = [];
  let partStart = -1;
  let at = start;
  for (;;) {
    const found = message.indexOf(delimiter, at);
    if (found < 0 || found + delimiter.length > end) throw new NotOutlined();
    at = found + 1;
    if (found !== start && message[found - 1] !== LF) continue;
    const kind = delimiterKind(message, found + delimiter.length, end);
    if (kind === undefined) continue;
    if (partStart >= 0) parts.push([partStart, lineStart(message, start, found)]);
    if (kind.close) return parts;
    partStart = kind.next;
  }
}

/** What follows `--boundary`: a line end (next part) or `--` (the close). */
function delimiterKind(
  message: Buffer,
  at: number,
  end: number,
): { close: boolean; next: number } | undefined {
  const lineEnd = (pos: number): number | undefined => {
    if (pos >= end) return end;
    if (message[pos] === LF) return pos + 1;
    if (message[pos] === CR) return message[pos + 1] === LF && pos + 1 < end ? pos + 2 : pos + 1;
    return undefined;
  };
  if (message[at] === DASH && message[at + 1] === DASH && at + 1 < end) {
    const next = lineEnd(at + 2);
    return next === undefined ? undefined : { close: true, next };
  }
  if (at >= end) return undefined;
  const next = lineEnd(at);
  return next === undefined ? undefined : { close: false, next };
}

/** `delimiterAt` without the line end in front of it. */
function lineStart(message: Buffer, floor: number, delimiterAt: number): number {
  let at = delimiterAt;
  if (at > floor && message[at - 1] === LF) at--;
  if (at > floor && message[at - 1] === CR) at--;
  return at;
}

/**
 * Bytes a base64 body decodes to, counted line by line with native searches
 * (a byte-by-byte loop cost more than the rest of the outline). Counts every
 * byte of a line but its line end and its `=` padding, so it assumes the
 * lines hold only the alphabet, as encoders write them; spaces or tabs, which
 * some writers do put in, and padding before the last line, where decoders
 * disagree, are not outlined.
 */
function base64DecodedSize(message: Buffer, start: number, end: number): number {
  const body = message.subarray(start, end);
  if (body.indexOf(SPACE) >= 0 || body.indexOf(TAB) >= 0) throw new NotOutlined();
  const padding = body.indexOf(EQUALS);
  const limit = padding < 0 ? body.length : padding;
  for (let i = limit; i < body.length; i++) {
    const c = body[i];
    if (c !== EQUALS && c !== CR && c !== LF) throw new NotOutlined();
  }
  let chars = 0;
  let at = 0;
  while (at < limit) {
    const lf = body.indexOf(LF, at);
    let lineEnd = lf < 0 || lf > limit ? limit : lf;
    const next = lineEnd + 1;
    if (lineEnd > at && body[lineEnd - 1] === CR) lineEnd--;
    chars += lineEnd - at;
    at = next;
  }
  return Math.floor((chars * 3) / 4);
}
