/**
 * After login the proxy only relays bytes, both ways, unparsed: IDLE,
 * literals and whatever Exchange says next (`* BYE Session invalidated -
 * AccessTokenExpired`) reach the client as they are, and when one side
 * closes, so does the other, as with Exchange itself. When the proxy stops,
 * a session ends where a reply ends (`finish`): a client never gets half a
 * message followed by a BYE.
 */
import type { Duplex } from 'node:stream';
import { type ByteSource, dataEvents } from './byte-source.js';
import type { ProxyMetrics } from './metrics.js';
import { SlabWriter } from './slab-writer.js';

/**
 * Bytes one direction may hold for a side that reads slowly before the other
 * side is paused. Stream's own 16 KB mark (what pipe() waits on) paused the
 * upstream after every TLS record or two: each pause and resume is a wake-up
 * of the proxy and of the server, and on a busy machine the wake-ups, not the
 * copying, set the pace (bench/proxy.ts). 256 KB per direction bounds what a
 * stalled client costs: 500 of them, 256 MB at worst.
 */
const BUFFER_PER_DIRECTION = 256 * 1024;
/** A turn that read at least this much already makes a large write: no pause after it. */
const BATCH_TARGET = 64 * 1024;
/**
 * The pause between reads in a long one-way stream. At 140 MB/s (Dovecot's
 * rate here) 1 ms lets about 140 KB gather, which the kernel's socket buffer
 * holds; the server does not wait on the proxy.
 */
const BREATHER_MS = 1;
/** One direction is a bulk transfer once it carried this much without a word back. */
const ONE_WAY_BEFORE_BREATHER = 256 * 1024;
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
    /** What the upstream socket reads (byte-source.ts). */
    upstreamBytes: ByteSource;
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
    flushToUpstream();
    flushToClient();
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
  const [toUpstream, toClient] = oneWayPair();
  const flushToUpstream = pump(client, dataEvents(client), upstream, toUpstream, (_, length) => {
    metrics.bytesFromClients += length;
    lastActivity = Date.now();
  });
  const flushToClient = pump(upstream, options.upstreamBytes, client, toClient, (bytes, length) => {
    metrics.bytesToClients += length;
    lastActivity = Date.now();
    upstreamAtLineEnd = bytes[length - 1] === 0x0a;
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

/**
 * pipe(), with four changes for bulk transfers (a `FETCH 1:*`, bench/proxy.ts):
 * - the reader pauses only once BUFFER_PER_DIRECTION waits for the writer;
 * - what one turn of the event loop read leaves as one write: Dovecot sends
 *   TLS records of 4 KB and Node hands each over on its own, which written
 *   one by one cost a TLS record and a write() syscall each;
 * - the reads are copied into recycled slabs (slab-writer.ts), not handed
 *   over as a Buffer each;
 * - in a long one-way stream, a turn that read less than BATCH_TARGET is
 *   followed by a pause of BREATHER_MS, so that the next read finds many
 *   records waiting rather than one: a wake-up per 4 KB was most of the
 *   proxy's CPU. Request and reply (the other side spoke since) never wait.
 * Returns what writes out at once what was read (before an end).
 */
function pump(
  from: Duplex,
  source: ByteSource,
  to: Duplex,
  stream: OneWay,
  counted: (bytes: Buffer, length: number) => void,
): () => void {
  let waitingDrain = false;
  let breathing = false;
  const resumeIfFree = () => {
    if (!waitingDrain && !breathing && !from.destroyed) from.resume();
  };
  const drained = () => {
    waitingDrain = false;
    resumeIfFree();
  };
  const breathed = () => {
    breathing = false;
    resumeIfFree();
  };
  const out = new SlabWriter(to);
  const flush = () => {
    out.flush();
    if (to.writableLength >= BUFFER_PER_DIRECTION && !waitingDrain) {
      waitingDrain = true;
      from.pause();
      to.once('drain', drained);
    }
  };
  let turnEnding = false;
  let batch = 0;
  const endTurn = () => {
    turnEnding = false;
    flush();
    const bulk = stream.bytes >= ONE_WAY_BEFORE_BREATHER;
    if (!bulk) out.release();
    else if (batch < BATCH_TARGET && !breathing) {
      breathing = true;
      from.pause();
      setTimeout(breathed, BREATHER_MS);
    }
    batch = 0;
  };
  source.onBytes((bytes, length) => {
    counted(bytes, length);
    batch += length;
    stream.bytes += length;
    stream.other.bytes = 0;
    out.add(bytes, length, stream.bytes >= ONE_WAY_BEFORE_BREATHER);
    if (!turnEnding) {
      turnEnding = true;
      // setImmediate, not nextTick: Node runs the tick queue after each chunk of a read.
      setImmediate(endTurn);
    }
  });
  from.once('end', () => {
    out.flush();
    to.end();
  });
  // The line reader paused it before login: data flows from here on.
  from.resume();
  return () => out.flush();
}

/** Bytes one direction carried since the other last spoke. */
interface OneWay {
  bytes: number;
  other: OneWay;
}

function oneWayPair(): [OneWay, OneWay] {
  const a = { bytes: 0 } as OneWay;
  const b: OneWay = { bytes: 0, other: a };
  a.other = b;
  return [a, b];
}
