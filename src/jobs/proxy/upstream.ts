/**
 * The proxy's own login to Exchange Online for one client: a TLS connection
 * to the IMAP or POP host, SASL XOAUTH2 with the app's token, and for IMAP
 * the capabilities to hand to the client. What comes after is spliced, not
 * read. A refusal carries the server's reply line, for the diagnosis.
 */
import { type ConnectionOptions, connect, type TLSSocket } from 'node:tls';
import { buildXOAuth2 } from '../../auth/sasl.js';
import type { Endpoint } from '../../config/types.js';
import { servername, trustOptions } from '../../util/tls.js';
import { type ByteSource, type OnRead, reusedReadBuffer } from './byte-source.js';
import type { ProxyProtocol } from './config.js';
import { LineReader } from './line-reader.js';

/** Replies of a server are short; Exchange's longest carry a diagnostic blob of a few KB. */
const MAX_REPLY_LINE = 64 * 1024;
export interface UpstreamSession {
  socket: TLSSocket;
  /** What the socket reads (it emits no `data`): byte-source.ts. */
  bytes: ByteSource;
  /** Bytes the upstream sent after its login reply, to pass on first. */
  pending: Buffer;
  /** IMAP: the capabilities after login, COMPRESS left out. */
  capabilities?: string;
}

export type UpstreamResult =
  | { ok: true; session: UpstreamSession }
  /** `reply`: the server's refusal, as it said it; absent when it just went away. */
  | { ok: false; reply?: string; error?: Error };

export interface UpstreamOptions {
  endpoint: Endpoint;
  extraCaCertificates?: readonly string[];
  mailbox: string;
  accessToken: string;
  timeoutMs: number;
}

/** Logs in upstream; never throws for what the server or network does (see the result). */
export async function loginUpstream(
  protocol: ProxyProtocol,
  options: UpstreamOptions,
): Promise<UpstreamResult> {
  let socket: TLSSocket | undefined;
  const { onread, source } = reusedReadBuffer();
  const timer = setTimeout(
    () => socket?.destroy(new Error('upstream login timed out')),
    options.timeoutMs,
  );
  try {
    socket = await open(options, onread);
    const reader = new LineReader(socket, MAX_REPLY_LINE, source);
    const sasl = buildXOAuth2(options.mailbox, options.accessToken);
    const result =
      protocol === 'imap'
        ? await imapLogin(socket, reader, sasl)
        : await pop3Login(socket, reader, sasl);
    if (!result.ok) {
      socket.destroy();
      return result;
    }
    const pending = reader.detach();
    return {
      ok: true,
      session: {
        socket,
        bytes: source,
        pending,
        ...(result.capabilities !== undefined ? { capabilities: result.capabilities } : {}),
      },
    };
  } catch (error) {
    socket?.destroy();
    return { ok: false, error: error as Error };
  } finally {
    clearTimeout(timer);
  }
}

function open(options: UpstreamOptions, onread: OnRead): Promise<TLSSocket> {
  const { host, port } = options.endpoint;
  return new Promise((resolve, reject) => {
    const connectOptions: ConnectionOptions & { onread: OnRead } = {
      host,
      port,
      ...servername(host),
      ...trustOptions(options.extraCaCertificates),
      // Exchange Online refuses TLS 1.0/1.1 on POP and IMAP; so do we towards it.
      minVersion: 'TLSv1.2',
      onread,
    };
    const socket = connect(connectOptions);
    socket.once('secureConnect', () => {
      socket.off('error', reject);
      // Commands and IDLE updates are small writes: none should wait for an ACK.
      socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

type LoginOutcome = { ok: true; capabilities?: string } | { ok: false; reply?: string };

async function imapLogin(
  socket: TLSSocket,
  reader: LineReader,
  sasl: string,
): Promise<LoginOutcome> {
  const greeting = await reader.line();
  if (!greeting?.startsWith('* OK')) return refused(greeting);
  socket.write(`P1 AUTHENTICATE XOAUTH2 ${sasl}\r\n`);
  let capabilities: string | undefined;
  for (;;) {
    const line = await reader.line();
    if (line === undefined) return { ok: false };
    // A refused XOAUTH2 may first send a JSON error as a challenge; the empty answer ends it.
    if (line.startsWith('+')) {
      socket.write('\r\n');
      continue;
    }
    if (line.startsWith('* BYE')) return { ok: false, reply: line };
    if (line.startsWith('* CAPABILITY ')) capabilities = line.slice(13);
    if (!line.startsWith('P1 ')) continue;
    if (!/^P1 OK\b/i.test(line)) return { ok: false, reply: line };
    capabilities ??= /\[CAPABILITY ([^\]]+)\]/i.exec(line)?.[1];
    break;
  }
  if (capabilities === undefined) {
    // Exchange answers `OK AUTHENTICATE completed.` without them.
    socket.write('P2 CAPABILITY\r\n');
    for (;;) {
      const line = await reader.line();
      if (line === undefined) return { ok: false };
      if (line.startsWith('* CAPABILITY ')) capabilities = line.slice(13);
      if (line.startsWith('P2 ')) break;
    }
  }
  return { ok: true, capabilities: withoutCompress(capabilities ?? 'IMAP4rev1') };
}

async function pop3Login(
  socket: TLSSocket,
  reader: LineReader,
  sasl: string,
): Promise<LoginOutcome> {
  const greeting = await reader.line();
  if (!greeting?.startsWith('+OK')) return refused(greeting);
  socket.write(`AUTH XOAUTH2 ${sasl}\r\n`);
  for (;;) {
    const line = await reader.line();
    if (line === undefined) return { ok: false };
    if (line.startsWith('+OK')) return { ok: true };
    if (line.startsWith('-ERR')) return { ok: false, reply: line };
    if (line.startsWith('+')) socket.write('\r\n');
  }
}

function refused(line: string | undefined): LoginOutcome {
  return line === undefined ? { ok: false } : { ok: false, reply: line };
}

/**
 * COMPRESS is not offered: the proxy never re-frames the stream, and a
 * client that compressed would hide nothing from it but gain nothing either.
 */
function withoutCompress(capabilities: string): string {
  return capabilities
    .split(/\s+/)
    .filter((c) => c !== '' && !/^COMPRESS=/i.test(c))
    .join(' ');
}
