/**
 * The relay under a long one-way stream of small TLS records (Dovecot's are
 * 4 KB), where the splice writes once per turn and pauses between reads
 * (bench/proxy.ts measures the CPU this saves): every byte arrives, in
 * order, and in fewer records than the upstream sent. Real TLS both ways;
 * the client's TLS bytes pass a plain TCP tap that counts the records the
 * proxy wrote.
 */
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { type OnRead, reusedReadBuffer } from '../../../src/jobs/proxy/byte-source.js';
import { ProxyMetrics } from '../../../src/jobs/proxy/metrics.js';
import { splice } from '../../../src/jobs/proxy/splice.js';
import { issueServerCertificate } from '../../helpers/pki.js';
import { loadTestCa } from '../../helpers/test-ca.js';

/** 512 KB: past the 256 KB after which a one-way stream counts as bulk. */
const RECORDS = 128;
const RECORD_BYTES = 4096;
/** TLS content type of application data (in TLS 1.3 the handshake's last messages too). */
const APPLICATION_DATA = 23;

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const close of cleanup.splice(0)) close();
});

async function listen(server: net.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanup.push(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

/** Counts the TLS records in one direction of a byte stream. */
function recordCounter(): { feed(chunk: Buffer): void; records: number } {
  let header = Buffer.alloc(0);
  let bodyLeft = 0;
  const counter = {
    records: 0,
    feed(chunk: Buffer) {
      let pos = 0;
      while (pos < chunk.length) {
        if (bodyLeft > 0) {
          const take = Math.min(bodyLeft, chunk.length - pos);
          bodyLeft -= take;
          pos += take;
          continue;
        }
        const need = 5 - header.length;
        header = Buffer.concat([header, chunk.subarray(pos, pos + need)]);
        pos += need;
        if (header.length < 5) return;
        if (header[0] === APPLICATION_DATA) counter.records++;
        bodyLeft = header.readUInt16BE(3);
        header = Buffer.alloc(0);
      }
    },
  };
  return counter;
}

describe('splice', () => {
  it('relays a 512 KB stream of 4 KB TLS records intact, in fewer records than it got', async () => {
    const ca = loadTestCa();
    const issued = issueServerCertificate(ca);
    const credentials = { cert: issued.certificatePem, key: issued.keys.privateKeyPem };
    const payload = Buffer.from(Array.from({ length: RECORDS * RECORD_BYTES }, (_, i) => i % 251));

    // The upstream: 4 KB records one after the other, each in a turn of its
    // own, as Dovecot's come: a proxy that reads whenever something arrived
    // gets them one by one.
    const upstreamServer = tls.createServer(credentials, (socket) => {
      socket.on('error', () => {});
      socket.once('data', () => {
        let sent = 0;
        const next = () => {
          if (sent === RECORDS || socket.destroyed) return;
          socket.write(payload.subarray(sent * RECORD_BYTES, ++sent * RECORD_BYTES));
          setImmediate(next);
        };
        next();
      });
    });
    const upstreamPort = await listen(upstreamServer);

    // The proxy's side: the client's TLS ends here, and is spliced to the upstream.
    const front = tls.createServer(credentials, (clientSide) => {
      // As upstream.ts connects: reading into one reused buffer.
      const { onread, source } = reusedReadBuffer();
      const options: tls.ConnectionOptions & { onread: OnRead } = {
        host: '127.0.0.1',
        port: upstreamPort,
        ca: ca.certificatePem,
        onread,
      };
      const upstream = tls.connect(options);
      cleanup.push(() => upstream.destroy());
      upstream.once('secureConnect', () => {
        splice(clientSide, upstream, {
          upstreamBytes: source,
          fromClient: Buffer.from('go\r\n'),
          fromUpstream: Buffer.alloc(0),
          idleTimeoutMs: 30_000,
          metrics: new ProxyMetrics(),
          onEnd: () => {},
        });
      });
    });
    const frontPort = await listen(front);

    // The tap between client and proxy: counts the records the proxy wrote.
    const written = recordCounter();
    const tap = net.createServer((fromClient) => {
      const toFront = net.connect(frontPort, '127.0.0.1');
      cleanup.push(() => toFront.destroy());
      fromClient.pipe(toFront);
      toFront.on('data', (chunk: Buffer) => written.feed(chunk));
      toFront.pipe(fromClient);
    });
    const tapPort = await listen(tap);

    const client = tls.connect({ host: '127.0.0.1', port: tapPort, ca: ca.certificatePem });
    cleanup.push(() => client.destroy());
    const chunks: Buffer[] = [];
    let received = 0;
    client.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
    });
    while (received < payload.length) await once(client, 'data');

    expect(Buffer.concat(chunks).equals(payload)).toBe(true);
    // Relayed one by one, RECORDS records and the handshake's few.
    expect(written.records).toBeLessThan(RECORDS * 0.75);
  });
});
