/**
 * The relay's real upstream for integration tests: the local token service
 * plus Postfix (submission, XOAUTH2 checked against the token service) and
 * Dovecot, with helpers to read what arrived over IMAP and a TCP proxy that
 * can make the upstream unavailable for a while.
 */

import type { AddressInfo } from 'node:net';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { createImapClient } from '../../../src/clients/imap-client.js';
import { loadConfig } from '../../../src/config/load.js';
import type { MailbridgeConfig } from '../../../src/config/types.js';
import { appEnvironment } from '../../helpers/app-env.js';
import {
  EXCHANGE_AUDIENCE,
  HVE_ROLE,
  IMAP_ROLE,
  type MailServers,
  type MailServersOptions,
  SMTP_ROLE,
  startMailServers,
} from '../../helpers/mail-servers.js';
import { startTokenService, type TokenService } from '../../helpers/token-service.js';

export interface Upstream {
  service: TokenService;
  servers: MailServers;
  /** AZURE_* and MAILBRIDGE_* for a child process, pointing at these servers. */
  env: Record<string, string>;
  config: MailbridgeConfig;
  /** Message-ID header → how many copies are in the mailbox's INBOX. */
  messageIds(mailbox: string): Promise<Map<string, number>>;
  /**
   * Waits until every Message-ID of `expected` is in the mailbox's INBOX, or
   * `timeoutMs`; what arrived by then, what is missing, and the copies beyond one.
   */
  waitForAll(
    mailbox: string,
    expected: Iterable<string>,
    timeoutMs?: number,
  ): Promise<{ arrived: Map<string, number>; missing: string[]; duplicates: number }>;
  /** The raw message with this Message-ID, waiting for it to arrive. */
  waitForMessage(mailbox: string, messageId: string, timeoutMs?: number): Promise<Buffer>;
  stop(): Promise<void>;
}

/**
 * `hve`: also the High Volume Email stand-in, the app holding Mail.Send and access to the account.
 * `submission: 'node'`: smtp-server in this process instead of Postfix, for tests about the relay
 * rather than Postfix (Postfix costs about 1 s of CPU a start, and its processes CPU per message).
 */
export async function startUpstream(
  mailboxes: string[],
  options: Pick<MailServersOptions, 'hve' | 'submission'> = {},
): Promise<Upstream> {
  const service = await startTokenService();
  const servers = await startMailServers({ tokenService: service, ...options });
  const app = service.registerApp({
    roles: {
      [EXCHANGE_AUDIENCE]: [IMAP_ROLE, SMTP_ROLE, ...(options.hve ? [HVE_ROLE] : [])],
    },
  });
  for (const mailbox of mailboxes) await servers.grantMailbox(app.clientId, mailbox);
  // What Add-HVEAppAccess does for the app.
  if (options.hve) await servers.grantMailbox(app.clientId, options.hve.account);
  const env = appEnvironment(service, app, { imap: servers.imap, smtp: servers.smtp });
  const config = await loadConfig({ env });

  const messageIds = async (mailbox: string): Promise<Map<string, number>> => {
    const counts = new Map<string, number>();
    const client = await createImapClient(config, { mailbox });
    try {
      const box = await client.mailboxOpen('INBOX', { readOnly: true });
      if (box.exists === 0) return counts;
      for await (const message of client.fetch('1:*', { envelope: true })) {
        const id = message.envelope?.messageId;
        if (id) counts.set(id, (counts.get(id) ?? 0) + 1);
      }
    } finally {
      await client.logout();
    }
    return counts;
  };

  const waitForMessage = async (mailbox: string, messageId: string, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const client = await createImapClient(config, { mailbox });
      try {
        await client.mailboxOpen('INBOX', { readOnly: true });
        const found = await client.search({ header: { 'message-id': messageId } }, { uid: true });
        const uid = found ? found[0] : undefined;
        if (uid) {
          const message = await client.fetchOne(String(uid), { source: true }, { uid: true });
          if (message !== false && message.source) return message.source;
        }
      } finally {
        await client.logout();
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`${messageId} did not arrive in ${mailbox}:\n${await servers.logs()}`);
  };

  const waitForAll = async (mailbox: string, expected: Iterable<string>, timeoutMs = 60_000) => {
    const wanted = [...expected];
    let arrived = new Map<string, number>();
    let missing = wanted;
    const deadline = Date.now() + timeoutMs;
    while (missing.length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      arrived = await messageIds(mailbox);
      missing = wanted.filter((id) => !arrived.has(id));
    }
    const duplicates = [...arrived.values()].reduce((sum, n) => sum + (n - 1), 0);
    return { arrived, missing, duplicates };
  };

  return {
    service,
    servers,
    env,
    config,
    messageIds,
    waitForAll,
    waitForMessage,
    async stop() {
      await servers.stop();
      await service.close();
    },
  };
}

/** A TCP proxy in front of a port; `down()` refuses connections and cuts open ones. */
export interface TcpProxy {
  port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  up(): Promise<void>;
  down(): Promise<void>;
  /**
   * The upstream side of every open connection goes, while the client side stays
   * open until the client next writes: a server that closed an idle connection
   * without the client having seen it yet.
   */
  stale(): void;
  close(): Promise<void>;
}

export async function startProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  let connections = 0;
  const pairs = new Set<{ client: Socket; upstream: Socket }>();
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer((client) => {
        const upstream = connect(target.port, target.host);
        connections++;
        sockets.add(client);
        sockets.add(upstream);
        const drop = () => {
          client.destroy();
          upstream.destroy();
          sockets.delete(client);
          sockets.delete(upstream);
        };
        const pair = { client, upstream };
        pairs.add(pair);
        client.on('close', () => pairs.delete(pair));
        client.on('error', drop).on('close', drop);
        upstream.on('error', drop).on('close', drop);
        client.pipe(upstream).pipe(client);
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        port = (s.address() as AddressInfo).port;
        server = s;
        resolve();
      });
    });
  const stop = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      if (!server) return resolve();
      server.close(() => resolve());
      server = undefined;
    });
  await listen();
  return {
    get port() {
      return port;
    },
    get connections() {
      return connections;
    },
    up: listen,
    down: stop,
    stale() {
      for (const { client, upstream } of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        upstream
          .removeAllListeners('close')
          .removeAllListeners('error')
          .on('error', () => {});
        upstream.destroy();
        // Unpiped, it stays paused: resumed, so that the client's next write is seen.
        client.once('data', () => client.destroy()).resume();
      }
      pairs.clear();
    },
    close: stop,
  };
}

/** A writable that keeps what the relay's JSON logger writes. */
export function collectText(): { stream: NodeJS.WritableStream; text(): string } {
  let text = '';
  const stream = {
    write(chunk: string) {
      text += chunk;
      return true;
    },
  } as NodeJS.WritableStream;
  return { stream, text: () => text };
}
