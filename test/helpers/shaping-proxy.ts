/**
 * A plain TCP proxy that makes a loopback server feel like one across a wide
 * area network: every byte arrives a fixed delay after it was sent, each way,
 * and each connection carries at most a fixed rate each way. Exchange Online
 * serves one IMAP connection far slower than a loopback Dovecot does; clients
 * that wait for each reply before the next command, or use one connection
 * only, pay for that here as they would there. TLS passes through untouched.
 *
 * The model is a link with a serialisation rate and a propagation delay: a
 * chunk leaves when the ones before it have left (at `bytesPerSecond`) and
 * arrives `delayMs` later. While more than a window of bytes waits, the
 * sending socket is paused, so a fast sender sees backpressure, not a growing
 * buffer.
 */
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';

export interface ShapingOptions {
  /** One-way delay added to every byte, in each direction. @default 15 */
  delayMs?: number;
  /** Per connection and per direction. @default 2 MB/s (2 * 1024 * 1024) */
  bytesPerSecond?: number;
}

export interface ShapingProxy {
  host: '127.0.0.1';
  port: number;
  readonly delayMs: number;
  readonly bytesPerSecond: number;
  /** Connections accepted so far. */
  readonly connections: number;
  close(): Promise<void>;
}

export const DEFAULT_DELAY_MS = 15;
export const DEFAULT_BYTES_PER_SECOND = 2 * 1024 * 1024;
/** Pieces a chunk is cut into, so one large chunk does not arrive in one late lump. */
const PIECE_BYTES = 16 * 1024;

interface Piece {
  data: Buffer;
  /** When it arrives at the other end (performance.now() milliseconds). */
  at: number;
}

/** One direction of one connection. */
class ShapedLink {
  private readonly queue: Piece[] = [];
  private queued = 0;
  /** When the last queued byte has left the sender. */
  private lineFree = 0;
  private timer: NodeJS.Timeout | undefined;
  private paused = false;
  private ended = false;
  /** Bytes in flight before the sender is paused: what the link holds during one delay, at least 64 KB. */
  private readonly window: number;

  constructor(
    private readonly from: Socket,
    private readonly to: Socket,
    private readonly delayMs: number,
    private readonly bytesPerSecond: number,
  ) {
    this.window = Math.max(64 * 1024, (bytesPerSecond * delayMs) / 1000);
    from.on('data', (chunk: Buffer) => this.push(chunk));
    from.on('end', () => {
      this.ended = true;
      this.flush();
    });
  }

  private push(chunk: Buffer): void {
    const now = performance.now();
    for (let offset = 0; offset < chunk.length; offset += PIECE_BYTES) {
      const data = chunk.subarray(offset, offset + PIECE_BYTES);
      this.lineFree = Math.max(this.lineFree, now) + (data.length * 1000) / this.bytesPerSecond;
      this.queue.push({ data, at: this.lineFree + this.delayMs });
      this.queued += data.length;
    }
    if (this.queued > this.window && !this.paused) {
      this.paused = true;
      this.from.pause();
    }
    this.flush();
  }

  private flush(): void {
    if (this.timer) return;
    const now = performance.now();
    while (this.queue.length > 0 && (this.queue[0] as Piece).at <= now) {
      const piece = this.queue.shift() as Piece;
      this.queued -= piece.data.length;
      if (!this.to.destroyed) this.to.write(piece.data);
    }
    if (this.paused && this.queued <= this.window / 2) {
      this.paused = false;
      this.from.resume();
    }
    const head = this.queue[0];
    if (head) {
      this.timer = setTimeout(
        () => {
          this.timer = undefined;
          this.flush();
        },
        Math.max(1, head.at - now),
      );
    } else if (this.ended && !this.to.destroyed) {
      this.to.end();
    }
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
  }
}

/** Listens on a free loopback port and forwards every connection to `target`, shaped. */
export async function startShapingProxy(
  target: { host: string; port: number },
  options: ShapingOptions = {},
): Promise<ShapingProxy> {
  const delayMs = options.delayMs ?? DEFAULT_DELAY_MS;
  const bytesPerSecond = options.bytesPerSecond ?? DEFAULT_BYTES_PER_SECOND;
  const sockets = new Set<Socket>();
  let connections = 0;
  // Half-open sockets: an end from one side reaches the other only after the bytes before it.
  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    connections++;
    const upstream = connect({ host: target.host, port: target.port, allowHalfOpen: true });
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    sockets.add(client);
    sockets.add(upstream);
    const links = [
      new ShapedLink(client, upstream, delayMs, bytesPerSecond),
      new ShapedLink(upstream, client, delayMs, bytesPerSecond),
    ];
    // A reset is passed on at once, as a network passes it on.
    const reset = () => {
      for (const link of links) link.stop();
      client.destroy();
      upstream.destroy();
    };
    client.on('error', reset);
    upstream.on('error', reset);
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    host: '127.0.0.1',
    port,
    delayMs,
    bytesPerSecond,
    get connections() {
      return connections;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
