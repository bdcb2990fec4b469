/**
 * SMTP submission for a sandbox that runs without root, where Postfix cannot
 * (its master starts as root): `smtp-server` on loopback with STARTTLS and
 * AUTH XOAUTH2 only, handing each accepted message to Dovecot over LMTP, so
 * what is sent can be read back over IMAP. It answers as Exchange Online
 * does: `535 5.7.3 Authentication unsuccessful` for a token without
 * `SMTP.SendAsApp` or for a mailbox the app was not granted, and the envelope
 * sender must be the mailbox that logged in.
 */
import type { AddressInfo } from 'node:net';
import nodemailer from 'nodemailer';
import { SMTPServer, type SMTPServerAuthentication } from 'smtp-server';

export interface SubmissionServerOptions {
  port: number;
  tls: { key: string; cert: string };
  /** Why `accessToken` may not send as `mailbox`, or undefined when it may. */
  refusal(accessToken: string, mailbox: string): Promise<string | undefined>;
  /** Replies given at MAIL FROM to these senders instead of accepting them (`535 5.7.139 …`). */
  senderReplies?: Readonly<Record<string, string>>;
  lmtp: { host: string; port: number };
  /** Where refusals are written, as Postfix writes its log. */
  log(line: string): void;
}

export interface SubmissionServer {
  readonly port: number;
  /** The next `count` commands of `stage` are answered with `reply` (`451 4.3.2 …`). */
  replyNext(count: number, stage: SubmissionStage, reply: string): void;
  /** Forgets the replies replyNext set that were not given yet. */
  clearReplies(): void;
  close(): Promise<void>;
}

export type SubmissionStage = 'auth' | 'mail';

/** Exchange Online's words for every refused login. */
const AUTH_REFUSED = '5.7.3 Authentication unsuccessful [sandbox.mailbridge.test]';

export async function startSubmissionServer(
  options: SubmissionServerOptions,
): Promise<SubmissionServer> {
  const faults: { stage: SubmissionStage; remaining: number; reply: string }[] = [];
  const takeFault = (stage: SubmissionStage): Error | undefined => {
    const fault = faults.find((f) => f.stage === stage && f.remaining > 0);
    if (!fault) return undefined;
    fault.remaining--;
    return replyError(fault.reply);
  };
  const lmtp = nodemailer.createTransport({
    lmtp: true,
    host: options.lmtp.host,
    port: options.lmtp.port,
    ignoreTLS: true,
  });
  const server = new SMTPServer({
    name: 'sandbox.mailbridge.test',
    key: options.tls.key,
    cert: options.tls.cert,
    authMethods: ['XOAUTH2'],
    // AUTH only after STARTTLS, as on smtp.office365.com.
    allowInsecureAuth: false,
    size: 35 * 1024 * 1024,
    logger: false,
    onAuth(auth: SMTPServerAuthentication, _session, callback) {
      const fault = takeFault('auth');
      if (fault) return callback(fault);
      const { accessToken: token, username } = auth;
      if (auth.method !== 'XOAUTH2' || !token || !username) {
        return callback(replyError(`535 ${AUTH_REFUSED}`));
      }
      options.refusal(token, username).then(
        (why) => {
          if (why === undefined) return callback(null, { user: username.toLowerCase() });
          options.log(`submission: login as ${username} refused: ${why}`);
          callback(replyError(`535 ${AUTH_REFUSED}`));
        },
        (err: Error) => callback(replyError(`454 4.7.0 Temporary authentication failure`, err)),
      );
    },
    onMailFrom(address, session, callback) {
      if (!session.user) return callback(replyError('530 5.7.57 Client not authenticated'));
      const fault = takeFault('mail');
      if (fault) return callback(fault);
      const sender = address.address.toLowerCase();
      const reply = options.senderReplies?.[sender];
      if (reply !== undefined) return callback(replyError(reply));
      if (sender !== session.user) {
        return callback(
          replyError(
            `554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException; cannot send as ${sender}`,
          ),
        );
      }
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const from = session.envelope.mailFrom;
        lmtp
          .sendMail({
            envelope: {
              from: from ? from.address : '',
              to: session.envelope.rcptTo.map((r) => r.address),
            },
            raw: Buffer.concat(chunks),
          })
          .then(
            () => callback(),
            (err: Error) => callback(replyError('451 4.3.0 Delivery into the mailbox failed', err)),
          );
      });
    },
  });
  server.on('error', (err) => options.log(`submission: ${err.message}`));
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => resolve());
  });
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    replyNext(count, stage, reply) {
      replyError(reply);
      faults.push({ stage, remaining: count, reply });
    },
    clearReplies() {
      faults.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        lmtp.close();
        server.close(() => resolve());
      }),
  };
}

/** An smtp-server error answering `reply` (`NNN text`). */
function replyError(reply: string, cause?: Error): Error & { responseCode: number } {
  const match = /^([245]\d\d)[ -](.+)$/s.exec(reply);
  if (!match || /[\r\n]/.test(reply)) {
    throw new Error(`an SMTP reply is a three-digit code and one line of text: ${reply}`);
  }
  return Object.assign(new Error(match[2], cause ? { cause } : undefined), {
    responseCode: Number(match[1]),
  });
}
