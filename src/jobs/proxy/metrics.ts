/**
 * The proxy's counters in the Prometheus text format (version 0.0.4).
 * Counts only: no user names, no addresses.
 */
import { type MetricSample, type MetricType, metricFamily } from '../../util/prometheus.js';
import type { ProxyProtocol } from './config.js';

/** How a login ended, as logged and counted. */
export const LOGIN_OUTCOMES = [
  'ok',
  /** Wrong password or unknown user: the client hears the same for both. */
  'refused',
  /** The login name asked for a mailbox not on the user's list. */
  'mailbox_refused',
  /** The address's failures already set a longer penalty: refused unchecked. */
  'throttled',
  /** proxy.maxConnectionsPerUser reached, or the mailbox's upstream connections. */
  'too_many',
  /** No token from Entra ID. */
  'token_failed',
  /** Exchange refused the app's login or could not be reached. */
  'upstream_refused',
] as const;

export type LoginOutcome = (typeof LOGIN_OUTCOMES)[number];

export class ProxyMetrics {
  readonly sessions: Record<ProxyProtocol, number> = { imap: 0, pop3: 0 };
  /** Client connections open, logged in or not. */
  connections = 0;
  /** Connections refused by network or connection limits. */
  connectionsRefused = 0;
  bytesFromClients = 0;
  bytesToClients = 0;
  readonly logins = new Map<LoginOutcome, number>();
  readonly upstreamErrors = new Map<string, number>();

  login(outcome: LoginOutcome): void {
    this.logins.set(outcome, (this.logins.get(outcome) ?? 0) + 1);
  }

  upstreamError(code: string): void {
    this.upstreamErrors.set(code, (this.upstreamErrors.get(code) ?? 0) + 1);
  }

  render(): string {
    const lines: string[] = [];
    const metric = (name: string, type: MetricType, help: string, samples: MetricSample[]) => {
      lines.push(...metricFamily(name, type, help, samples));
    };
    metric('mailbridge_proxy_connections', 'gauge', 'Client connections open.', [
      ['', this.connections],
    ]);
    metric(
      'mailbridge_proxy_sessions',
      'gauge',
      'Logged-in sessions relayed to Exchange, by protocol.',
      (['imap', 'pop3'] as const).map((p) => [`{protocol="${p}"}`, this.sessions[p]]),
    );
    metric(
      'mailbridge_proxy_connections_refused_total',
      'counter',
      'Connections refused by allowNetworks or a connection limit.',
      [['', this.connectionsRefused]],
    );
    metric(
      'mailbridge_proxy_logins_total',
      'counter',
      'Logins by outcome.',
      LOGIN_OUTCOMES.map((o) => [`{outcome="${o}"}`, this.logins.get(o) ?? 0]),
    );
    metric('mailbridge_proxy_bytes_total', 'counter', 'Bytes relayed, by direction.', [
      ['{direction="from_client"}', this.bytesFromClients],
      ['{direction="to_client"}', this.bytesToClients],
    ]);
    metric(
      'mailbridge_proxy_upstream_errors_total',
      'counter',
      'Upstream login failures, by diagnosis code.',
      [...this.upstreamErrors].map(([code, n]) => [`{code="${code}"}`, n]),
    );
    return `${lines.join('\n')}\n`;
  }
}
