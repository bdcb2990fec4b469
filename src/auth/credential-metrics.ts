/**
 * The app credential's state as Prometheus metrics, for every long-running
 * job that serves `/metrics` (the relay, the proxy):
 *
 * - `mailbridge_credential_expiry_timestamp_seconds`: when the credential
 *   stops working, where this machine knows it (a certificate's notAfter);
 *   absent otherwise, rather than a made-up value an alert would fire on;
 * - `mailbridge_token_failures_total{reason}`: failed token requests by our
 *   error code (`SECRET_EXPIRED`, `AUTHORITY_UNREACHABLE`, …).
 */
import type { Credential } from '../config/types.js';
import { MailbridgeError } from '../errors.js';
import { metricFamily } from '../util/prometheus.js';
import { credentialExpiresOn } from './credential-expiry.js';
import type { GetTokenOptions, TokenProvider } from './token-provider.js';

export class CredentialMetrics {
  private readonly failures = new Map<string, number>();
  /** Callers that shared one failed request get the same error: it is counted once. */
  private readonly counted = new WeakSet<object>();

  constructor(private readonly credential: Credential) {}

  /** `provider`, with each failed token request counted by its error code. */
  observe(provider: TokenProvider): TokenProvider {
    return {
      scope: provider.scope,
      getToken: (options?: GetTokenOptions) =>
        provider.getToken(options).catch((error: unknown) => {
          this.recordFailure(error);
          throw error;
        }),
    };
  }

  recordFailure(error: unknown): void {
    if (typeof error === 'object' && error !== null) {
      if (this.counted.has(error)) return;
      this.counted.add(error);
    }
    const reason = error instanceof MailbridgeError ? error.code : 'TOKEN_REQUEST_FAILED';
    this.failures.set(reason, (this.failures.get(reason) ?? 0) + 1);
  }

  /** The metrics in the Prometheus text format (0.0.4), ending with a newline. */
  render(): string {
    const lines: string[] = [];
    const expiresOn = credentialExpiresOn(this.credential);
    if (expiresOn) {
      const thumbprint =
        this.credential.kind === 'certificate'
          ? `,thumbprint="${this.credential.thumbprintSha1}"`
          : '';
      lines.push(
        ...metricFamily(
          'mailbridge_credential_expiry_timestamp_seconds',
          'gauge',
          'When the app credential expires (a certificate: its notAfter), Unix time.',
          [
            [
              `{kind="${this.credential.kind}"${thumbprint}}`,
              Math.floor(expiresOn.getTime() / 1000),
            ],
          ],
        ),
      );
    }
    const failures = [...this.failures].sort(([a], [b]) => a.localeCompare(b));
    lines.push(
      ...metricFamily(
        'mailbridge_token_failures_total',
        'counter',
        'Token requests that failed, by error code.',
        failures.map(([reason, count]) => [`{reason="${reason}"}`, count]),
      ),
    );
    return `${lines.join('\n')}\n`;
  }
}
