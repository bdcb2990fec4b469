/**
 * Manifest metadata read from a message's outline (mime-outline.ts) without
 * MailParser's stream pipeline. Each header block goes through the parsers
 * MailParser itself relies on: mailsplit's `MimeNode` gives a part's type,
 * disposition and file name exactly as MailParser's splitter gets them, and
 * the message's own headers are read as MailParser reads them
 * (header-fields.ts). The attachment sizes are the outline's.
 *
 * MailParser builds a splitter, a decoder and a few streams per part. Reading
 * the outline this way took the archive bench from 1,000-1,100 to
 * 1,320-1,360 messages/s; it costs about 70 µs per message in a loop over
 * the bench's messages (outline 30, header fields 39; bench/README.md).
 * Only outlines this module can describe completely are read here: every
 * attachment's size known from its base64 body, every type present.
 * Anything else (undefined) is parsed by MailParser as before (metadata.ts);
 * tests compare both on every shape they know.
 */
import {
  decodeWords,
  type HeaderFields,
  headerFieldsFromLines,
  headerValue,
} from './header-fields.js';
import { libmime, MimeNode } from './mailparser-parsers.js';
import type { AttachmentInfo } from './metadata-types.js';
import { isMessageText, type MessageOutline } from './mime-outline.js';

/** mailsplit's limit on one header block; beyond it MailParser reports an error. */
const MAX_HEADER_BYTES = 1024 * 1024;

export function metadataFromOutline(
  outline: MessageOutline,
): (HeaderFields & { attachments: AttachmentInfo[] }) | undefined {
  try {
    const attachments: AttachmentInfo[] = [];
    for (const [i, header] of outline.leafHeaders.entries()) {
      const node = parseHeaderBlock(header);
      if (!node) return undefined;
      const contentType = node.contentType;
      if (!contentType) return undefined;
      if (isMessageText(contentType, disposition(node))) continue;
      const size = outline.leafSizes[i];
      if (size === undefined) return undefined;
      const filename = node.filename || null;
      attachments.push({
        filename,
        // MailParser's own guess for a generic type: from the file name.
        contentType:
          contentType === 'application/octet-stream' && filename
            ? libmime.detectMimeType(filename) || contentType
            : contentType,
        size,
      });
    }
    const root = parseHeaderBlock(outline.rootHeaders);
    if (!root?.headers) return undefined;
    return { ...headerFieldsFromLines(root.headers.getList()), attachments };
  } catch {
    // Whatever these parsers refuse, MailParser gets to parse and to report.
    return undefined;
  }
}

function parseHeaderBlock(block: Buffer): MimeNode | undefined {
  if (block.length > MAX_HEADER_BYTES) return undefined;
  const node = new MimeNode(false);
  node.addHeaderChunk(block);
  node.parseHeaders();
  return node;
}

/**
 * The disposition MailParser's text-or-attachment rule sees: its own parse
 * of the first Content-Disposition (comments dropped), lowercased.
 */
function disposition(node: MimeNode): string {
  const line = node.headers
    ? node.headers.getList().find((l) => l.key === 'content-disposition')
    : undefined;
  if (!line) return '';
  const value = libmime.parseHeaderValue(headerValue(line.line), { stripComments: true }).value;
  return decodeWords(value).trim().toLowerCase();
}
