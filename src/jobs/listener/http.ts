/**
 * `/healthz` and `/metrics` of a listening service (relay, proxy) on a
 * loopback address (each service's config refuses any other). Read-only, no
 * request body is ever read.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HealthState {
  /** False once shutdown has begun: load balancers stop sending. */
  accepting: boolean;
  /** Whether token requests work; anything but `ok` is `degraded` (503). */
  credential: { status: string };
  /** The service's own figures (queue depth, sessions open, …), shown as they are. */
  [figure: string]: unknown;
}

/** `ok` only while accepting and while tokens come: without tokens nothing reaches Exchange. */
export function healthStatus(state: HealthState): 'ok' | 'degraded' | 'stopping' {
  if (!state.accepting) return 'stopping';
  return state.credential.status === 'ok' ? 'ok' : 'degraded';
}

export interface StatusHttpServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startStatusHttp(
  address: { host: string; port: number },
  sources: { health: () => HealthState; metrics: () => string },
): Promise<StatusHttpServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      const state = sources.health();
      const status = healthStatus(state);
      const body = `${JSON.stringify({ status, ...state })}\n`;
      response
        .writeHead(status === 'ok' ? 200 : 503, {
          'content-type': 'application/json',
          'cache-control': 'no-store',
        })
        .end(request.method === 'HEAD' ? undefined : body);
      return;
    }
    if (path === '/metrics') {
      response
        .writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' })
        .end(request.method === 'HEAD' ? undefined : sources.metrics());
      return;
    }
    response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  server.requestTimeout = 10_000;
  server.headersTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
