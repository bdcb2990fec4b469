/**
 * The relay's counters, rendered in the Prometheus text exposition format
 * (version 0.0.4). Counts only: no addresses, no subjects.
 */
import {
  type MetricSample,
  type MetricType,
  metricFamily,
  metricNumber,
} from '../../util/prometheus.js';

/** Delivery latency buckets, seconds: from a fast LAN hop to a day of retries. */
export const LATENCY_BUCKETS = [
  0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400,
];

/** Why a client was refused, in the order `render` lists them. */
export const REFUSAL_REASONS = [
  'network',
  'auth',
  /** An AUTH refused unchecked: the address's failures already set a longer penalty. */
  'auth_throttled',
  'auth_required',
  'policy',
  /** A non-ASCII address without SMTPUTF8. */
  'smtputf8',
  'size',
  'recipients',
  'spool',
  /** relay.maxConnections reached. */
  'connections',
  /** relay.maxConnectionsPerAddress reached. */
  'connections_per_address',
  /** relay.sessionTimeout passed: the session was cut. */
  'session_timeout',
  /** The app's credential is refused: no message could go upstream. */
  'credential',
  /** The client went away during DATA: nothing of it was kept. */
  'disconnected',
] as const;

export type RefusalReason = (typeof REFUSAL_REASONS)[number];

export class RelayMetrics {
  accepted = 0;
  acceptedBytes = 0;
  delivered = 0;
  deferred = 0;
  failed = 0;
  bounces = 0;
  /** SMTP connections open now (kept by the listeners). */
  connections = 0;
  readonly refused = new Map<RefusalReason, number>();
  private readonly buckets = new Array<number>(LATENCY_BUCKETS.length).fill(0);
  private latencyCount = 0;
  private latencySum = 0;

  constructor(
    private readonly gauges: {
      queueDepth: () => number;
      inFlight: () => number;
      dead: () => number;
    },
  ) {}

  refuse(reason: RefusalReason): void {
    this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1);
  }

  /** Time from acceptance (250 to the client) to Exchange's 250, in ms. */
  observeLatency(ms: number): void {
    const seconds = Math.max(0, ms) / 1000;
    this.latencyCount++;
    this.latencySum += seconds;
    LATENCY_BUCKETS.forEach((bound, i) => {
      if (seconds <= bound) this.buckets[i] = (this.buckets[i] as number) + 1;
    });
  }

  render(): string {
    const lines: string[] = [];
    const metric = (name: string, type: MetricType, help: string, samples: MetricSample[]) => {
      lines.push(...metricFamily(name, type, help, samples));
    };
    metric('mailbridge_relay_queue_depth', 'gauge', 'Messages in the spool queue.', [
      ['', this.gauges.queueDepth()],
    ]);
    metric('mailbridge_relay_in_flight', 'gauge', 'Deliveries to Exchange in progress.', [
      ['', this.gauges.inFlight()],
    ]);
    metric('mailbridge_relay_dead_letters', 'gauge', 'Messages in the dead folder.', [
      ['', this.gauges.dead()],
    ]);
    metric(
      'mailbridge_relay_accepted_total',
      'counter',
      'Messages accepted (spooled and acknowledged with 250).',
      [['', this.accepted]],
    );
    metric('mailbridge_relay_accepted_bytes_total', 'counter', 'Bytes of accepted messages.', [
      ['', this.acceptedBytes],
    ]);
    metric(
      'mailbridge_relay_delivered_total',
      'counter',
      'Messages Exchange accepted for every recipient.',
      [['', this.delivered]],
    );
    metric(
      'mailbridge_relay_deferred_total',
      'counter',
      'Delivery attempts that failed temporarily and will be retried.',
      [['', this.deferred]],
    );
    metric(
      'mailbridge_relay_failed_total',
      'counter',
      'Messages moved to the dead folder (permanent failure or retry time exhausted).',
      [['', this.failed]],
    );
    metric('mailbridge_relay_bounces_total', 'counter', 'Bounce messages queued to senders.', [
      ['', this.bounces],
    ]);
    metric('mailbridge_relay_connections', 'gauge', 'SMTP client connections open.', [
      ['', this.connections],
    ]);
    metric(
      'mailbridge_relay_refused_total',
      'counter',
      'SMTP transactions refused, by reason.',
      REFUSAL_REASONS.map((reason) => [`{reason="${reason}"}`, this.refused.get(reason) ?? 0]),
    );
    lines.push(
      '# HELP mailbridge_relay_delivery_latency_seconds Time from acceptance to delivery to Exchange.',
      '# TYPE mailbridge_relay_delivery_latency_seconds histogram',
    );
    LATENCY_BUCKETS.forEach((bound, i) => {
      lines.push(
        `mailbridge_relay_delivery_latency_seconds_bucket{le="${bound}"} ${this.buckets[i]}`,
      );
    });
    lines.push(
      `mailbridge_relay_delivery_latency_seconds_bucket{le="+Inf"} ${this.latencyCount}`,
      `mailbridge_relay_delivery_latency_seconds_sum ${metricNumber(this.latencySum)}`,
      `mailbridge_relay_delivery_latency_seconds_count ${this.latencyCount}`,
    );
    return `${lines.join('\n')}\n`;
  }
}
