/**
 * Starting a server in a child process on a free loopback port and waiting
 * until it answers: shared by the mail servers here and the tests' Redis and
 * Azurite.
 */
import type { ChildProcess } from 'node:child_process';
import { createConnection, createServer } from 'node:net';

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/**
 * Polls `probe` until it says ready, failing at once when the server exits
 * first and after `timeoutMs` otherwise.
 */
export async function waitUntilReady(
  child: ChildProcess,
  name: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${name} exited during start-up (${child.exitCode ?? child.signalCode})`);
    }
    if (await probe()) return;
    await delay(25);
  }
  // Once more past the deadline: if this process's event loop was held up
  // (a busy machine, a synchronous call beside us) the loop may never have probed.
  if (await probe()) return;
  throw new Error(`${name} was not ready after ${timeoutMs} ms`);
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Ports the kernel hands out for port 0, released again. Another process
 * could take one before the server binds it; start-up then fails loudly.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer());
  const ports = await Promise.all(
    servers.map(
      (server) =>
        new Promise<number>((resolve, reject) => {
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => {
            const address = server.address();
            resolve(typeof address === 'object' && address ? address.port : 0);
          });
        }),
    ),
  );
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}
