/**
 * `/healthz` and `/metrics` on a loopback address (config.ts refuses any
 * other). Read-only, no request body is ever read.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { CredentialState } from './credential.js';

export interface HealthState {
  /** False once shutdown has begun: load balancers stop sending. */
  accepting: boolean;
  queueDepth: number;
  inFlight: number;
  /** Whether token requests work; anything but `ok` is `degraded` (503). */
  credential: CredentialState;
}

/** `ok` only while accepting and while tokens come: a relay without tokens only fills its spool. */
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
