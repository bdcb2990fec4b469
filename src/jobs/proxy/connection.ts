/**
 * A client connection before login, as the protocol fronts see it: a line
 * reader, a way to write, TLS (STARTTLS/STLS), and the hand-over to the
 * splice. The listener (proxy.ts) makes one per accepted socket.
 */
import { once } from 'node:events';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type SecureContext, TLSSocket } from 'node:tls';
import { LineReader } from './line-reader.js';

/** The longest command line before login: a LOGIN with long quoted strings fits many times. */
export const MAX_COMMAND_LINE = 8 * 1024;

export class ClientConnection {
  socket: Duplex;
  reader: LineReader;
  secure: boolean;

  constructor(
    raw: Socket | TLSSocket,
    readonly address: string,
    secure: boolean,
    /** Passwords may be sent in clear: the listener is on loopback. */
    private readonly loopback: boolean,
    private readonly secureContext: SecureContext | undefined,
  ) {
    this.socket = raw;
    this.secure = secure;
    this.reader = new LineReader(raw, MAX_COMMAND_LINE);
  }

  /** LOGIN, USER/PASS, AUTH PLAIN: inside TLS, or on a loopback listener. */
  get passwordsAllowed(): boolean {
    return this.secure || this.loopback;
  }

  get canStartTls(): boolean {
    return !this.secure && this.secureContext !== undefined;
  }

  write(text: string): void {
    if (!this.socket.destroyed) this.socket.write(text);
  }

  /** Sends the last words and closes. */
  close(text?: string): void {
    if (text !== undefined) this.write(text);
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  /**
   * Upgrades to TLS after the client's STARTTLS/STLS was answered. Anything
   * the client sent after its command and before the handshake is dropped
   * (the STARTTLS command injection of CVE-2011-0411).
   */
  async startTls(): Promise<boolean> {
    if (!this.secureContext) return false;
    this.reader.detach();
    const tls = new TLSSocket(this.socket as Socket, {
      isServer: true,
      secureContext: this.secureContext,
    });
    try {
      await Promise.race([
        once(tls, 'secure'),
        once(tls, 'error').then(([error]) => Promise.reject(error)),
      ]);
    } catch {
      tls.destroy();
      return false;
    }
    this.socket = tls;
    this.secure = true;
    this.reader = new LineReader(tls, MAX_COMMAND_LINE);
    return true;
  }
}
