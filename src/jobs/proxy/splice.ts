/**
 * After login the proxy only relays bytes, both ways, unparsed: IDLE,
 * literals and whatever Exchange says next (`* BYE Session invalidated -
 * AccessTokenExpired`) reach the client as they are, and when one side
 * closes, so does the other, as with Exchange itself. When the proxy stops,
 * a session ends where a reply ends (`finish`): a client never gets half a
 * message followed by a BYE.
 */
import type { Duplex } from 'node:stream';
import type { ProxyMetrics } from './metrics.js';

/**
 * Bytes one direction may hold for a side that reads slowly before the other
 * side is paused. Stream's own 16 KB mark (what pipe() waits on) paused the
 * upstream after every TLS record or two: each pause and resume is a wake-up
 * of the proxy and of the server, and on a busy machine the wake-ups, not the
 * copying, set the pace (bench/proxy.ts). 256 KB per direction bounds what a
 * stalled client costs: 500 of them, 256 MB at worst.
 */
const BUFFER_PER_DIRECTION = 256 * 1024;

/** A spliced session, as the listener sees it when it stops. */
export interface SplicedSession {
  /**
   * Ends the session at the first quiet moment between two of the upstream's
   * replies, with `lastWords` to the client (IMAP's `* BYE`), or at
   * `deadline` (epoch ms) whatever it is doing, with the last words only if
   * they cannot land inside a reply. Resolves once it has ended.
   */
  finish(lastWords: string | undefined, deadline: number): Promise<void>;
}

/** Nothing relayed either way for this long, after a whole line: between two replies. */
const QUIET_MS = 200;
const FINISH_POLL_MS = 50;

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
): SplicedSession {
  const { metrics } = options;
  let ended = false;
  let resolveEnded: () => void = () => {};
  const endedPromise = new Promise<void>((resolve) => {
    resolveEnded = resolve;
  });
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
    resolveEnded();
  };
  if (options.fromUpstream.length > 0) client.write(options.fromUpstream);
  if (options.fromClient.length > 0) upstream.write(options.fromClient);
  // One timer for the idle timeout, moved on only when it fires: resetting it on
  // every chunk cost a clearTimeout and a setTimeout per TLS record.
  let lastActivity = Date.now();
  /** The upstream's last byte ended a line: the stream is between replies, or in a literal. */
  let upstreamAtLineEnd = options.fromUpstream.length === 0 || endsLine(options.fromUpstream);
  const checkIdle = () => {
    const left = lastActivity + options.idleTimeoutMs - Date.now();
    if (left <= 0) end();
    else idle = setTimeout(checkIdle, left);
  };
  let idle: NodeJS.Timeout | undefined = setTimeout(checkIdle, options.idleTimeoutMs);
  pump(client, upstream, (chunk) => {
    metrics.bytesFromClients += chunk.length;
    lastActivity = Date.now();
  });
  pump(upstream, client, (chunk) => {
    metrics.bytesToClients += chunk.length;
    lastActivity = Date.now();
    upstreamAtLineEnd = endsLine(chunk);
  });
  for (const side of [client, upstream]) {
    side.on('error', end);
    side.on('close', end);
  }
  const betweenReplies = () =>
    upstreamAtLineEnd && client.writableLength === 0 && Date.now() - lastActivity >= QUIET_MS;
  return {
    finish(lastWords, deadline) {
      const attempt = () => {
        if (ended) return;
        const quiet = betweenReplies();
        if (quiet || Date.now() >= deadline) {
          if (lastWords !== undefined && quiet && !client.destroyed) client.write(lastWords);
          end();
          return;
        }
        setTimeout(attempt, FINISH_POLL_MS);
      };
      attempt();
      return endedPromise;
    },
  };
}

function endsLine(chunk: Buffer): boolean {
  return chunk.length > 0 && chunk[chunk.length - 1] === 0x0a;
}

/** pipe(), pausing the reader only once BUFFER_PER_DIRECTION waits for the writer. */
function pump(from: Duplex, to: Duplex, counted: (chunk: Buffer) => void): void {
  const resume = () => from.resume();
  from.on('data', (chunk: Buffer) => {
    counted(chunk);
    if (!to.write(chunk) && to.writableLength >= BUFFER_PER_DIRECTION && !from.isPaused()) {
      from.pause();
      to.once('drain', resume);
    }
  });
  from.once('end', () => to.end());
  // The line reader paused it before login: data flows from here on.
  from.resume();
}
