import { isIP } from 'node:net';
import * as tls from 'node:tls';

/**
 * SNI server name for a host. RFC 6066 forbids IP addresses in SNI (Node warns,
 * DEP0123); certificate checks still use the host, IP addresses included.
 */
export function sniName(host: string): string | undefined {
  return isIP(host) === 0 ? host : undefined;
}

/** `{ servername }` for TLS options, or nothing for an IP address. */
export function servername(host: string): { servername?: string } {
  const name = sniName(host);
  return name ? { servername: name } : {};
}

/**
 * `{ ca }` for TLS options that trusts Node's default CAs plus `extra`, or
 * nothing when there is nothing extra, which leaves Node's default as it is.
 * A `ca` option replaces Node's trust store instead of adding to it, so the
 * default certificates are listed again: Node 22.15+ returns them (bundled,
 * NODE_EXTRA_CA_CERTS, system) from `getCACertificates`; on Node 20 they are
 * the bundled ones, and the caller adds NODE_EXTRA_CA_CERTS's itself.
 */
export function trustOptions(extra: readonly string[] | undefined): { ca?: string[] } {
  if (!extra || extra.length === 0) return {};
  let ca = combined.get(extra);
  if (!ca) {
    ca = [...defaultCaCertificates(), ...extra];
    combined.set(extra, ca);
  }
  return { ca };
}

const combined = new WeakMap<readonly string[], string[]>();

function defaultCaCertificates(): readonly string[] {
  const get = (tls as { getCACertificates?: (type: 'default') => string[] }).getCACertificates;
  return get ? get('default') : tls.rootCertificates;
}
