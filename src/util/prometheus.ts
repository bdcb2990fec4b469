/**
 * The Prometheus text exposition format (version 0.0.4), for every job that
 * serves `/metrics` (relay, proxy) and the credential metrics they share.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram';

/** `[labels, value]`, labels written out (`{reason="auth"}`) or empty. */
export type MetricSample = readonly [labels: string, value: number];

/** One metric family: its HELP and TYPE lines, then one line per sample. */
export function metricFamily(
  name: string,
  type: MetricType,
  help: string,
  samples: readonly MetricSample[],
): string[] {
  return [
    `# HELP ${name} ${help}`,
    `# TYPE ${name} ${type}`,
    ...samples.map(([labels, value]) => `${name}${labels} ${metricNumber(value)}`),
  ];
}

/** Integers as they are, fractions to at most six places without trailing zeros. */
export function metricNumber(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(6).replace(/0+$/, '');
}
