/**
 * One client login, whatever the protocol: the local password check behind
 * the auth penalty, the mailbox the login name selects, the per-user and
 * per-mailbox caps, the app's token, the upstream login. The front turns the
 * outcome into its protocol's reply; this module logs it, one JSON line.
 *
 * The client learns only "refused": a wrong password, an unknown user and a
 * mailbox not on the user's list all read the same, and an unknown user costs
 * a password check too, so neither the reply nor its timing tells which.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { TokenProvider } from '../../auth/token-provider.js';
import { acquireConnectionSlot, connectionKey } from '../../clients/connection-limit.js';
import { replyLine } from '../../clients/diagnostics.js';
import type { Endpoint } from '../../config/types.js';
import type { Logger } from '../../log/logger.js';
import { asciiText } from '../../util/display-text.js';
import type { AuthGuard } from '../listener/auth-guard.js';
import { hashPassword, parsePasswordHash, verifyPassword } from '../listener/password.js';
import type { ProxyProtocol, ProxySettings, ProxyUser } from './config.js';
import type { LoginOutcome, ProxyMetrics } from './metrics.js';
import { loginUpstream, type UpstreamSession } from './upstream.js';
import {
  diagnoseUpstreamRefusal,
  type UpstreamDiagnosis,
  undiagnosedReason,
} from './upstream-diagnosis.js';

/** Exchange Online allows about 16-20 IMAP connections per mailbox: stay under it over all users. */
const CONNECTIONS_PER_MAILBOX = 16;
/** How long a login waits for one of the mailbox's connections to free. */
const MAILBOX_SLOT_WAIT_MS = 10_000;
const UPSTREAM_LOGIN_TIMEOUT_MS = 30_000;

export interface LoginContext {
  settings: ProxySettings;
  guard: AuthGuard;
  tokenProvider: TokenProvider;
  upstream: Record<ProxyProtocol, Endpoint>;
  extraCaCertificates?: readonly string[];
  metrics: ProxyMetrics;
  logger: Logger;
  /** Sessions open per local user. */
  sessionsPerUser: Map<string, number>;
  /** Token requests fail (for /healthz). */
  onTokenState(ok: boolean): void;
  /** Password checks of unknown users run against this, so they take as long. */
  decoy: Promise<ReturnType<typeof parsePasswordHash>>;
  /** Keys the tag of a failed user name: a password typed as the name must not reach the log. */
  nameKey: Buffer;
}

export type LoginResult =
  | {
      ok: true;
      session: UpstreamSession;
      user: string;
      mailbox: string;
      /** Gives back the user's and the mailbox's places; call once the session ends. */
      release: () => void;
    }
  | { ok: false; outcome: Exclude<LoginOutcome, 'ok'>; reason: string };

export function loginContextParts(): Pick<LoginContext, 'decoy' | 'nameKey'> {
  return {
    decoy: hashPassword(randomBytes(16).toString('hex')).then(parsePasswordHash),
    nameKey: randomBytes(32),
  };
}

export async function login(
  context: LoginContext,
  request: { protocol: ProxyProtocol; client: string; loginName: string; password: string },
): Promise<LoginResult> {
  const started = Date.now();
  const result = await attempt(context, request);
  const { outcome, user, mailbox, diagnosis } = result;
  context.metrics.login(outcome);
  context.logger.log(outcome === 'ok' ? 'info' : 'warn', 'login', {
    event: 'login',
    protocol: request.protocol,
    user,
    mailbox,
    client: request.client,
    outcome,
    ms: Date.now() - started,
    ...(diagnosis ? { diagnosis: diagnosis.code, reply: diagnosis.reply, fix: diagnosis.fix } : {}),
    ...(result.error ? { error: asciiText(result.error, 300) } : {}),
  });
  return result.login;
}

interface Attempt {
  login: LoginResult;
  outcome: LoginOutcome;
  user: string;
  mailbox?: string;
  diagnosis?: UpstreamDiagnosis;
  error?: string;
}

async function attempt(
  context: LoginContext,
  request: { protocol: ProxyProtocol; client: string; loginName: string; password: string },
): Promise<Attempt> {
  const { settings, guard } = context;
  const hash = request.loginName.indexOf('#');
  const name = hash === -1 ? request.loginName : request.loginName.slice(0, hash);
  const asked =
    hash === -1
      ? undefined
      : request.loginName
          .slice(hash + 1)
          .trim()
          .toLowerCase();
  const known = settings.users.find((u) => u.name === name);
  const shown = known
    ? asciiText(name, 128)
    : `unknown:${createHmac('sha256', context.nameKey).update(name).digest('hex').slice(0, 12)}`;
  const fail = (
    outcome: Exclude<LoginOutcome, 'ok'>,
    reason: string,
    extra: Partial<Attempt> = {},
  ): Attempt => ({ login: { ok: false, outcome, reason }, outcome, user: shown, ...extra });

  const admitted = guard.admit(request.client, name);
  if (!admitted.ok) return fail('throttled', 'Too many failed logins, try again later');
  if (admitted.waitMs > 0) await new Promise((r) => setTimeout(r, admitted.waitMs));
  const user = await guard.run(admitted.rank, () =>
    checkPassword(context, known, request.password),
  );
  guard.record(request.client, name, user !== undefined);
  if (!user) return fail('refused', 'Authentication failed');

  const mailbox = asked ?? (user.mailboxes[0] as string);
  if (!user.mailboxes.includes(mailbox)) {
    return fail('mailbox_refused', 'Authentication failed', { mailbox: asciiText(mailbox, 254) });
  }
  const open = context.sessionsPerUser.get(user.name) ?? 0;
  if (open >= settings.maxConnectionsPerUser) {
    return fail('too_many', 'Too many sessions for this user', { mailbox });
  }
  context.sessionsPerUser.set(user.name, open + 1);
  let releaseSlot: (() => void) | undefined;
  const releaseUser = () => {
    const now = (context.sessionsPerUser.get(user.name) ?? 1) - 1;
    if (now > 0) context.sessionsPerUser.set(user.name, now);
    else context.sessionsPerUser.delete(user.name);
  };
  const release = () => {
    releaseUser();
    releaseSlot?.();
  };
  try {
    const endpoint = context.upstream[request.protocol];
    releaseSlot = await mailboxSlot(connectionKey(endpoint.host, endpoint.port, mailbox));
    if (!releaseSlot) {
      release();
      return fail('too_many', 'Too many sessions for this mailbox', { mailbox });
    }
    // A refused token is asked for again once: Exchange may have ended its life early.
    for (const forceRefresh of [false, true]) {
      let accessToken: string;
      try {
        accessToken = (await context.tokenProvider.getToken({ forceRefresh })).accessToken;
        context.onTokenState(true);
      } catch (error) {
        context.onTokenState(false);
        release();
        return fail('token_failed', 'The proxy cannot sign in to the mail service now', {
          mailbox,
          error: (error as Error).message,
        });
      }
      const upstream = await loginUpstream(request.protocol, {
        endpoint,
        ...(context.extraCaCertificates
          ? { extraCaCertificates: context.extraCaCertificates }
          : {}),
        mailbox,
        accessToken,
        timeoutMs: UPSTREAM_LOGIN_TIMEOUT_MS,
      });
      if (upstream.ok) {
        return {
          login: { ok: true, session: upstream.session, user: user.name, mailbox, release },
          outcome: 'ok',
          user: shown,
          mailbox,
        };
      }
      const diagnosis = upstream.reply
        ? diagnoseUpstreamRefusal(request.protocol, upstream.reply)
        : undefined;
      context.metrics.upstreamError(diagnosis?.code ?? (upstream.reply ? 'REFUSED' : 'NETWORK'));
      if (forceRefresh || !upstream.reply) {
        release();
        const reply = upstream.reply ? replyLine(upstream.reply, 200) : undefined;
        const reason = diagnosis?.clientReason ?? undiagnosedReason(upstream.reply !== undefined);
        return fail('upstream_refused', reason, {
          mailbox,
          ...(diagnosis ? { diagnosis } : {}),
          ...(reply && !diagnosis ? { error: `upstream reply: ${reply}` } : {}),
          ...(upstream.error ? { error: upstream.error.message } : {}),
        });
      }
    }
  } catch (error) {
    release();
    throw error;
  }
  release();
  return fail('upstream_refused', 'The mail service refused the login');
}

async function checkPassword(
  context: LoginContext,
  user: ProxyUser | undefined,
  password: string,
): Promise<ProxyUser | undefined> {
  if (!user) {
    const decoy = await context.decoy;
    if (decoy.ok) await verifyPassword(password, decoy.value);
    return undefined;
  }
  return (await verifyPassword(password, user.hash)) ? user : undefined;
}

/** A place among the mailbox's upstream connections, or `undefined` when none frees in time. */
async function mailboxSlot(key: string): Promise<(() => void) | undefined> {
  const slot = acquireConnectionSlot(key, CONNECTIONS_PER_MAILBOX);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), MAILBOX_SLOT_WAIT_MS);
  });
  const won = await Promise.race([slot, timeout]);
  clearTimeout(timer);
  // The place came too late: give it back as soon as it comes.
  if (!won) void slot.then((release) => release());
  return won;
}
