/**
 * A TLS proxy in front of Dovecot that does what Dovecot cannot but Exchange
 * Online does: end a session with `* BYE Session invalidated -
 * AccessTokenExpired` when the token it logged in with expires, and answer a
 * command with `NO Request is throttled. Suggested Backoff Time: N
 * milliseconds`, or any other refusal Exchange gives (`BAD User is
 * authenticated but not connected.`). It also drops connections on demand.
 */

import type { AddressInfo } from 'node:net';
import { createServer, type Server, type TLSSocket, connect as tlsConnect } from 'node:tls';
import { type Issued, issueServerCertificate } from './pki.js';
import { loadTestCa } from './test-ca.js';

export interface ImapFaultProxy {
  host: string;
  port: number;
  /** Sessions started through the proxy. */
  readonly connections: number;
  readonly byesSent: number;
  readonly throttlesSent: number;
  /** Commands answered with a `refuseNext` reply. */
  readonly refusalsSent: number;
  /** The next `count` commands matching `match` are answered with Exchange's throttling reply. */
  throttleNext(count: number, backoffMs: number, match?: RegExp): void;
  /** The next `count` commands matching `match` are answered `<tag> <reply>`, e.g. `BAD User is authenticated but not connected.`. */
  refuseNext(count: number, reply: string, match: RegExp): void;
  /**
   * The next `count` commands matching `match` end their session with
   * `* BYE Session invalidated - AccessTokenExpired`, as if its token had just
   * expired, whatever the token's real expiry.
   */
  byeNext(count: number, match: RegExp): void;
  /** Forgets the throttles, refusals and BYEs not given yet. */
  clearFaults(): void;
  /** Whether to end sessions when their token expires, as Exchange does. @default true */
  setExpireSessions(on: boolean): void;
  /** Cuts every open connection without a word, like a network failure. */
  dropAll(): void;
  close(): Promise<void>;
}

interface Throttle {
  remaining: number;
  /** The reply after the tag; none: the session ends with the expiry BYE. */
  reply?: string;
  match: RegExp;
  throttle: boolean;
}

const EXPIRED_BYE = '* BYE Session invalidated - AccessTokenExpired\r\n';

export async function startImapFaultProxy(
  upstream: { host: string; port: number },
  /** CA for its certificate and loopback port to listen on; default the test CA and a free port. */
  own: { ca?: Issued; port?: number } = {},
): Promise<ImapFaultProxy> {
  const certificate = issueServerCertificate(own.ca ?? loadTestCa());
  const sockets = new Set<TLSSocket>();
  let connections = 0;
  let byesSent = 0;
  let throttlesSent = 0;
  let refusalsSent = 0;
  let expireSessions = true;
  const throttles: Throttle[] = [];

  const server: Server = createServer(
    { key: certificate.keys.privateKeyPem, cert: certificate.certificatePem },
    (client) => {
      connections++;
      const server = tlsConnect({
        host: upstream.host,
        port: upstream.port,
        // Upstream's certificate comes from the same CA; a test process trusts the test CA anyway.
        ...(own.ca ? { ca: [own.ca.certificatePem] } : {}),
      });
      sockets.add(client);
      sockets.add(server);
      let expiryTimer: NodeJS.Timeout | undefined;
      let awaitingSaslResponse = false;
      const end = () => {
        if (expiryTimer) clearTimeout(expiryTimer);
        client.destroy();
        server.destroy();
        sockets.delete(client);
        sockets.delete(server);
      };
      client.on('error', end);
      server.on('error', end);
      client.on('close', end);
      server.on('close', end);
      server.pipe(client);

      const onToken = (token: string | undefined) => {
        const exp = token ? tokenExpiry(token) : undefined;
        if (!expireSessions || exp === undefined) return;
        expiryTimer = setTimeout(
          () => {
            byesSent++;
            client.write(EXPIRED_BYE, () => end());
          },
          Math.max(0, exp - Date.now()),
        );
      };

      const onCommand = (line: string): boolean => {
        if (awaitingSaslResponse) {
          awaitingSaslResponse = false;
          onToken(bearerFromSasl(line.trim()));
          return true;
        }
        const match = /^(\S+)\s+(?:UID\s+)?(\S+)(?:\s+(\S+))?(?:\s+(\S+))?/i.exec(line);
        if (!match) return true;
        const [, tag, command, mechanism, initial] = match;
        if (
          command?.toUpperCase() === 'AUTHENTICATE' &&
          /^(XOAUTH2|OAUTHBEARER)$/i.test(mechanism ?? '')
        ) {
          if (initial) onToken(bearerFromSasl(initial));
          else awaitingSaslResponse = true;
          return true;
        }
        const throttle = throttles[0];
        if (throttle?.match.test(line)) {
          throttle.remaining--;
          if (throttle.remaining <= 0) throttles.shift();
          if (throttle.throttle) throttlesSent++;
          if (throttle.reply === undefined) {
            byesSent++;
            client.write(EXPIRED_BYE, () => end());
            return false;
          }
          if (!throttle.throttle) refusalsSent++;
          client.write(`${tag} ${throttle.reply}\r\n`);
          return false;
        }
        return true;
      };

      forwardCommands(client, server, onCommand);
    },
  );
  await new Promise<void>((resolve) => server.listen(own.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    host: '127.0.0.1',
    port,
    get connections() {
      return connections;
    },
    get byesSent() {
      return byesSent;
    },
    get throttlesSent() {
      return throttlesSent;
    },
    get refusalsSent() {
      return refusalsSent;
    },
    throttleNext(count, backoffMs, match = /\bFETCH\b/i) {
      const reply = `NO Request is throttled. Suggested Backoff Time: ${backoffMs} milliseconds`;
      throttles.push({ remaining: count, reply, match, throttle: true });
    },
    refuseNext(count, reply, match) {
      throttles.push({ remaining: count, reply, match, throttle: false });
    },
    byeNext(count, match) {
      throttles.push({ remaining: count, match, throttle: false });
    },
    clearFaults() {
      throttles.length = 0;
    },
    setExpireSessions(on) {
      expireSessions = on;
    },
    dropAll() {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * Copies client bytes upstream command by command. IMAP literals (`{n}` or
 * `{n+}` at a line's end) are passed through as bytes, so message data is
 * never mistaken for a command. `onCommand` returning false swallows a line.
 */
function forwardCommands(
  client: TLSSocket,
  upstream: TLSSocket,
  onCommand: (line: string) => boolean,
): void {
  let buffer = Buffer.alloc(0);
  let literalBytes = 0;
  let inContinuation = false;
  client.on('data', (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    for (;;) {
      if (literalBytes > 0) {
        const take = Math.min(literalBytes, buffer.length);
        if (take === 0) return;
        upstream.write(buffer.subarray(0, take));
        buffer = buffer.subarray(take);
        literalBytes -= take;
        continue;
      }
      const eol = buffer.indexOf('\r\n');
      if (eol < 0) return;
      const lineBytes = buffer.subarray(0, eol + 2);
      buffer = buffer.subarray(eol + 2);
      const line = lineBytes.toString('latin1').slice(0, -2);
      const forward = inContinuation ? true : onCommand(line);
      const literal = /\{(\d+)\+?\}$/.exec(line);
      literalBytes = literal ? Number(literal[1]) : 0;
      inContinuation = literalBytes > 0;
      if (forward) upstream.write(lineBytes);
    }
  });
}

/** The bearer token inside a base64 XOAUTH2 or OAUTHBEARER initial response. */
function bearerFromSasl(base64: string): string | undefined {
  const decoded = Buffer.from(base64, 'base64').toString('utf8');
  const field = decoded.split('\u0001').find((part) => part.startsWith('auth=Bearer '));
  return field?.slice('auth=Bearer '.length);
}

function tokenExpiry(token: string): number | undefined {
  try {
    const payload = JSON.parse(
      Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'),
    ) as {
      exp?: number;
    };
    return typeof payload.exp === 'number' ? payload.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
