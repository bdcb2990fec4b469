import { isIP } from 'node:net';

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
