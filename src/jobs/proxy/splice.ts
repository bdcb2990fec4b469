/**
 * After login the proxy only relays bytes, both ways, unparsed: IDLE,
 * literals and whatever Exchange says next (`* BYE Session invalidated -
 * AccessTokenExpired`) reach the client as they are, and when one side
 * closes, so does the other, as with Exchange itself.
 */
import type { Duplex } from 'node:stream';
import type { ProxyMetrics } from './metrics.js';

export function splice(
  client: Duplex,
  upstream: Duplex,
  options: {
    /** Read from the client past its login command (a pipelining client). */
    fromClient: Buffer;
    /** Sent by the upstream past its login reply. */
    fromUpstream: Buffer;
    idleTimeoutMs: number;
    metrics: ProxyMetrics;
    onEnd: () => void;
  },
): void {
  const { metrics } = options;
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    clearTimeout(idle);
    // end(), not destroy(): what one side said last (a BYE) still reaches the other.
    client.end();
    upstream.end();
    setTimeout(() => {
      client.destroy();
      upstream.destroy();
    }, 5000).unref();
    options.onEnd();
  };
  if (options.fromUpstream.length > 0) client.write(options.fromUpstream);
  if (options.fromClient.length > 0) upstream.write(options.fromClient);
  let idle: NodeJS.Timeout | undefined;
  const touch = () => {
    clearTimeout(idle);
    idle = setTimeout(end, options.idleTimeoutMs);
  };
  touch();
  client.on('data', (chunk: Buffer) => {
    metrics.bytesFromClients += chunk.length;
    touch();
  });
  upstream.on('data', (chunk: Buffer) => {
    metrics.bytesToClients += chunk.length;
    touch();
  });
  client.pipe(upstream);
  upstream.pipe(client);
  for (const side of [client, upstream]) {
    side.on('error', end);
    side.on('close', end);
  }
}
