/**
 * Manifest metadata parsed from an archived message with mailparser. Parsing
 * never decides whether a message is archived: a message it cannot parse is
 * archived as it is and gets `parseError`. A message held in memory is
 * read from its outline (mime-outline.ts): the same headers and structure
 * without the bulky bodies. Where the outline says all the manifest needs,
 * its header blocks are read with MailParser's own header parsers and no
 * stream at all (outline-metadata.ts: every bench message, about 50 µs
 * each); otherwise MailParser parses the outline (about 160 µs), or the
 * whole message when the outline is unsure (about 550).
 *
 * Memory stays bounded whatever the message size: the message is streamed
 * through mailparser's `MailParser` and every part, text bodies included, is
 * read as a stream whose bytes are only counted. (MailParser keeps text
 * bodies in memory to build `text` and `html`; a 50 MB text part would cost
 * several times that. It decides which parts are text bodies from its
 * `textTypes` list, which is emptied here, so every part comes as a stream;
 * the body-or-attachment decision is then made here with MailParser's own
 * rule. If a later mailparser drops `textTypes`, parsing still works, only
 * with text bodies held in memory again.)
 */
import { createReadStream } from 'node:fs';
import {
  type AttachmentStream,
  type HeaderLines,
  type Headers,
  MailParser,
  type MessageText,
} from 'mailparser';
import { headerFields } from './header-fields.js';
import type { MessageMetadata } from './metadata-types.js';
import { isMessageText, outlineMessage } from './mime-outline.js';
import { metadataFromOutline } from './outline-metadata.js';

export type { AttachmentInfo, MessageAddress, MessageMetadata } from './metadata-types.js';

const PARSER_SLICE_BYTES = 64 * 1024;
/** Longest wait for the parser once the whole message was given. */
const PARSE_TIMEOUT_MS = 120_000;

/**
 * Parses a message given whole (a Buffer) or as a file path, streaming the
 * file. A message in memory is parsed from its outline (mime-outline.ts)
 * when it has one, and whole when the outline's parse disagrees with it.
 */
export async function parseMessageMetadata(source: Buffer | string): Promise<MessageMetadata> {
  if (typeof source !== 'string') {
    const outline = outlineMessage(source);
    if (outline) {
      const described = metadataFromOutline(outline);
      if (described) return described;
      const parser = createMetadataParser(outline.leafSizes);
      await parser.write(outline.skeleton);
      const metadata = await parser.end();
      // A failure or a different part count: the whole message decides, as if never outlined.
      if (metadata.parseError === undefined && parser.leavesMatched()) return metadata;
    }
    const parser = createMetadataParser();
    await parser.write(source);
    return parser.end();
  }
  const parser = createMetadataParser();
  try {
    // A file that cannot be read is not a parse failure: the caller must hear about it.
    for await (const chunk of createReadStream(source)) await parser.write(chunk as Buffer);
  } catch (error) {
    parser.abort();
    throw error;
  }
  return parser.end();
}

/** Takes a message in pieces, as they are downloaded, so it is never read twice. */
export interface MetadataParser {
  write(chunk: Buffer): Promise<void>;
  /** Ends the input and resolves with the metadata; a parse failure is in `parseError`. */
  end(): Promise<MessageMetadata>;
  /** Gives up (the message was not archived). */
  abort(): void;
  /** Whether the parts parsed were as many as the outline's `leafSizes` (true without them). */
  leavesMatched(): boolean;
}

/**
 * `leafSizes`: when parsing an outline, the decoded sizes of the bodies it
 * left out, one entry per part in document order (undefined: count it).
 */
export function createMetadataParser(leafSizes?: readonly (number | undefined)[]): MetadataParser {
  const metadata: MessageMetadata = {
    messageId: null,
    date: null,
    from: [],
    to: [],
    cc: [],
    subject: null,
    attachments: [],
  };
  const parser = new MailParser({
    skipHtmlToText: true,
    skipTextToHtml: true,
    skipTextLinks: true,
    skipImageLinks: true,
    checksumAlgo: false,
  });
  const internals = parser as unknown as { textTypes?: unknown };
  if (Array.isArray(internals.textTypes)) internals.textTypes = [];

  // MailParser sends its raw header lines right after the parsed headers.
  let parsedHeaders: Headers | undefined;
  parser.on('headers', (headers: Headers) => {
    parsedHeaders = headers;
  });
  parser.on('headerLines', (lines: HeaderLines) => {
    if (parsedHeaders) Object.assign(metadata, headerFields(parsedHeaders, lines));
  });
  let leaves = 0;
  parser.on('data', (data: AttachmentStream | MessageText) => {
    if (data.type !== 'attachment') return;
    const outlined = leafSizes?.[leaves++];
    let size = 0;
    data.content.on('data', (chunk: Buffer) => {
      size += chunk.length;
    });
    data.content.once('end', () => {
      if (!isBodyText(data)) {
        metadata.attachments.push({
          filename: data.filename ?? null,
          contentType: data.contentType,
          size: outlined ?? size,
        });
      }
      data.release?.();
    });
    // A part that cannot be decoded must not leave the parser waiting for its release.
    data.content.once('error', (error: Error) => {
      failure ??= error;
      data.release?.();
    });
  });
  let failure: Error | undefined;
  const finished = new Promise<void>((resolve) => {
    parser.once('end', resolve);
    parser.once('error', (error: Error) => {
      failure ??= error;
      resolve();
    });
  });
  return {
    async write(chunk) {
      // In slices: MailParser given a megabyte at once holds on to far more memory meanwhile
      // (measured: peak RSS for a 50 MB message 190 MB with 1 MiB writes, 135 MB with 64 KiB).
      for (let at = 0; at < chunk.length; at += PARSER_SLICE_BYTES) {
        if (failure || parser.destroyed) return;
        if (!parser.write(chunk.subarray(at, at + PARSER_SLICE_BYTES))) {
          await Promise.race([new Promise((resolve) => parser.once('drain', resolve)), finished]);
        }
      }
    },
    async end() {
      if (!failure && !parser.destroyed) parser.end();
      // Archiving never waits on a parser that stalls: the message is kept, flagged.
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          failure ??= new Error(`parsing did not finish in ${PARSE_TIMEOUT_MS / 1000} s`);
          parser.destroy();
          resolve();
        }, PARSE_TIMEOUT_MS);
        timer.unref();
      });
      await Promise.race([finished, timeout]);
      clearTimeout(timer);
      if (failure) metadata.parseError = failure.message || String(failure);
      return metadata;
    },
    abort() {
      failure ??= new Error('aborted');
      parser.destroy();
    },
    leavesMatched: () => leafSizes === undefined || leaves === leafSizes.length,
  };
}

function isBodyText(part: AttachmentStream): boolean {
  const disposition = structuredValue(part.headers.get('content-disposition')) ?? '';
  return isMessageText(part.contentType, disposition);
}

function structuredValue(value: unknown): string | undefined {
  if (value && typeof value === 'object' && 'value' in value) {
    const v = (value as { value: unknown }).value;
    return typeof v === 'string' ? v.trim().toLowerCase() : undefined;
  }
  return undefined;
}
