/**
 * `startProxy`: IMAP and POP3 listeners that take a local user's password
 * and log in to Exchange Online with the app's token (see login.ts), then
 * relay the session (splice.ts). Owns the listeners, the shared limits and
 * the optional /healthz + /metrics server. Signals belong to the CLI.
 */
import { readFile } from 'node:fs/promises';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import {
  createSecureContext,
  createServer as createTlsServer,
  type SecureContextOptions,
} from 'node:tls';
import { CredentialMetrics } from '../../auth/credential-metrics.js';
import { createTokenProvider, type TokenProvider } from '../../auth/token-provider.js';
import type { MailbridgeConfig } from '../../config/types.js';
import { ConfigurationError, NetworkError } from '../../errors.js';
import { type Logger, silentLogger } from '../../log/logger.js';
import { AuthGuard } from '../listener/auth-guard.js';
import { anyCidrContains, isLoopbackAddress } from '../listener/cidr.js';
import { type StatusHttpServer, startStatusHttp } from '../listener/http.js';
import {
  type ParseProxyOptions,
  type ProxyListenAddress,
  type ProxySettings,
  parseProxySettings,
  type TlsMinVersion,
} from './config.js';
import { ClientConnection } from './connection.js';
import { type FrontHooks, serveImap } from './imap-front.js';
import { type LoginContext, login, loginContextParts } from './login.js';
import { ProxyMetrics } from './metrics.js';
import { servePop3 } from './pop3-front.js';
import { type SplicedSession, splice } from './splice.js';

const SHUTDOWN_WORDS = {
  imap: '* BYE mailbridge proxy shutting down\r\n',
  pop3: '-ERR [SYS/TEMP] mailbridge proxy shutting down\r\n',
} as const;
/** After the sessions ended: how long their sockets get to close before they are destroyed. */
const CLOSE_GRACE_MS = 2000;

export interface StartProxyOptions extends ParseProxyOptions {
  /** Validated settings; parsed from `config.sections.proxy` when absent. */
  settings?: ProxySettings;
  logger?: Logger;
  /** Shared token provider; one is made from `config` when absent. */
  tokenProvider?: TokenProvider;
}

export interface ProxyHandle {
  readonly settings: ProxySettings;
  readonly listeners: readonly {
    protocol: 'imap' | 'pop3';
    host: string;
    port: number;
    implicitTls: boolean;
  }[];
  readonly http: { host: string; port: number } | undefined;
  readonly metrics: ProxyMetrics;
  /**
   * Stops listening, says BYE (POP3: `-ERR`) to clients not logged in, and
   * ends each relayed session where a reply ends, with a BYE for IMAP, or at
   * `timeoutMs` (default proxy.shutdownTimeout) whatever it is doing.
   */
  close(options?: { timeoutMs?: number }): Promise<void>;
}

/**
 * Starts the proxy.
 *
 * @throws ConfigurationError `PROXY_CONFIG_INVALID`, `PROXY_TLS_UNREADABLE`
 * @throws NetworkError `PROXY_LISTEN_FAILED` when an address cannot be bound
 */
export async function startProxy(
  config: MailbridgeConfig,
  options: StartProxyOptions = {},
): Promise<ProxyHandle> {
  const settings = options.settings ?? parseProxySettings(config.sections.proxy, options);
  const logger = options.logger ?? silentLogger;
  const tlsOptions = settings.tls ? await tlsServerOptions(settings.tls) : undefined;
  const secureContext = tlsOptions ? createSecureContext(tlsOptions) : undefined;
  const metrics = new ProxyMetrics();
  const credentialMetrics = new CredentialMetrics(config.credential);
  let tokenOk = true;
  const context: LoginContext = {
    settings,
    guard: new AuthGuard(settings.authPenalty),
    tokenProvider: credentialMetrics.observe(
      options.tokenProvider ?? createTokenProvider(config, { logger }),
    ),
    upstream: { imap: config.imap, pop3: config.pop },
    ...(config.extraCaCertificates ? { extraCaCertificates: config.extraCaCertificates } : {}),
    metrics,
    logger,
    sessionsPerUser: new Map(),
    onTokenState: (ok) => {
      tokenOk = ok;
    },
    ...loginContextParts(),
  };
  const perAddress = new Map<string, number>();
  const sockets = new Set<Socket>();
  /** Connections not logged in yet, and relayed sessions: what a stop must end. */
  const waiting = new Map<ClientConnection, ProxyListenAddress['protocol']>();
  const spliced = new Map<SplicedSession, ProxyListenAddress['protocol']>();
  /** Set by close(): new sessions are finished as soon as they start. */
  let stopping: { deadline: number; finished: Promise<void>[] } | undefined;

  const accept = (socket: Socket, listener: ProxyListenAddress, secure: boolean) => {
    const address = socket.remoteAddress ?? '';
    const refuse = (why: string) => {
      metrics.connectionsRefused++;
      logger.log('warn', 'connection refused', { event: 'refused', client: address, reason: why });
      socket.end(listener.protocol === 'imap' ? `* BYE ${why}\r\n` : `-ERR ${why}\r\n`);
      setTimeout(() => socket.destroy(), 1000).unref();
    };
    socket.on('error', () => {});
    if (!isLoopbackAddress(address) && !anyCidrContains(settings.allowNetworks, address)) {
      refuse('Access denied');
      return;
    }
    // Client connections only: `sockets` also holds the upstream side of each session.
    if (metrics.connections >= settings.maxConnections) {
      refuse('Too many connections, try again later');
      return;
    }
    const open = perAddress.get(address) ?? 0;
    if (open >= settings.maxConnectionsPerAddress) {
      refuse('Too many connections from your address, try again later');
      return;
    }
    perAddress.set(address, open + 1);
    sockets.add(socket);
    metrics.connections++;
    socket.once('close', () => {
      sockets.delete(socket);
      metrics.connections--;
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left > 0) perAddress.set(address, left);
      else perAddress.delete(address);
    });
    const connection = new ClientConnection(
      socket,
      address,
      secure,
      isLoopbackAddress(listener.host),
      secureContext,
    );
    waiting.set(connection, listener.protocol);
    socket.once('close', () => waiting.delete(connection));
    // A client that says nothing, or trickles, is cut off here whatever it does.
    const deadline = setTimeout(() => {
      logger.log('warn', 'login timeout', { event: 'login-timeout', client: address });
      connection.close(
        listener.protocol === 'imap' ? '* BYE Autologout; idle too long\r\n' : '-ERR Timeout\r\n',
      );
    }, settings.loginTimeout);
    socket.once('close', () => clearTimeout(deadline));
    const hooks: FrontHooks = {
      login: (loginName, password) =>
        login(context, { protocol: listener.protocol, client: address, loginName, password }),
      spliced: (result, fromClient) => {
        clearTimeout(deadline);
        waiting.delete(connection);
        metrics.sessions[listener.protocol]++;
        const upstream = result.session.socket;
        sockets.add(upstream as unknown as Socket);
        const session = splice(connection.socket, upstream, {
          upstreamBytes: result.session.bytes,
          fromClient,
          fromUpstream: result.session.pending,
          idleTimeoutMs: settings.idleTimeout,
          metrics,
          onEnd: () => {
            sockets.delete(upstream as unknown as Socket);
            spliced.delete(session);
            metrics.sessions[listener.protocol]--;
            result.release();
          },
        });
        spliced.set(session, listener.protocol);
        // A login that was under way when the stop began.
        if (stopping) {
          stopping.finished.push(
            session.finish(SHUTDOWN_WORDS[listener.protocol], stopping.deadline),
          );
        }
      },
    };
    const serve = listener.protocol === 'imap' ? serveImap : servePop3;
    serve(connection, hooks).catch((error: unknown) => {
      logger.log('error', 'session error', {
        event: 'session-error',
        client: address,
        error: (error as Error).message,
      });
      connection.socket.destroy();
    });
  };

  const servers: Server[] = [];
  const listeners: ProxyHandle['listeners'][number][] = [];
  let http: StatusHttpServer | undefined;
  const closeAll = async () => {
    for (const socket of sockets) socket.destroy();
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    await http?.close();
  };
  const stop = async (timeoutMs: number) => {
    if (stopping) return;
    stopping = { deadline: Date.now() + timeoutMs, finished: [] };
    const closed = Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    logger.log('info', 'proxy stopping', {
      event: 'stopping',
      waiting: waiting.size,
      sessions: spliced.size,
      timeoutMs,
    });
    for (const [connection, protocol] of waiting) connection.close(SHUTDOWN_WORDS[protocol]);
    waiting.clear();
    for (const [session, protocol] of spliced) {
      stopping.finished.push(session.finish(SHUTDOWN_WORDS[protocol], stopping.deadline));
    }
    // Logins under way add theirs while these run.
    for (let done = 0; done < stopping.finished.length; done = stopping.finished.length) {
      await Promise.all(stopping.finished.slice(done));
    }
    // Each side was ended; a peer that does not close its side in time is cut off.
    const grace = setTimeout(() => {
      for (const socket of sockets) socket.destroy();
    }, CLOSE_GRACE_MS);
    await closed;
    clearTimeout(grace);
    await http?.close();
  };
  try {
    for (const listener of settings.listen) {
      const server =
        listener.implicitTls && tlsOptions
          ? createTlsServer(
              { ...tlsOptions, handshakeTimeout: settings.loginTimeout, noDelay: true },
              (socket) => accept(socket as unknown as Socket, listener, true),
            )
          : createServer({ noDelay: true }, (socket) => accept(socket, listener, false));
      // Failed handshakes (a TLS 1.0 client when 1.2 is the minimum) are the client's problem.
      server.on('tlsClientError', () => {});
      server.on('error', (error) =>
        logger.log('error', 'listener error', { event: 'listener-error', error: error.message }),
      );
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(listener.port, listener.host, () => {
            server.off('error', reject);
            resolve();
          });
        });
      } catch (cause) {
        throw new NetworkError({
          code: 'PROXY_LISTEN_FAILED',
          message: `The proxy cannot listen on ${listener.text} (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`,
          remedy:
            'Choose a free address in proxy.imap.listen / proxy.pop3.listen; ports below 1024 need CAP_NET_BIND_SERVICE (see examples/proxy).',
          cause,
        });
      }
      servers.push(server);
      listeners.push({
        protocol: listener.protocol,
        host: listener.host,
        port: (server.address() as AddressInfo).port,
        implicitTls: listener.implicitTls,
      });
    }
    if (settings.http) {
      http = await startStatusHttp(settings.http, {
        health: () => ({
          accepting: true,
          credential: { status: tokenOk ? 'ok' : 'failing' },
          sessions: metrics.sessions.imap + metrics.sessions.pop3,
          connections: metrics.connections,
        }),
        metrics: () => metrics.render() + credentialMetrics.render(),
      });
    }
  } catch (error) {
    await closeAll();
    throw error;
  }
  if (settings.tls && isOldTls(settings.tls.minVersion)) {
    logger.log('warn', 'old TLS versions accepted', {
      event: 'tls-warning',
      minVersion: settings.tls.minVersion,
      listeners: settings.listen.map((l) => `${l.protocol} ${l.text}`).join(', '),
    });
  }
  logger.log('info', 'proxy started', {
    event: 'started',
    listen: listeners
      .map((l) => `${l.implicitTls ? `${l.protocol}s://` : `${l.protocol} `}${l.host}:${l.port}`)
      .join(' '),
    users: settings.users.length,
    tls: secureContext !== undefined,
  });
  return {
    settings,
    listeners,
    http: http && settings.http ? { host: settings.http.host, port: http.port } : undefined,
    metrics,
    close: async (closeOptions = {}) => {
      await stop(closeOptions.timeoutMs ?? settings.shutdownTimeout);
      logger.log('info', 'proxy stopped', { event: 'stopped' });
    },
  };
}

function isOldTls(version: TlsMinVersion): boolean {
  return version === 'TLSv1' || version === 'TLSv1.1';
}

/**
 * Node 20's OpenSSL 3 refuses TLS 1.0 and 1.1 at its default security level
 * (1): their handshake signs with SHA-1. `minVersion: TLSv1` alone therefore
 * still fails every old client; security level 0 in the cipher string is what
 * lets them in (no `--tls-min-v1.0` flag needed: that only moves the default).
 */
async function tlsServerOptions(
  tls: NonNullable<ProxySettings['tls']>,
): Promise<SecureContextOptions> {
  const read = async (path: string, what: string) => {
    try {
      return await readFile(path);
    } catch (cause) {
      throw new ConfigurationError({
        code: 'PROXY_TLS_UNREADABLE',
        message: `The proxy TLS ${what} ${path} cannot be read (${(cause as NodeJS.ErrnoException).code ?? 'error'})`,
        remedy:
          'Check proxy.tls.cert and proxy.tls.key (PEM files) and that the proxy user may read them.',
        cause,
      });
    }
  };
  const [cert, key] = [await read(tls.cert, 'certificate'), await read(tls.key, 'key')];
  return {
    cert,
    key,
    minVersion: tls.minVersion,
    ...(isOldTls(tls.minVersion) ? { ciphers: 'DEFAULT:@SECLEVEL=0' } : {}),
  };
}
