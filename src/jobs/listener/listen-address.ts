/**
 * Where a listening service listens: `HOST:PORT` (plain, upgraded with
 * STARTTLS when the service has a certificate) or `SCHEME://HOST:PORT` with
 * the protocol's implicit-TLS scheme (`smtps`, `imaps`, `pop3s`).
 */
import { displayText } from '../../util/display-text.js';

export interface ListenAddress {
  host: string;
  port: number;
  /** TLS from the first byte (`smtps://`, `imaps://`, `pop3s://`), instead of STARTTLS. */
  implicitTls: boolean;
  /** As written, for messages and logs. */
  text: string;
}

/** A protocol's URL schemes: the plain one and the implicit-TLS one. */
export interface ListenSchemes {
  plain: string;
  tls: string;
}

export const SMTP_SCHEMES: ListenSchemes = { plain: 'smtp', tls: 'smtps' };

/** `127.0.0.1:2525`, `[::1]:2525`, `0.0.0.0:587`, `smtps://0.0.0.0:465`. */
export function parseListenAddress(
  input: string,
  schemes: ListenSchemes = SMTP_SCHEMES,
): ListenAddress | string {
  const text = input.trim();
  let rest = text;
  let implicitTls = false;
  const scheme = /^([a-z0-9]+):\/\//i.exec(rest);
  if (scheme) {
    const name = (scheme[1] as string).toLowerCase();
    if (name !== schemes.tls && name !== schemes.plain) {
      return `'${displayText(text, 60)}': the scheme must be ${schemes.plain}:// or ${schemes.tls}:// (implicit TLS).`;
    }
    implicitTls = name === schemes.tls;
    rest = rest.slice(scheme[0].length);
  }
  const m = /^(?:\[([0-9a-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/i.exec(rest);
  if (!m) return `'${displayText(text, 60)}' is not HOST:PORT (IPv6 as [::1]:2525).`;
  const host = (m[1] ?? m[2]) as string;
  const port = Number(m[3]);
  if (port > 65535) return `'${displayText(text, 60)}': the port must be 0-65535.`;
  return { host, port, implicitTls, text };
}
