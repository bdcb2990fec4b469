/**
 * The relay's view of its one app credential: whether Entra ID issues tokens
 * for it now, and the token source every route (sending mailbox) uses.
 *
 * - Every token request of every route passes through here, so `/healthz`
 *   and the listeners know at once when tokens stop coming.
 * - After a failure, routes get the same failure without a new request until
 *   a back-off has passed: N queued mailboxes cost one token request per
 *   pause, not N.
 * - A forced refresh (a route's login was refused with 535) is made at most
 *   once per token, and never for a token that itself came from a forced
 *   refresh. The token is app-wide: once one route has refreshed it, a 535
 *   for another mailbox says nothing about it, and honouring every such
 *   request let each nonexistent sender-as-mailbox cost a token request per
 *   retry (198 forced refreshes for one message in 39 minutes).
 */
import type { AccessToken, GetTokenOptions, TokenProvider } from '../../auth/token-provider.js';
import { MailbridgeError, NetworkError } from '../../errors.js';
import { type Logger, silentLogger } from '../../log/logger.js';
import { type BackoffOptions, retryDelay } from './backoff.js';

export type CredentialStatus = 'ok' | 'refused' | 'unreachable';

export interface CredentialState {
  /**
   * `refused`: Entra ID refused the credential (a wrong or expired secret, a
   * disabled app…); only someone changing the setup helps. `unreachable`: no
   * answer, or a transient one; the relay keeps mail and tries again.
   */
  status: CredentialStatus;
  /** Our error code of the last failure (`SECRET_INVALID`, `AUTHORITY_UNREACHABLE`, …). */
  code?: string;
  /** ISO time of the first failure in a row. */
  since?: string;
}

export interface CredentialMonitorOptions {
  /** Wait between token requests while they fail. */
  backoff: BackoffOptions;
  logger?: Logger;
  now?: () => number;
}

/**
 * Longest pause between token requests while they fail: new mail is refused
 * meanwhile, so a fixed setup should be noticed within minutes, not after
 * `retryBackoff.max` (an hour by default). One request per 5 minutes is nothing to Entra.
 */
const MAX_PROBE_INTERVAL_MS = 5 * 60_000;

export class CredentialMonitor {
  private failure:
    | { error: unknown; status: CredentialStatus; code: string; since: number }
    | undefined;
  private failures = 0;
  private holdUntil = 0;
  private checking: Promise<unknown> | undefined;
  private probe: NodeJS.Timeout | undefined;
  private closed = false;
  /** The last token refreshed away by force, and the one that refresh produced. */
  private forcedAway: string | undefined;
  private forcedFresh: string | undefined;
  private readonly logger: Logger;
  private readonly now: () => number;
  /** The token source of the transports (one per route, i.e. sending mailbox). */
  readonly tokenProvider: TokenProvider;

  constructor(
    private readonly provider: TokenProvider,
    private readonly options: CredentialMonitorOptions,
  ) {
    this.logger = options.logger ?? silentLogger;
    this.now = options.now ?? Date.now;
    this.tokenProvider = {
      scope: provider.scope,
      getToken: (getOptions?: GetTokenOptions) => this.routeToken(getOptions),
    };
  }

  /** The error of the last failed token request, while requests fail. */
  get error(): unknown {
    return this.failure?.error;
  }

  get state(): CredentialState {
    if (!this.failure) return { status: 'ok' };
    return {
      status: this.failure.status,
      code: this.failure.code,
      since: new Date(this.failure.since).toISOString(),
    };
  }

  /**
   * Asks for a token now (at start-up, and as the probe while requests fail).
   * Resolves with the state; never rejects.
   */
  async check(): Promise<CredentialState> {
    this.checking ??= this.request(() => this.provider.getToken())
      .catch(() => undefined)
      .finally(() => {
        this.checking = undefined;
      });
    await this.checking;
    return this.state;
  }

  /**
   * Whether new mail should wait at the sender: only when Entra refuses the
   * credential (every route needs it). An unreachable Entra is what the spool
   * is for.
   */
  refusingMail(): boolean {
    return this.failure?.status === 'refused';
  }

  /** Stops the probes. */
  close(): void {
    this.closed = true;
    if (this.probe) clearTimeout(this.probe);
  }

  private async routeToken(options: GetTokenOptions = {}): Promise<AccessToken> {
    if (this.failure && this.now() < this.holdUntil) throw this.failure.error;
    const token = await this.request(() => this.provider.getToken());
    if (!options.forceRefresh) return token;
    if (token.accessToken === this.forcedAway || token.accessToken === this.forcedFresh) {
      this.logger.log('debug', 'forced token refresh not needed', { event: 'refresh-declined' });
      return token;
    }
    this.forcedAway = token.accessToken;
    const fresh = await this.request(() => this.provider.getToken({ forceRefresh: true }));
    this.forcedFresh = fresh.accessToken;
    return fresh;
  }

  private async request(get: () => Promise<AccessToken>): Promise<AccessToken> {
    try {
      const token = await get();
      if (this.failure) {
        this.logger.log('info', 'token requests work again', {
          event: 'credential-ok',
          after: this.failure.code,
        });
      }
      this.failure = undefined;
      this.failures = 0;
      if (this.probe) clearTimeout(this.probe);
      return token;
    } catch (error) {
      this.recordFailure(error);
      throw error;
    }
  }

  private recordFailure(error: unknown): void {
    const now = this.now();
    // Read before nodemailer gets the error: it overwrites `code` with its own EAUTH.
    const code = error instanceof MailbridgeError ? error.code : 'TOKEN_REQUEST_FAILED';
    const status: CredentialStatus = error instanceof NetworkError ? 'unreachable' : 'refused';
    if (this.failure?.code !== code) {
      this.logger.log(status === 'refused' ? 'error' : 'warn', 'token request failed', {
        event: 'credential-failed',
        status,
        code,
        error: error instanceof MailbridgeError ? error.message : undefined,
      });
    }
    this.failures++;
    this.failure = { error, status, code, since: this.failure?.since ?? now };
    const wait = Math.min(retryDelay(this.failures, this.options.backoff), MAX_PROBE_INTERVAL_MS);
    this.holdUntil = now + wait;
    // Ask again after the pause even with an empty queue (new mail is refused while
    // the credential is), so that a fixed setup or a returning Entra is noticed.
    if (this.probe) clearTimeout(this.probe);
    if (this.closed) return;
    this.probe = setTimeout(() => void this.check(), wait);
    this.probe.unref();
  }
}
