/**
 * `startRelay`: the thin runner that wires the relay's parts together and
 * owns their lifetimes: the spool (locked, recovered), the delivery worker,
 * one SMTP listener per `relay.listen` address and the optional status HTTP
 * server. Signals belong to the CLI (`mailbridge relay` calls `stop()` on
 * SIGTERM).
 */
import { readFile } from 'node:fs/promises';
import { hostname as osHostname } from 'node:os';
import { CredentialMetrics } from '../../auth/credential-metrics.js';
import { createTokenProvider, type TokenProvider } from '../../auth/token-provider.js';
import type { MailbridgeConfig } from '../../config/types.js';
import { ConfigurationError, NetworkError } from '../../errors.js';
import { type Logger, silentLogger } from '../../log/logger.js';
import { type StatusHttpServer, startStatusHttp } from '../listener/http.js';
import { type ParseRelayOptions, parseRelaySettings, type RelaySettings } from './config.js';
import { CredentialMonitor } from './credential.js';
import { type DeliveryTransport, DeliveryWorker } from './delivery.js';
import { RelayMetrics } from './metrics.js';
import { checkPolicyAddresses, checkPolicyUsers, warnUnprovenMailboxes } from './policy-check.js';
import { createRecipientRouter } from './route.js';
import { tokenRefreshMarginMs } from './route-config.js';
import { type SmtpListener, sharedListenerState, startSmtpListener } from './server.js';
import { type RecoveryReport, Spool } from './spool.js';
import { createUpstreamPool } from './upstream-pool.js';
import { openUserStore } from './users.js';

/**
 * Messages one upstream connection carries before it is replaced. nodemailer's
 * 100 cost a new TLS handshake and XOAUTH2 login every 100 messages (a few
 * per cent of a busy relay's time); Exchange documents no such limit, and a
 * connection it closes is replaced without losing a message.
 */
const UPSTREAM_MESSAGES_PER_CONNECTION = 1000;

export interface StartRelayOptions extends ParseRelayOptions {
  /** Validated settings; parsed from `config.sections.relay` when absent. */
  settings?: RelaySettings;
  /** Where the JSON lines go. @default silent */
  logger?: Logger;
  /** Shared token provider; one is made from `config` when absent. */
  tokenProvider?: TokenProvider;
  /** Replaces the Exchange transports (tests, or another upstream). */
  transportFor?: (mailbox: string) => DeliveryTransport;
  /** How often the spool is scanned for `relay retry` releases. @default 2000 */
  scanIntervalMs?: number;
}

export interface RelayHandle {
  readonly settings: RelaySettings;
  readonly listeners: readonly SmtpListener[];
  /** The status server, when `relay.http` is set. */
  readonly http: { host: string; port: number } | undefined;
  readonly spool: Spool;
  readonly metrics: RelayMetrics;
  /** What start-up found in the spool. */
  readonly recovery: RecoveryReport;
  /** Messages in the queue now. */
  queueDepth(): number;
  /**
   * Graceful stop: no new connections; sessions and deliveries in progress
   * get `timeoutMs` (default `relay.shutdownTimeout`); the rest stays spooled.
   */
  stop(options?: { timeoutMs?: number }): Promise<{ unfinished: number }>;
}

/**
 * Starts the relay.
 *
 * @throws ConfigurationError for the relay section (`RELAY_CONFIG_INVALID`),
 *   the users file, the TLS files, a spool in use (`RELAY_SPOOL_LOCKED`)
 * @throws AuthenticationError (or another token error) when Entra ID refuses
 *   the app's credential at start-up; an unreachable Entra only degrades it
 * @throws NetworkError `RELAY_LISTEN_FAILED` when an address cannot be bound
 */
export async function startRelay(
  config: MailbridgeConfig,
  options: StartRelayOptions = {},
): Promise<RelayHandle> {
  const settings = options.settings ?? parseRelaySettings(config.sections.relay, options);
  const logger = options.logger ?? silentLogger;
  const hostname = settings.hostname ?? osHostname();
  checkPolicyAddresses(settings.policy);

  const tls = settings.tls ? await readTls(settings.tls) : undefined;
  const users = settings.users
    ? await openUserStore(settings.users, (message) =>
        logger.log('error', 'users file not reloaded', { event: 'users-error', error: message }),
      )
    : undefined;
  if (users) await checkPolicyUsers(settings, users);

  // A credential Entra refuses would otherwise show only as mail deferred for a day.
  const credentialMetrics = new CredentialMetrics(config.credential);
  const credential = new CredentialMonitor(
    credentialMetrics.observe(
      options.tokenProvider ??
        createTokenProvider(config, {
          logger,
          refreshMarginMs: tokenRefreshMarginMs(settings.routes),
        }),
    ),
    { backoff: settings.retryBackoff, logger },
  );
  if ((await credential.check()).status === 'refused') {
    credential.close();
    throw credential.error;
  }

  const spool = new Spool(settings.spool, {
    hostname,
    onRecordState: (state, error) =>
      state === 'blocked'
        ? logger.log('error', 'delivery record cannot be written: delivery and acceptance paused', {
            event: 'spool-blocked',
            error: error?.message,
          })
        : logger.log('info', 'delivery records written: delivery and acceptance resumed', {
            event: 'spool-resumed',
          }),
  });
  await spool.init();
  await spool.lock();
  const started: { close(): Promise<unknown> }[] = [];
  try {
    const recovery = await spool.recover();
    const queued = await spool.listQueue();
    const dead = (await spool.listDead()).length;
    logger.log('info', 'spool recovered', {
      event: 'recovered',
      spool: settings.spool,
      queued: recovery.queued,
      discarded: recovery.discarded,
      alreadyDelivered: recovery.alreadyDelivered,
      repaired: recovery.repaired,
      quarantined: recovery.quarantined,
      dead,
    });
    await warnUnprovenMailboxes(settings.policy, spool.deliveredPath, logger);

    let worker: DeliveryWorker | undefined;
    const metrics = new RelayMetrics({
      queueDepth: () => worker?.queueDepth ?? 0,
      inFlight: () => worker?.inFlightCount ?? 0,
      dead: () => worker?.deadCount ?? 0,
    });
    const transportFor =
      options.transportFor ??
      ((mailbox: string) =>
        createUpstreamPool(config, {
          from: mailbox,
          tokenProvider: credential.tokenProvider,
          logger,
          maxConnections: settings.connectionsPerMailbox,
          maxMessages: UPSTREAM_MESSAGES_PER_CONNECTION,
          rateLimitPerMinute: settings.rateLimitPerMinute,
        }));
    const hve = settings.routes.hve;
    worker = new DeliveryWorker({
      spool,
      transportFor,
      router: createRecipientRouter(hve),
      ...(hve
        ? {
            // No per-minute window: HVE has none, and that is what it is for.
            hveTransport: () =>
              createUpstreamPool(
                { ...config, smtp: { ...config.smtp, host: hve.host, port: hve.port } },
                {
                  from: hve.account,
                  tokenProvider: credential.tokenProvider,
                  logger,
                  maxConnections: settings.connectionsPerMailbox,
                  maxMessages: UPSTREAM_MESSAGES_PER_CONNECTION,
                  rateLimitPerMinute: false,
                },
              ),
          }
        : {}),
      connectionsPerMailbox: settings.connectionsPerMailbox,
      retryForMs: settings.retryFor,
      backoff: settings.retryBackoff,
      bounce: settings.bounce,
      hostname,
      metrics,
      logger,
      ...(options.scanIntervalMs !== undefined ? { scanIntervalMs: options.scanIntervalMs } : {}),
    });
    const deliveries = worker;
    deliveries.start(queued, dead);
    started.push({ close: () => deliveries.stop(0) });

    const listeners: SmtpListener[] = [];
    const shared = sharedListenerState(settings);
    for (const listener of settings.listen) {
      try {
        const smtp = await startSmtpListener({
          listener,
          settings,
          ...(tls ? { tls } : {}),
          ...(users ? { users } : {}),
          spool,
          metrics,
          logger,
          hostname,
          shared,
          onAccepted: (envelope, content) => deliveries.enqueue(envelope, content),
          refuseNewMail: () => credential.refusingMail(),
        });
        listeners.push(smtp);
        started.push({ close: () => smtp.close(0) });
      } catch (cause) {
        throw new NetworkError({
          code: 'RELAY_LISTEN_FAILED',
          message: `The relay cannot listen on ${listener.text} (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`,
          remedy:
            'Choose a free address in relay.listen or --listen; ports below 1024 need CAP_NET_BIND_SERVICE (see examples/relay).',
          cause,
        });
      }
    }

    let accepting = true;
    let http: StatusHttpServer | undefined;
    if (settings.http) {
      try {
        http = await startStatusHttp(settings.http, {
          health: () => ({
            accepting,
            queueDepth: deliveries.queueDepth,
            inFlight: deliveries.inFlightCount,
            credential: credential.state,
          }),
          metrics: () => metrics.render() + credentialMetrics.render(),
        });
      } catch (cause) {
        throw new NetworkError({
          code: 'RELAY_LISTEN_FAILED',
          message: `The relay cannot serve /healthz and /metrics on ${settings.http.host}:${settings.http.port} (${(cause as NodeJS.ErrnoException).code ?? 'error'})`,
          remedy: 'Choose a free loopback address in relay.http.',
          cause,
        });
      }
    }
    logger.log('info', 'relay started', {
      event: 'started',
      listen: listeners
        .map((l) => `${l.implicitTls ? 'smtps://' : ''}${formatHost(l.host)}:${l.port}`)
        .join(' '),
      http: http && settings.http ? `${formatHost(settings.http.host)}:${http.port}` : undefined,
      tls: tls !== undefined,
      auth: users !== undefined,
      allowNetworks: settings.allowNetworks.map((c) => c.text).join(' ') || undefined,
      queued: deliveries.queueDepth,
      credential: credential.state.status,
    });

    let stopping: Promise<{ unfinished: number }> | undefined;
    return {
      settings,
      listeners,
      http: http && settings.http ? { host: settings.http.host, port: http.port } : undefined,
      spool,
      metrics,
      recovery,
      queueDepth: () => deliveries.queueDepth,
      stop(stopOptions = {}) {
        stopping ??= (async () => {
          const timeoutMs = stopOptions.timeoutMs ?? settings.shutdownTimeout;
          accepting = false;
          logger.log('info', 'relay stopping', { event: 'stopping', timeoutMs });
          const [, result] = await Promise.all([
            Promise.all(listeners.map((l) => l.close(timeoutMs))),
            deliveries.stop(timeoutMs),
          ]);
          await http?.close();
          credential.close();
          await spool.unlock();
          logger.log('info', 'relay stopped', {
            event: 'stopped',
            queued: deliveries.queueDepth,
            unfinished: result.unfinished,
          });
          return result;
        })();
        return stopping;
      },
    };
  } catch (error) {
    for (const part of started.reverse()) await part.close().catch(() => {});
    credential.close();
    await spool.unlock();
    throw error;
  }
}

async function readTls(paths: {
  cert: string;
  key: string;
}): Promise<{ cert: Buffer; key: Buffer }> {
  const read = async (path: string, what: string) => {
    try {
      return await readFile(path);
    } catch (cause) {
      throw new ConfigurationError({
        code: 'RELAY_TLS_UNREADABLE',
        message: `The relay TLS ${what} ${path} cannot be read (${(cause as NodeJS.ErrnoException).code ?? 'error'})`,
        remedy:
          'Check relay.tls.cert and relay.tls.key (PEM files) and that the relay user may read them.',
        cause,
      });
    }
  };
  return { cert: await read(paths.cert, 'certificate'), key: await read(paths.key, 'key') };
}

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
