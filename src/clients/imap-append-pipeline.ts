/**
 * APPENDs sent back to back on a connection of their own, each message a
 * non-synchronizing literal (LITERAL+, RFC 7888), so a high round-trip time
 * is paid once per window of messages rather than twice per message:
 * imapflow sends one command at a time and waits for the server's `+` before
 * any literal over 4 KB. Exchange Online and Dovecot both offer LITERAL+.
 *
 * Only the fast path: a tagged OK is the one answer it interprets. Anything
 * else (a refusal, throttling, a dropped connection) goes back to the caller,
 * which retries that message through its session, where reconnects,
 * back-off and the server's words are handled.
 */
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import type { MailbridgeConfig } from '../config/types.js';
import { servername, trustOptions } from '../util/tls.js';

export interface AppendPipelineOptions {
  host: string;
  port: number;
  /** XOAUTH2 with a token, or AUTHENTICATE PLAIN with a password; both with SASL-IR. */
  login: { user: string; accessToken: string } | { user: string; pass: string };
  extraCaCertificates?: MailbridgeConfig['extraCaCertificates'];
  /** Longest wait for the server while anything is outstanding. @default 60_000 */
  timeoutMs?: number;
}

/** `reply`: the server's tagged answer other than OK, as received. */
export type PipelinedAppendResult =
  | {
      ok: true;
      /** The first message's UID; `uids` has each message's, in the order sent. */
      uid?: number;
      uids?: number[];
      uidValidity?: string;
    }
  | { ok: false; reply: string };

export interface AppendMessage {
  raw: Buffer;
  flags: readonly string[];
  internalDate: Date | undefined;
}

interface Waiting {
  tag: string;
  resolve: (result: PipelinedAppendResult) => void;
  reject: (error: Error) => void;
  bytes: number;
}

const WRITE_SLICE = 256 * 1024;
/** More UIDs than this in one APPENDUID answer is not a reply to anything this sends. */
const MAX_UIDS = 100_000;

/** The capability names of CAPABILITY's untagged answer, upper-cased. */
function capabilityNames(untagged: string): Set<string> {
  const line = /^\* CAPABILITY (.*)$/im.exec(untagged)?.[1] ?? '';
  return new Set(line.toUpperCase().split(/\s+/).filter(Boolean));
}

/** An APPENDUID uid-set (`5`, `5:9`, `5,7:8`) as its UIDs in order; undefined when malformed. */
export function uidList(set: string): number[] | undefined {
  const uids: number[] = [];
  for (const part of set.split(',')) {
    const [first, last = first] = part.split(':').map(Number) as [number, number?];
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(last) || first < 1 || last < 1) {
      return undefined;
    }
    const step = last >= first ? 1 : -1;
    if (uids.length + Math.abs(last - first) >= MAX_UIDS) return undefined;
    for (let uid = first; uid !== last + step; uid += step) uids.push(uid);
  }
  return uids;
}

const MONTHS = 'Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec'.split(' ');

/** RFC 3501 date-time, in UTC: `"06-Dec-2026 13:05:00 +0000"`. */
export function internalDateText(date: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return `"${two(date.getUTCDate())}-${MONTHS[date.getUTCMonth()]}-${date.getUTCFullYear()} ${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())} +0000"`;
}

/** A mailbox name as an IMAP quoted string, in modified UTF-7 (RFC 3501 5.1.3). */
export function quotedMailbox(name: string): string {
  const encoded = name.replace(/&/g, '&-').replace(/[^\x20-\x7e]+/g, (run) => {
    const utf16be = Buffer.from(run, 'utf16le').swap16();
    return `&${utf16be.toString('base64').replace(/=+$/, '').replace(/\//g, ',')}-`;
  });
  return `"${encoded.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

export class AppendPipeline {
  private readonly waiting: Waiting[] = [];
  private buffer = '';
  private literalLeft = 0;
  private next = 0;
  private failure: Error | undefined;
  private bye: string | undefined;
  private bytesOut = 0;

  private constructor(private readonly socket: TLSSocket) {
    socket.on('data', (chunk: Buffer) => this.read(chunk));
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () =>
      this.fail(new Error(`the connection closed${this.bye ? `: ${this.bye}` : ''}`)),
    );
  }

  /**
   * Connects and logs in. Undefined when the server lacks what the pipeline
   * needs (SASL-IR, LITERAL+); throws when the connection or the login fails.
   */
  static async open(options: AppendPipelineOptions): Promise<AppendPipeline | undefined> {
    const socket = tlsConnect({
      host: options.host,
      port: options.port,
      ...servername(options.host),
      minVersion: 'TLSv1.2',
      ...trustOptions(options.extraCaCertificates),
    });
    socket.setNoDelay(true);
    const pipeline = new AppendPipeline(socket);
    socket.setTimeout(options.timeoutMs ?? 60_000, () => {
      if (pipeline.waiting.length > 0 || !pipeline.greeted) {
        socket.destroy(new Error('the server did not answer in time'));
      }
    });
    try {
      await pipeline.greeting();
      const before = await pipeline.command('CAPABILITY');
      if (!/\bSASL-IR\b/i.test(before)) {
        pipeline.close();
        return undefined;
      }
      const login = options.login;
      const response =
        'accessToken' in login
          ? `user=${login.user}\x01auth=Bearer ${login.accessToken}\x01\x01`
          : `\0${login.user}\0${login.pass}`;
      const mechanism = 'accessToken' in login ? 'XOAUTH2' : 'PLAIN';
      await pipeline.command(
        `AUTHENTICATE ${mechanism} ${Buffer.from(response).toString('base64')}`,
      );
      const after = await pipeline.command('CAPABILITY');
      pipeline.capabilities = capabilityNames(after);
      if (!/\bLITERAL\+/i.test(after)) {
        pipeline.close();
        return undefined;
      }
      return pipeline;
    } catch (error) {
      socket.destroy();
      throw error;
    }
  }

  private greeted = false;
  private onGreeting: (() => void) | undefined;
  /** Untagged lines while a `command` waits: what CAPABILITY answered. */
  private untagged: string[] | undefined;
  private selected: string | undefined;
  private capabilities = new Set<string>();

  private greeting(): Promise<void> {
    if (this.greeted) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.onGreeting = resolve;
      this.waiting.push({ tag: '*greeting', resolve: () => resolve(), reject, bytes: 0 });
    });
  }

  /** One command, answered OK: the untagged lines it brought; anything else throws. */
  private async command(text: string): Promise<string> {
    const untagged: string[] = [];
    this.untagged = untagged;
    const result = await this.send(text);
    this.untagged = undefined;
    if (!result.ok) {
      // The server's words, not the command: it may hold a token.
      throw new Error(`the server refused ${text.split(' ')[0]}: ${result.reply}`);
    }
    return untagged.join('\n');
  }

  /** Sends a command without a literal, after whatever is being written; its tagged answer. */
  private send(text: string): Promise<PipelinedAppendResult> {
    const tag = `L${++this.next}`;
    return new Promise<PipelinedAppendResult>((resolve, reject) => {
      this.waiting.push({ tag, resolve, reject, bytes: 0 });
      this.writing = this.writing
        .then(() => this.write(Buffer.from(`${tag} ${text}\r\n`)))
        .catch((error: Error) => this.fail(error));
    });
  }

  /**
   * Selects `mailbox` unless it is already. APPENDs into the selected
   * mailbox use the server's open copy of it; into any other, the server
   * opens it anew for each message (Dovecot then reads its index and
   * uidlist every time: a quarter of its CPU per APPEND at 3,000 messages,
   * growing with the folder). A refusal leaves none selected, and APPEND
   * works as before. Rejects when the connection fails.
   */
  async select(mailbox: string): Promise<void> {
    if (this.selected === mailbox) return;
    this.selected = mailbox;
    const result = await this.send(`SELECT ${quotedMailbox(mailbox)}`);
    if (!result.ok && this.selected === mailbox) this.selected = undefined;
  }

  /** Whether new APPENDs may still be sent. */
  get usable(): boolean {
    return this.failure === undefined && !this.socket.destroyed;
  }

  /** Bytes of messages sent and not yet answered. */
  get inFlightBytes(): number {
    return this.bytesOut;
  }

  /**
   * Sends one APPEND at once, without waiting for those before it to be
   * answered. Resolves with the server's answer; rejects when the connection
   * fails first (the message may or may not have been stored).
   */
  append(
    mailbox: string,
    raw: Buffer,
    flags: readonly string[],
    internalDate: Date | undefined,
  ): Promise<PipelinedAppendResult> {
    return this.appendMany(mailbox, [{ raw, flags, internalDate }]);
  }

  /** The server offers MULTIAPPEND (RFC 3502): `appendMany` may take more than one message. */
  get multiAppend(): boolean {
    return this.capabilities.has('MULTIAPPEND');
  }

  /**
   * One APPEND of several messages (MULTIAPPEND), sent like `append`. The
   * server stores all of them or none, in one transaction: Dovecot then
   * locks and updates the folder once rather than once per message. With
   * UIDPLUS the answer's `uids` are theirs, in order.
   */
  appendMany(mailbox: string, messages: readonly AppendMessage[]): Promise<PipelinedAppendResult> {
    const name = quotedMailbox(mailbox);
    if (this.failure) return Promise.reject(this.failure);
    const tag = `A${++this.next}`;
    return new Promise((resolve, reject) => {
      const bytes = messages.reduce((sum, m) => sum + m.raw.length, 0);
      this.bytesOut += bytes;
      this.waiting.push({
        tag,
        resolve: (result) => {
          this.bytesOut -= bytes;
          resolve(result);
        },
        reject,
        bytes,
      });
      let head = `${tag} APPEND ${name}`;
      for (const { raw, flags, internalDate } of messages) {
        const parts = [head];
        if (flags.length > 0) parts.push(`(${flags.join(' ')})`);
        if (internalDate) parts.push(internalDateText(internalDate));
        const line = Buffer.from(`${parts.join(' ')} {${raw.length}+}\r\n`);
        this.writing = this.writing.then(() => this.write(line)).then(() => this.write(raw));
        head = '';
      }
      this.writing = this.writing
        .then(() => this.write(Buffer.from('\r\n')))
        .catch((error: Error) => this.fail(error));
    });
  }

  /** Commands go out in order, one after another, whoever sends them. */
  private writing: Promise<void> = Promise.resolve();

  /**
   * Writes in slices, each once the socket has taken the one before: TLS
   * encrypts whatever it is given at once, so a 50 MB message written whole
   * would sit in memory twice, as text and as ciphertext.
   */
  private async write(data: Buffer): Promise<void> {
    for (let offset = 0; offset < data.length; offset += WRITE_SLICE) {
      if (this.failure) throw this.failure;
      if (!this.socket.write(data.subarray(offset, offset + WRITE_SLICE))) {
        await new Promise<void>((resolve) => {
          const done = () => {
            this.socket.off('drain', done);
            this.socket.off('close', done);
            resolve();
          };
          this.socket.on('drain', done);
          this.socket.on('close', done);
        });
      }
    }
  }

  private read(chunk: Buffer): void {
    let text = chunk.toString('latin1');
    while (text.length > 0) {
      if (this.literalLeft > 0) {
        const skip = Math.min(this.literalLeft, text.length);
        this.literalLeft -= skip;
        text = text.slice(skip);
        continue;
      }
      const end = text.indexOf('\n');
      if (end < 0) {
        this.buffer += text;
        return;
      }
      const line = (this.buffer + text.slice(0, end)).replace(/\r$/, '');
      this.buffer = '';
      text = text.slice(end + 1);
      const literal = /\{(\d+)\}$/.exec(line);
      if (literal) this.literalLeft = Number(literal[1]);
      this.line(line);
    }
  }

  private line(line: string): void {
    if (!this.greeted) {
      this.greeted = true;
      const head = this.waiting.shift();
      if (/^\* (OK|PREAUTH)\b/i.test(line)) this.onGreeting?.();
      else head?.reject(new Error(`the server greeted with: ${line.slice(0, 200)}`));
      return;
    }
    if (line.startsWith('* ')) {
      if (/^\* BYE\b/i.test(line)) this.bye = line.slice(2, 200);
      this.untagged?.push(line);
      return;
    }
    if (line.startsWith('+')) {
      // A challenge during AUTHENTICATE (Exchange's error details): answer empty to get the NO.
      this.socket.write('\r\n');
      return;
    }
    const match = /^(\S+) (OK|NO|BAD)\b ?(.*)$/i.exec(line);
    if (!match) return;
    const index = this.waiting.findIndex((w) => w.tag === match[1]);
    if (index < 0) return;
    const [waiting] = this.waiting.splice(index, 1) as [Waiting];
    if ((match[2] as string).toUpperCase() !== 'OK') {
      waiting.resolve({ ok: false, reply: `${match[2]} ${match[3]}` });
      return;
    }
    const appendUid = /\[APPENDUID (\d+) ([\d:,]+)\]/i.exec(match[3] as string);
    const uids = appendUid ? uidList(appendUid[2] as string) : undefined;
    waiting.resolve(
      appendUid && uids
        ? { ok: true, uidValidity: appendUid[1] as string, uid: uids[0] as number, uids }
        : { ok: true },
    );
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const waiting of this.waiting.splice(0)) waiting.reject(this.failure);
    this.bytesOut = 0;
  }

  /** Logs out once everything sent is answered. */
  async logout(): Promise<void> {
    if (!this.usable) return;
    await this.command('LOGOUT').catch(() => {});
    this.close();
  }

  close(): void {
    this.socket.destroy();
  }
}
