/**
 * IPv4 and IPv6 networks in CIDR notation, and whether an address lies in
 * one. Pure: no DNS, no sockets.
 *
 * Every address is compared as 16 bytes. An IPv4 address or network becomes
 * its IPv4-mapped IPv6 form (`::ffff:a.b.c.d`, prefix + 96), which is also how
 * a dual-stack listener (`::`) reports an IPv4 client, so `10.0.0.0/8` matches
 * both `10.1.2.3` and `::ffff:10.1.2.3`.
 */

export interface Cidr {
  /** As written, for messages. */
  text: string;
  /** Network address, 16 bytes, host bits cleared. */
  bytes: Uint8Array;
  /** Prefix length over the 16 bytes (an IPv4 /24 is 120). */
  prefix: number;
  /** Family of the network as written. */
  family: 4 | 6;
}

const IPV4_MAPPED_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/** `192.0.2.1` → its 4 bytes, or `undefined` when it is not dotted-quad IPv4. */
export function parseIPv4(text: string): Uint8Array | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i] as string;
    // No leading zeros: `010` is octal to some parsers and decimal to others.
    if (!/^(?:0|[1-9]\d{0,2})$/.test(part)) return undefined;
    const value = Number(part);
    if (value > 255) return undefined;
    bytes[i] = value;
  }
  return bytes;
}

/**
 * `2001:db8::1`, `::`, `::ffff:192.0.2.1` → 16 bytes, or `undefined`. A zone
 * (`fe80::1%eth0`) is ignored: it names an interface, not an address.
 */
export function parseIPv6(input: string): Uint8Array | undefined {
  const text = input.replace(/%[\w.-]+$/, '');
  if (!/^[0-9a-f:.]+$/i.test(text) || text.length < 2) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    const pieces = part.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i] as string;
      if (i === pieces.length - 1 && piece.includes('.')) {
        const v4 = parseIPv4(piece);
        if (!v4) return undefined;
        out.push(((v4[0] as number) << 8) | (v4[1] as number));
        out.push(((v4[2] as number) << 8) | (v4[3] as number));
        continue;
      }
      if (!/^[0-9a-f]{1,4}$/i.test(piece)) return undefined;
      out.push(Number.parseInt(piece, 16));
    }
    return out;
  };
  const head = groups(halves[0] as string);
  const tail = halves.length === 2 ? groups(halves[1] as string) : [];
  if (!head || !tail) return undefined;
  const count = head.length + tail.length;
  if (halves.length === 1 ? count !== 8 : count > 7) return undefined;
  const all = [...head, ...new Array<number>(8 - count).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => {
    bytes[i * 2] = group >> 8;
    bytes[i * 2 + 1] = group & 0xff;
  });
  return bytes;
}

/** Any textual address as 16 bytes (IPv4 as IPv4-mapped IPv6), or `undefined`. */
export function addressBytes(address: string): Uint8Array | undefined {
  const text = address.trim().replace(/^\[(.*)\]$/, '$1');
  const v4 = parseIPv4(text);
  if (v4) return Uint8Array.from([...IPV4_MAPPED_PREFIX, ...v4]);
  return parseIPv6(text);
}

/** `10.0.0.0/8`, `2001:db8::/32`, or a single address (a /32 or /128). */
export function parseCidr(text: string): Cidr | undefined {
  const trimmed = text.trim();
  const slash = trimmed.indexOf('/');
  const addressText = slash === -1 ? trimmed : trimmed.slice(0, slash);
  const prefixText = slash === -1 ? undefined : trimmed.slice(slash + 1);
  const v4 = parseIPv4(addressText);
  const family: 4 | 6 = v4 ? 4 : 6;
  const bytes = addressBytes(addressText);
  if (!bytes) return undefined;
  const max = family === 4 ? 32 : 128;
  let prefix = max;
  if (prefixText !== undefined) {
    if (!/^(?:0|[1-9]\d{0,2})$/.test(prefixText)) return undefined;
    prefix = Number(prefixText);
    if (prefix > max) return undefined;
  }
  const full = family === 4 ? prefix + 96 : prefix;
  return { text: trimmed, bytes: maskBytes(bytes, full), prefix: full, family };
}

function maskBytes(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = (bytes[i] as number) & ((0xff << (8 - bits)) & 0xff);
  }
  return out;
}

/** Whether `address` (IPv4, IPv6 or IPv4-mapped IPv6) lies in `cidr`. */
export function cidrContains(cidr: Cidr, address: string): boolean {
  const bytes = addressBytes(address);
  if (!bytes) return false;
  const masked = maskBytes(bytes, cidr.prefix);
  for (let i = 0; i < 16; i++) if (masked[i] !== cidr.bytes[i]) return false;
  return true;
}

/** Whether any network of the list holds the address. */
export function anyCidrContains(cidrs: readonly Cidr[], address: string): boolean {
  return cidrs.some((cidr) => cidrContains(cidr, address));
}

const LOOPBACK_V4 = parseCidr('127.0.0.0/8') as Cidr;
const LOOPBACK_V6 = parseCidr('::1/128') as Cidr;

/** `127.0.0.0/8`, `::1`, `::ffff:127.x.y.z` and the name `localhost`. */
export function isLoopbackAddress(address: string): boolean {
  if (address.trim().toLowerCase() === 'localhost') return true;
  return cidrContains(LOOPBACK_V4, address) || cidrContains(LOOPBACK_V6, address);
}

/**
 * Whether the network lets in every address of a family: `0.0.0.0/0`, `::/0`
 * and `::ffff:0:0/96` (all of IPv4 seen through a dual-stack socket).
 */
export function isEverywhere(cidr: Cidr): boolean {
  return cidr.prefix === 0 || (cidr.family === 4 && cidr.prefix === 96) || isAllMapped(cidr);
}

function isAllMapped(cidr: Cidr): boolean {
  if (cidr.family !== 6 || cidr.prefix > 96) return false;
  return cidrContains(cidr, '0.0.0.0') && cidrContains(cidr, '255.255.255.255');
}
