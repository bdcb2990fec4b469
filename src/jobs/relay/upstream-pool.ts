/**
 * The relay's connections to one upstream mailbox (or the HVE account): up to
 * `maxConnections` of nodemailer's SMTPConnection, kept open between messages
 * and replaced after `maxMessages`, each sending the spooled bytes as they are.
 *
 * Not nodemailer's pooled transport: for every message it builds a MIME tree
 * around the raw bytes, a random Message-ID nobody reads and a chain of
 * transform streams, and hands connections on through timers; for a relay
 * that only passes spooled bytes on, that cost about 1 ms of CPU per message
 * of the 4-5 it spent in all (bench/README.md, relay). SMTPConnection is the
 * same protocol code the pool runs (pipelining, dot-stuffing, STARTTLS,
 * XOAUTH2), driven directly.
 *
 * What the pool did that still matters is kept: a connection the server
 * closed while idle is not reused, and a message it failed on before a byte
 * of the message went out goes again on a new connection, once (so an idle
 * timeout on Exchange's side costs no deferral); a refused envelope or
 * message leaves the connection usable after RSET.
 */
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type Mail from 'nodemailer/lib/mailer/index.js';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import XOAuth2 from 'nodemailer/lib/xoauth2/index.js';
import type { TokenProvider } from '../../auth/token-provider.js';
import {
  type SmtpTransportOptions,
  smtpConnectionOptions,
  submissionRunner,
} from '../../clients/smtp-transport.js';
import type { MailbridgeConfig } from '../../config/types.js';
import type { Logger } from '../../log/logger.js';
import type { DeliveryTransport } from './delivery.js';

export interface UpstreamPoolOptions
  extends Required<Pick<SmtpTransportOptions, 'maxConnections' | 'maxMessages'>> {
  from: string;
  tokenProvider: TokenProvider;
  logger: Logger;
  rateLimitPerMinute: number | false;
}

interface Upstream {
  connection: SMTPConnection;
  sent: number;
  /** The server or the network ended it: never handed out again. */
  gone: boolean;
}

type SendInfo = Awaited<ReturnType<DeliveryTransport['sendMail']>>;

/** Failures of the connection rather than replies about the message (nodemailer's own rule). */
const TRANSIENT = new Set(['ECONNECTION', 'ESOCKET', 'ETIMEDOUT']);

/**
 * nodemailer's code for a lost connection, given to the pool's own "closed"
 * failures so that the relay's backoff classifies them like nodemailer's.
 * It is nodemailer's vocabulary, not one of our registered codes.
 */
const CONNECTION_LOST = 'ECONNECTION';

export function createUpstreamPool(
  config: MailbridgeConfig,
  options: UpstreamPoolOptions,
): DeliveryTransport {
  const connectionOptions = smtpConnectionOptions(config, options.from, options.tokenProvider);
  const { auth, ...rest } = connectionOptions;
  const submit = submissionRunner(config, options);
  const idle: Upstream[] = [];
  /** Callers waiting for a connection to come free (or for room to open one). */
  const waiting: (() => void)[] = [];
  let opened = 0;
  let closed = false;

  const wakeOne = () => waiting.shift()?.();

  const connect = async (): Promise<Upstream> => {
    const connection = new SMTPConnection(rest);
    const upstream: Upstream = { connection, sent: 0, gone: false };
    // Errors of an open connection also reach the send callback; these keep them from going
    // unhandled while it idles, and take it out of the idle list.
    const end = () => {
      upstream.gone = true;
      const at = idle.indexOf(upstream);
      if (at !== -1) {
        idle.splice(at, 1);
        drop(upstream);
      }
    };
    connection.on('error', end).on('end', end);
    // Until logged in, a failure comes as an event, not through the callbacks.
    let fail: (error?: Error) => void = () => {};
    const failed = new Promise<never>((_, reject) => {
      fail = (error) =>
        reject(error ?? Object.assign(new Error('Connection closed'), { code: CONNECTION_LOST }));
    });
    failed.catch(() => {});
    const onError = (error: Error) => fail(error);
    const onEnd = () => fail();
    connection.once('error', onError).once('end', onEnd);
    try {
      await Promise.race([
        failed,
        new Promise<void>((resolve, reject) => {
          connection.connect((error) => (error ? reject(error) : resolve()));
        }),
      ]);
      await Promise.race([
        failed,
        new Promise<void>((resolve, reject) => {
          connection.login({ ...auth, oauth2: new XOAuth2(auth, false) }, (error) =>
            error ? reject(error) : resolve(),
          );
        }),
      ]);
    } catch (error) {
      upstream.gone = true;
      connection.close();
      throw error;
    } finally {
      connection.off('error', onError).off('end', onEnd);
    }
    return upstream;
  };

  const drop = (upstream: Upstream) => {
    const alive = !upstream.gone;
    upstream.gone = true;
    opened--;
    if (alive) upstream.connection.quit();
    else upstream.connection.close();
    wakeOne();
  };

  const acquire = async (): Promise<{ upstream: Upstream; reused: boolean }> => {
    for (;;) {
      if (closed)
        throw Object.assign(new Error('The relay is stopping'), { code: CONNECTION_LOST });
      const upstream = idle.pop();
      if (upstream) return { upstream, reused: true };
      if (opened < options.maxConnections) {
        opened++;
        try {
          return { upstream: await connect(), reused: false };
        } catch (error) {
          opened--;
          wakeOne();
          throw error;
        }
      }
      await new Promise<void>((resolve) => waiting.push(resolve));
    }
  };

  const release = (upstream: Upstream) => {
    if (upstream.gone || closed || upstream.sent >= options.maxMessages) {
      drop(upstream);
      return;
    }
    idle.push(upstream);
    wakeOne();
  };

  /** After a refused envelope or message the session is reset, not thrown away. */
  const settleAfter = (upstream: Upstream, error: { code?: string; responseCode?: number }) => {
    const refused =
      (error.code === 'EENVELOPE' || error.code === 'EMESSAGE') && error.responseCode !== 421;
    if (!refused || upstream.gone) {
      drop(upstream);
      return;
    }
    upstream.connection.reset((resetError) => {
      if (resetError) drop(upstream);
      else release(upstream);
    });
  };

  const sendOnce = async (
    envelope: { from: string; to: string[] },
    content: () => Promise<Readable>,
  ): Promise<{ info?: SendInfo; error?: unknown; retry: boolean }> => {
    const message = await content();
    const { upstream, reused } = await acquire().catch((error: unknown) => {
      message.destroy();
      throw error;
    });
    try {
      const info = await new Promise<SendInfo>((resolve, reject) => {
        upstream.connection.send(envelope, message, (error, result) =>
          error ? reject(error) : resolve(result as SendInfo),
        );
      });
      upstream.sent++;
      release(upstream);
      return { info, retry: false };
    } catch (error) {
      upstream.sent++;
      settleAfter(upstream, error as { code?: string });
      message.destroy();
      const code = (error as { code?: string; responseCode?: number }).code ?? '';
      const unsent = message.readableDidRead === false;
      const transient =
        TRANSIENT.has(code) || (error as { responseCode?: number }).responseCode === 421;
      return { error, retry: reused && unsent && transient };
    }
  };

  return {
    sendMail(mail: Mail.Options) {
      const envelope = mail.envelope as { from: string; to: string[] };
      const raw = mail.raw;
      // The spooled file is opened before a connection is taken: a file that is gone is the
      // message's failure (ENOENT), not the connection's.
      const content = async (): Promise<Readable> => {
        if (Buffer.isBuffer(raw)) return Readable.from([raw]);
        const handle = await open((raw as { path: string }).path, 'r');
        return handle.createReadStream();
      };
      return submit(async () => {
        let attempt = await sendOnce(envelope, content);
        // A connection the server had closed while it idled: the message never left, so it
        // goes once more on a new connection instead of waiting out a deferral.
        if (attempt.retry) attempt = await sendOnce(envelope, content);
        if (attempt.error !== undefined) throw attempt.error;
        return attempt.info as SendInfo;
      });
    },
    close() {
      closed = true;
      for (const upstream of idle.splice(0)) drop(upstream);
      for (const wake of waiting.splice(0)) wake();
    },
  };
}
