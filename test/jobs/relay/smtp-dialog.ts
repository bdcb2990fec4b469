/**
 * A bare SMTP client for tests that must see the exact replies: one command,
 * one (possibly multi-line) reply. Cleartext only.
 */
import { connect, type Socket } from 'node:net';

export interface SmtpDialog {
  greeting: string;
  /** Sends a line, resolves with the full reply (lines joined by \n). */
  send(line: string): Promise<string>;
  /** Sends DATA, the message (dot-stuffed here) and the final dot; resolves with the reply to the dot. */
  data(message: string | Buffer): Promise<string>;
  /** The next reply, without sending anything (a reply the server sends on its own). */
  next(): Promise<string>;
  /** Writes raw text, no line ending added. */
  write(text: string): void;
  /** Resolves when the server closes the connection. */
  closed: Promise<void>;
  close(): void;
}

export function openSmtp(
  port: number,
  options: { localAddress?: string; host?: string } = {},
): Promise<SmtpDialog> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect({
      host: options.host ?? '127.0.0.1',
      port,
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    });
    let buffer = '';
    const waiting: ((reply: string) => void)[] = [];
    let lines: string[] = [];
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      let index = buffer.indexOf('\r\n');
      while (index !== -1) {
        const line = buffer.slice(0, index);
        buffer = buffer.slice(index + 2);
        lines.push(line);
        if (/^\d{3} /.test(line) || /^\d{3}$/.test(line)) {
          const reply = lines.join('\n');
          lines = [];
          waiting.shift()?.(reply);
        }
        index = buffer.indexOf('\r\n');
      }
    });
    socket.once('error', reject);
    const next = () => new Promise<string>((r) => waiting.push(r));
    next().then((greeting) => {
      const dialog: SmtpDialog = {
        greeting,
        send(line) {
          const reply = next();
          socket.write(`${line}\r\n`);
          return reply;
        },
        async data(message) {
          const go = await dialog.send('DATA');
          if (!go.startsWith('354')) return go;
          const text = Buffer.isBuffer(message) ? message.toString('latin1') : message;
          const stuffed = text.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..');
          const reply = next();
          socket.write(`${stuffed}${stuffed.endsWith('\r\n') ? '' : '\r\n'}.\r\n`, 'latin1');
          return reply;
        },
        next,
        write(text) {
          if (!socket.destroyed) socket.write(text);
        },
        closed,
        close() {
          socket.destroy();
        },
      };
      resolve(dialog);
    }, reject);
  });
}
