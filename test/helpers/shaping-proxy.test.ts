/**
 * The shaping proxy stands in for a wide area network in benches: these
 * tests pin that it really adds its delay each way and caps each
 * connection's rate, so a figure measured through it means what it says.
 */
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startShapingProxy } from './shaping-proxy.js';

/** Echoes every byte back. */
async function startEcho(): Promise<Server> {
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    socket.pipe(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

async function open(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.setNoDelay(true);
  await once(socket, 'connect');
  return socket;
}

/** Writes `bytes` and resolves when as many have come back. */
function roundTrip(socket: Socket, bytes: number): Promise<number> {
  const start = performance.now();
  return new Promise((resolve) => {
    let got = 0;
    const onData = (chunk: Buffer) => {
      got += chunk.length;
      if (got >= bytes) {
        socket.off('data', onData);
        resolve(performance.now() - start);
      }
    };
    socket.on('data', onData);
    socket.write(Buffer.alloc(bytes, 0x61));
  });
}

describe('shaping proxy', () => {
  let echo: Server;
  let target: { host: string; port: number };

  beforeAll(async () => {
    echo = await startEcho();
    target = { host: '127.0.0.1', port: (echo.address() as AddressInfo).port };
  });
  afterAll(() => new Promise<void>((resolve) => echo.close(() => resolve())));

  it('adds its delay each way: a small round trip takes twice the delay', async () => {
    const proxy = await startShapingProxy(target, { delayMs: 15 });
    try {
      const socket = await open(proxy.port);
      const times: number[] = [];
      for (let i = 0; i < 5; i++) times.push(await roundTrip(socket, 10));
      socket.destroy();
      const best = Math.min(...times);
      // 30 ms of delay, plus timer granularity and a loaded machine's scheduling.
      expect(best).toBeGreaterThanOrEqual(29);
      expect(best).toBeLessThan(45);
    } finally {
      await proxy.close();
    }
  });

  it('caps each connection at its rate, each way', async () => {
    const rate = 1024 * 1024;
    const proxy = await startShapingProxy(target, { delayMs: 5, bytesPerSecond: rate });
    try {
      const socket = await open(proxy.port);
      // 1 MB out and the same back: the two directions overlap, so about one second, not two.
      const ms = await roundTrip(socket, rate);
      socket.destroy();
      expect(ms).toBeGreaterThan(950);
      expect(ms).toBeLessThan(1400);
    } finally {
      await proxy.close();
    }
  });

  it('caps per connection, not in total: two connections carry twice as much', async () => {
    const rate = 512 * 1024;
    const proxy = await startShapingProxy(target, { delayMs: 5, bytesPerSecond: rate });
    try {
      const sockets = await Promise.all([open(proxy.port), open(proxy.port)]);
      const start = performance.now();
      await Promise.all(sockets.map((s) => roundTrip(s, rate)));
      const ms = performance.now() - start;
      for (const s of sockets) s.destroy();
      expect(ms).toBeGreaterThan(950);
      expect(ms).toBeLessThan(1400);
      expect(proxy.connections).toBe(2);
    } finally {
      await proxy.close();
    }
  });

  it('passes an end on after the bytes before it', async () => {
    const proxy = await startShapingProxy(target, { delayMs: 20 });
    try {
      const socket = await open(proxy.port);
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.end(Buffer.from('last words'));
      await once(socket, 'end');
      expect(Buffer.concat(chunks).toString()).toBe('last words');
    } finally {
      await proxy.close();
    }
  });
});
