/**
 * One SMTP listener of the relay, on smtp-server's hooks:
 *
 *   onConnect   connection limits (421), then the client's address: allowed network,
 *               must authenticate, or refused (554); starts the session deadline
 *   onSecure    TLS is up: AUTH becomes available where it needs TLS
 *   onAuth      the penalty and the queue of auth-guard.ts, then AUTH PLAIN / LOGIN
 *               against the users file (535 on a wrong password)
 *   onMailFrom  authentication required (530), 8-bit address without SMTPUTF8 (553 5.6.7),
 *               then the sender policy (550 5.7.1 + reason)
 *   onRcptTo    8-bit address without SMTPUTF8 (553 5.6.7), maxRecipients (452 4.5.3)
 *   onData      spool, flush, commit; only then 250 (552 when too large, 451 when the spool fails)
 *
 * smtp-server's own enhanced status codes are off (its default), so each
 * reply below carries the RFC 3463 code that fits it in its text.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import {
  SMTPServer,
  type SMTPServerAddress,
  type SMTPServerAuthentication,
  type SMTPServerDataStream,
  type SMTPServerSession,
} from 'smtp-server';
import type { Logger } from '../../log/logger.js';
import { asciiText } from '../../util/display-text.js';
import { AuthGuard } from '../listener/auth-guard.js';
import { isLoopbackAddress } from '../listener/cidr.js';
import type { ListenAddress, RelaySettings } from './config.js';
import type { RefusalReason, RelayMetrics } from './metrics.js';
import { type Admission, admitClient, decideSender } from './policy.js';
import type { Spool, SpoolEnvelope } from './spool.js';
import type { UserStore } from './users.js';

export interface SmtpListenerOptions {
  listener: ListenAddress;
  settings: RelaySettings;
  /** PEM certificate and key, when `relay.tls` is set. */
  tls?: { cert: Buffer; key: Buffer };
  users?: UserStore;
  spool: Spool;
  metrics: RelayMetrics;
  logger: Logger;
  hostname: string;
  /**
   * A message is committed to the spool (the client is about to hear 250);
   * `content` is its bytes when small enough to keep in memory.
   */
  onAccepted: (envelope: SpoolEnvelope, content?: Buffer) => void;
  /** State shared by the relay's listeners (limits count over all of them); one per listener when absent. */
  shared?: ListenerShared;
  /** True while no message could go upstream (the app's credential is refused): senders keep theirs. */
  refuseNewMail?: () => boolean;
}

/** What the listeners of one relay count together. */
export interface ListenerShared {
  guard: AuthGuard;
  /** Open connections per client address; the sum is the total. */
  clients: Map<string, number>;
}

export function sharedListenerState(settings: Pick<RelaySettings, 'authPenalty'>): ListenerShared {
  return { guard: new AuthGuard(settings.authPenalty), clients: new Map() };
}

export interface SmtpListener {
  /** Where it listens (the real port when 0 was asked for). */
  readonly host: string;
  readonly port: number;
  readonly implicitTls: boolean;
  /** Stops accepting connections; sessions in progress get until `timeoutMs` to finish. */
  close(timeoutMs: number): Promise<void>;
}

interface SessionState {
  admission: Admission;
  authFailures: number;
  /** Mailbox decided at MAIL FROM for the current transaction. */
  mailbox?: string;
  /** Cuts the session at relay.sessionTimeout. */
  deadline: NodeJS.Timeout;
}

/** After this many wrong passwords in one session the connection is closed (421). */
const MAX_AUTH_FAILURES = 3;

/** Whether AUTH is offered on a listener, and why not when it is not. */
export function authOffered(
  listener: ListenAddress,
  settings: Pick<RelaySettings, 'users' | 'tls' | 'allowPlaintextAuth'>,
): boolean {
  if (!settings.users) return false;
  // Passwords never cross a network in clear unless the operator asked for it.
  return (
    settings.tls !== undefined || isLoopbackAddress(listener.host) || settings.allowPlaintextAuth
  );
}

/** Whether AUTH waits for TLS on a listener: beyond loopback, unless the operator allowed plaintext. */
export function authNeedsTls(
  listener: ListenAddress,
  settings: Pick<RelaySettings, 'allowPlaintextAuth'>,
): boolean {
  return !isLoopbackAddress(listener.host) && !settings.allowPlaintextAuth;
}

/** Any character outside 7-bit ASCII: such an address needs SMTPUTF8 (RFC 6531). */
const EIGHT_BIT = /[\u0080-\uffff]/;

export async function startSmtpListener(options: SmtpListenerOptions): Promise<SmtpListener> {
  const { listener, settings, spool, metrics, logger } = options;
  const sessions = new Map<string, SessionState>();
  const { guard, clients } = options.shared ?? sharedListenerState(settings);
  const withAuth = authOffered(listener, settings) && options.users !== undefined;
  const disabled = [...(options.tls ? [] : ['STARTTLS']), ...(withAuth ? [] : ['AUTH'])];
  // Before TLS, EHLO must not offer AUTH where AUTH needs TLS: a client that sees it sends its password.
  const disabledBeforeTls = authNeedsTls(listener, settings) ? [...disabled, 'AUTH'] : disabled;
  const users = options.users;
  // Failed user names are logged as a keyed hash: a password typed as the name must not reach the log.
  const nameKey = randomBytes(32);
  const nameTag = (name: string) =>
    `unknown:${createHmac('sha256', nameKey).update(name).digest('hex').slice(0, 12)}`;
  const refuse = (reason: RefusalReason, message: string, fields: Record<string, unknown>) => {
    metrics.refuse(reason);
    logger.log('warn', message, { event: 'refused', reason, ...fields });
  };
  const connectionOf = (id: string) => [...server.connections].find((c) => c.id === id);

  const server = new SMTPServer({
    name: options.hostname,
    banner: 'mailbridge relay',
    secure: listener.implicitTls,
    ...(options.tls ? { key: options.tls.key, cert: options.tls.cert, minVersion: 'TLSv1.2' } : {}),
    size: settings.maxMessageSize,
    authMethods: ['PLAIN', 'LOGIN'],
    // Required or not is decided per client in onMailFrom (allowed networks need no AUTH).
    authOptional: true,
    // STARTTLS first, except where a password cannot leave the machine (loopback) or the operator allowed it.
    allowInsecureAuth: isLoopbackAddress(listener.host) || settings.allowPlaintextAuth,
    disabledCommands: disabled,
    disableReverseLookup: true,
    hideDSN: true,
    closeTimeout: settings.shutdownTimeout,
    logger: false,

    onConnect(session, callback) {
      const address = session.remoteAddress;
      const open = clients.get(address) ?? 0;
      let total = 0;
      for (const n of clients.values()) total += n;
      if (total >= settings.maxConnections) {
        refuse('connections', 'connection refused', {
          client: address,
          limit: settings.maxConnections,
        });
        callback(smtpError(421, '4.3.2 Too many connections, try again later'));
        return;
      }
      if (open >= settings.maxConnectionsPerAddress) {
        refuse('connections_per_address', 'connection refused', {
          client: address,
          limit: settings.maxConnectionsPerAddress,
        });
        callback(smtpError(421, `4.7.0 Too many connections from ${address}, try again later`));
        return;
      }
      const admission = admitClient(settings.allowNetworks, withAuth, address);
      if (admission === 'refuse') {
        refuse('network', 'connection refused', { client: address });
        callback(smtpError(554, `5.7.1 Access denied: ${address} may not use this relay`));
        return;
      }
      clients.set(address, open + 1);
      metrics.connections++;
      // A client trickling a byte now and then never meets the idle timeout; this it meets.
      const deadline = setTimeout(() => {
        refuse('session_timeout', 'session cut', {
          client: address,
          limit: settings.sessionTimeout,
        });
        const connection = connectionOf(session.id);
        connection?.send(
          421,
          `4.4.2 ${options.hostname} Session time limit exceeded, closing connection`,
        );
        connection?.close();
      }, settings.sessionTimeout);
      deadline.unref();
      sessions.set(session.id, { admission, authFailures: 0, deadline });
      if (!session.secure) session.disabledCommands = disabledBeforeTls;
      callback();
    },

    onSecure(_socket, session, callback) {
      session.disabledCommands = disabled;
      callback();
    },

    onClose(session) {
      const state = sessions.get(session.id);
      if (!state) return;
      clearTimeout(state.deadline);
      sessions.delete(session.id);
      const address = session.remoteAddress;
      const open = (clients.get(address) ?? 1) - 1;
      if (open > 0) clients.set(address, open);
      else clients.delete(address);
      metrics.connections--;
    },

    onAuth(auth: SMTPServerAuthentication, session, callback) {
      const state = sessions.get(session.id);
      if (!users || !state || (auth.method !== 'PLAIN' && auth.method !== 'LOGIN')) {
        callback(smtpError(504, '5.5.4 Unrecognized authentication type'));
        return;
      }
      const name = auth.username ?? '';
      const client = session.remoteAddress;
      const shownName = () => (users.knows(name) ? name : nameTag(name));
      const admitted = guard.admit(client, name);
      if (!admitted.ok) {
        refuse('auth_throttled', 'authentication refused', {
          client,
          user: shownName(),
          retryAfterMs: admitted.retryAfterMs,
        });
        callback(smtpError(421, '4.7.0 Too many failed logins from your address, try again later'));
        return;
      }
      const check = async () => {
        if (admitted.waitMs > 0) await new Promise((r) => setTimeout(r, admitted.waitMs));
        // A client that left while it waited or queued costs no check.
        return guard.run(admitted.rank, async () =>
          sessions.has(session.id) ? users.verify(name, auth.password ?? '') : undefined,
        );
      };
      check().then(
        (user) => {
          if (!sessions.has(session.id)) return;
          guard.record(client, name, user !== undefined);
          if (user) {
            logger.log('info', 'authenticated', {
              event: 'auth',
              user,
              client,
              method: auth.method,
            });
            callback(null, { user });
            return;
          }
          state.authFailures++;
          metrics.refuse('auth');
          logger.log('warn', 'authentication failed', {
            event: 'auth-failed',
            user: shownName(),
            client,
            method: auth.method,
            failures: state.authFailures,
          });
          callback(
            state.authFailures >= MAX_AUTH_FAILURES
              ? smtpError(421, '4.7.0 Too many authentication failures, closing connection')
              : smtpError(535, '5.7.8 Authentication credentials invalid'),
          );
        },
        (error: unknown) => {
          logger.log('error', 'authentication error', {
            event: 'auth-error',
            error: (error as Error).message,
          });
          callback(smtpError(454, '4.7.0 Temporary authentication failure'));
        },
      );
    },

    onMailFrom(address: SMTPServerAddress, session, callback) {
      const state = sessions.get(session.id);
      const user = typeof session.user === 'string' ? session.user : undefined;
      if (!state || (user === undefined && state.admission !== 'network')) {
        refuse('auth_required', 'sender refused', { client: session.remoteAddress });
        callback(smtpError(530, '5.7.0 Authentication required'));
        return;
      }
      if (EIGHT_BIT.test(address.address) && !session.envelope.smtpUtf8) {
        refuse('smtputf8', 'sender refused', { client: session.remoteAddress, user });
        callback(smtpError(553, needsSmtpUtf8(address.address)));
        return;
      }
      const decision = decideSender(
        settings.policy,
        { ...(user !== undefined ? { user } : {}), remoteAddress: session.remoteAddress },
        address.address,
      );
      if (!decision.ok) {
        refuse('policy', 'sender refused', {
          client: session.remoteAddress,
          user,
          from: asciiText(address.address, 254),
        });
        callback(smtpError(decision.responseCode, decision.message));
        return;
      }
      if (options.refuseNewMail?.()) {
        refuse('credential', 'sender refused', { client: session.remoteAddress });
        callback(
          smtpError(451, '4.3.2 The relay cannot submit mail upstream now, try again later'),
        );
        return;
      }
      state.mailbox = decision.mailbox;
      callback();
    },

    onRcptTo(address, session, callback) {
      if (EIGHT_BIT.test(address.address) && !session.envelope.smtpUtf8) {
        refuse('smtputf8', 'recipient refused', { client: session.remoteAddress });
        callback(smtpError(553, needsSmtpUtf8(address.address)));
        return;
      }
      if (session.envelope.rcptTo.length >= settings.maxRecipients) {
        metrics.refuse('recipients');
        callback(
          smtpError(
            452,
            `4.5.3 Too many recipients: at most ${settings.maxRecipients} per message, send the rest in another message`,
          ),
        );
        return;
      }
      callback();
    },

    onData(stream: SMTPServerDataStream, session: SMTPServerSession, callback) {
      const state = sessions.get(session.id);
      const mailFrom = session.envelope.mailFrom;
      if (!state?.mailbox || !mailFrom) {
        callback(smtpError(503, '5.5.1 Bad sequence of commands'));
        return;
      }
      const user = typeof session.user === 'string' ? session.user : undefined;
      const started = Date.now();
      spool
        .receive(stream, {
          from: mailFrom.address,
          to: session.envelope.rcptTo.map((r) => r.address),
          mailbox: state.mailbox,
          client: { address: session.remoteAddress, ...(user !== undefined ? { user } : {}) },
          maxBytes: settings.maxMessageSize,
        })
        .then(
          (result) => {
            if (!result.ok && result.reason === 'disconnected') {
              refuse('disconnected', 'client disconnected during DATA', {
                client: session.remoteAddress,
              });
              callback(smtpError(451, '4.4.2 Connection lost before the end of the message'));
              return;
            }
            if (!result.ok || stream.sizeExceeded) {
              refuse('size', 'message refused', {
                client: session.remoteAddress,
                size: result.ok ? result.envelope.size : result.bytes,
                limit: settings.maxMessageSize,
              });
              callback(
                smtpError(
                  552,
                  `5.3.4 Message size exceeds fixed maximum message size (${settings.maxMessageSize} bytes)`,
                ),
              );
              return;
            }
            const envelope = result.envelope;
            metrics.accepted++;
            metrics.acceptedBytes += envelope.size;
            logger.log('info', 'accepted', {
              event: 'accepted',
              id: envelope.id,
              messageId: envelope.messageId,
              messageIdAdded: envelope.messageIdAdded ? true : undefined,
              from: asciiText(envelope.from, 254) || '<>',
              recipients: envelope.to.length,
              mailbox: envelope.mailbox,
              size: envelope.size,
              client: session.remoteAddress,
              user,
              tls: session.secure,
              spoolMs: Date.now() - started,
            });
            options.onAccepted(envelope, result.content);
            callback(null, `2.0.0 Ok: queued as ${envelope.id}`);
          },
          (error: unknown) => {
            metrics.refuse('spool');
            logger.log('error', 'spool write failed', {
              event: 'spool-error',
              client: session.remoteAddress,
              error: (error as Error).message,
            });
            callback(smtpError(451, '4.3.0 Could not store the message, try again later'));
          },
        );
    },
  });

  server.on('error', (error) => {
    logger.log('error', 'smtp listener error', {
      event: 'listener-error',
      listen: listener.text,
      error: error.message,
    });
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.server.once('error', onError);
    server.listen(listener.port, listener.host, () => {
      server.server.off('error', onError);
      resolve();
    });
  });
  const bound = server.server.address() as AddressInfo;
  return {
    host: listener.host,
    port: bound.port,
    implicitTls: listener.implicitTls,
    close(timeoutMs) {
      return new Promise<void>((resolve) => {
        server.options.closeTimeout = timeoutMs;
        server.close(() => resolve());
      });
    },
  };
}

function smtpError(responseCode: number, message: string): Error & { responseCode: number } {
  return Object.assign(new Error(message), { responseCode });
}

function needsSmtpUtf8(address: string): string {
  return `5.6.7 Non-ASCII address <${asciiText(address, 254)}> needs SMTPUTF8: send MAIL FROM with the SMTPUTF8 parameter`;
}
