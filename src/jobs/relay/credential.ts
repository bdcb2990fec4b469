/**
 * The relay's view of its one app credential: whether Entra ID issues tokens
 * for it now, and the token source every route (sending mailbox) uses.
 *
 * - Every token request of every route passes through here, so `/healthz`
 *   and the listeners know at once when tokens stop coming.
 * - After a failure, routes get the same failure without a new request until
 *   a back-off has passed: N queued mailboxes cost one token request per
 *   pause, not N.
 * - A forced refresh (a route's login was refused with 535) is honoured at
 *   most once per token, and never for a token that itself came from a
 *   forced refresh. The token is app-wide: a 535 for one mailbox says nothing
 *   about a token that is as fresh as it gets, and honouring every such
 *   refresh let each nonexistent sender-as-mailbox cost a token request per
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

export class CredentialMonitor {
  private failure:
    | { error: unknown; status: CredentialStatus; code: string; since: number }
    | undefined;
  private failures = 0;
  private holdUntil = 0;
  private checking: Promise<unknown> | undefined;
  private probe: NodeJS.Timeout | undefined;
  private closed = false;
  /** The token each route last got. */
  private readonly held = new Map<string, string>();
  /** Tokens already refreshed away by force, and the one a forced refresh produced. */
  private readonly forcedAway = new Set<string>();
  private forcedFresh: string | undefined;
  private readonly logger: Logger;
  private readonly now: () => number;
  /** Forced refreshes asked for and not made (for logs and tests). */
  refreshesDeclined = 0;

  constructor(
    private readonly provider: TokenProvider,
    private readonly options: CredentialMonitorOptions,
  ) {
    this.logger = options.logger ?? silentLogger;
    this.now = options.now ?? Date.now;
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
   * Asks for a token now (start-up, and probes while mail is refused).
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

  /** The token source of one route (sending mailbox). */
  forRoute(route: string): TokenProvider {
    return {
      scope: this.provider.scope,
      getToken: (options?: GetTokenOptions) => this.routeToken(route, options),
    };
  }

  private async routeToken(route: string, options: GetTokenOptions = {}): Promise<AccessToken> {
    if (this.failure && this.now() < this.holdUntil) throw this.failure.error;
    let token = await this.request(() => this.provider.getToken());
    if (options.forceRefresh) {
      const mayForce =
        this.held.get(route) === token.accessToken &&
        !this.forcedAway.has(token.accessToken) &&
        token.accessToken !== this.forcedFresh;
      if (mayForce) {
        this.forcedAway.add(token.accessToken);
        token = await this.request(() => this.provider.getToken({ forceRefresh: true }));
        this.forcedFresh = token.accessToken;
        // Only the latest tokens can be held by anyone: forget older ones.
        if (this.forcedAway.size > 16) this.forcedAway.clear();
      } else {
        this.refreshesDeclined++;
        this.logger.log('debug', 'forced token refresh not needed', { event: 'refresh-declined' });
      }
    }
    this.held.set(route, token.accessToken);
    return token;
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
    const wait = retryDelay(this.failures, this.options.backoff);
    this.holdUntil = now + wait;
    // Ask again after the pause even with an empty queue (new mail is refused while
    // the credential is), so that a fixed setup or a returning Entra is noticed.
    if (this.probe) clearTimeout(this.probe);
    if (this.closed) return;
    this.probe = setTimeout(() => void this.check(), wait);
    this.probe.unref();
  }
}
