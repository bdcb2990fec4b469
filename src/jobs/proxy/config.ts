/**
 * The config file's `proxy:` section (schema in src/config/sections.ts),
 * validated once into `ProxySettings`, with the rules between settings that
 * keep passwords off the network in clear: a listener beyond loopback needs
 * TLS and an `allowNetworks` list. Every problem is reported together
 * (ConfigurationError `PROXY_CONFIG_INVALID`, exit 2).
 */
import { isAbsolute, resolve } from 'node:path';
import { parseSection } from '../../config/schema.js';
import { type ProxySection, proxySectionSchema } from '../../config/sections.js';
import type { ConfigProblem } from '../../errors.js';
import { type Cidr, isEverywhere, isLoopbackAddress, parseCidr } from '../listener/cidr.js';
import { throwSectionProblems } from '../listener/config-problems.js';
import {
  type ListenAddress,
  type ListenSchemes,
  parseListenAddress,
} from '../listener/listen-address.js';
import { type ParsedScryptHash, parsePasswordHash } from '../listener/password.js';

export type ProxyProtocol = 'imap' | 'pop3';

export interface ProxyListenAddress extends ListenAddress {
  protocol: ProxyProtocol;
}

export interface ProxyUser {
  name: string;
  hash: ParsedScryptHash;
  /** Lower-cased; the first is the one a plain login name selects. */
  mailboxes: string[];
}

export type TlsMinVersion = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';

export interface ProxySettings {
  listen: ProxyListenAddress[];
  /** Certificate and key (absolute paths): STARTTLS/STLS, and implicit TLS on imaps:// and pop3s://. */
  tls?: { cert: string; key: string; minVersion: TlsMinVersion };
  users: ProxyUser[];
  /** Client networks admitted beyond loopback (loopback clients always are). */
  allowNetworks: Cidr[];
  maxConnections: number;
  maxConnectionsPerAddress: number;
  /** Sessions one local user may have open at once. */
  maxConnectionsPerUser: number;
  /** A spliced session quiet this long (both ways) is closed, in ms. */
  idleTimeout: number;
  /** From connection to login, in ms: slow or silent clients are cut off. */
  loginTimeout: number;
  /** On stop, how long relayed sessions get to reach the end of a reply, in ms. */
  shutdownTimeout: number;
  authPenalty: { initialMs: number; maxMs: number };
  http?: { host: string; port: number };
}

export const PROXY_DEFAULTS = {
  imap: ['127.0.0.1:1143'],
  maxConnections: 1000,
  maxConnectionsPerAddress: 100,
  // Exchange Online allows 16-20 IMAP connections per mailbox; a few are left to other tools.
  maxConnectionsPerUser: 10,
  // RFC 3501 §5.4: an autologout timer of at least 30 minutes.
  idleTimeout: 30 * 60 * 1000,
  loginTimeout: 60_000,
  // A FETCH of a large message in flight finishes; an idle session ends at once.
  shutdownTimeout: 30_000,
  authPenalty: { initialMs: 1000, maxMs: 15_000 },
  minVersion: 'TLSv1.2',
} as const;

const SCHEMES: Record<ProxyProtocol, ListenSchemes> = {
  imap: { plain: 'imap', tls: 'imaps' },
  pop3: { plain: 'pop3', tls: 'pop3s' },
};

export interface ParseProxyOptions {
  /** Relative paths are resolved against this directory (the config file's). @default process.cwd() */
  baseDir?: string;
}

/**
 * Validates the raw `proxy` section.
 *
 * @throws ConfigurationError `PROXY_CONFIG_INVALID` listing every problem
 */
export function parseProxySettings(raw: unknown, options: ParseProxyOptions = {}): ProxySettings {
  const problems: ConfigProblem[] = [];
  const add = (field: string, message: string) => problems.push({ field, message });
  const baseDir = options.baseDir ?? process.cwd();
  const path = (value: string) => (isAbsolute(value) ? value : resolve(baseDir, value));
  if (raw === undefined || raw === null) {
    add('proxy', 'The config file has no proxy section: add one (see `mailbridge proxy --help`).');
  }
  const parsed = parseSection(proxySectionSchema, raw ?? {}, { prefix: 'proxy' });
  problems.push(...parsed.problems);
  const section = (parsed.value ?? {}) as Partial<ProxySection>;
  const valid = (field: string) => parsed.ok || !parsed.invalid(`proxy.${field}`);

  const listen: ProxyListenAddress[] = [];
  for (const protocol of ['imap', 'pop3'] as const) {
    if (!valid(protocol)) continue;
    const given = section[protocol]?.listen;
    // No listener named at all: IMAP on loopback, the common case.
    const texts =
      given ??
      (protocol === 'imap' && !section.pop3 && !section.imap ? [...PROXY_DEFAULTS.imap] : []);
    texts.forEach((text, i) => {
      const address = parseListenAddress(text, SCHEMES[protocol]);
      if (typeof address === 'string') add(`proxy.${protocol}.listen[${i}]`, address);
      else listen.push({ ...address, protocol });
    });
  }

  const allowNetworks: Cidr[] = [];
  (valid('allowNetworks') ? (section.allowNetworks ?? []) : []).forEach((text, i) => {
    const cidr = parseCidr(text);
    // Not quoted: a value that is not a network could be anything pasted there, a secret included.
    if (cidr) allowNetworks.push(cidr);
    else add(`proxy.allowNetworks[${i}]`, 'this entry is not an IPv4 or IPv6 network (CIDR).');
  });

  const tls =
    valid('tls') && section.tls
      ? {
          cert: path(section.tls.cert),
          key: path(section.tls.key),
          minVersion: section.tls.minVersion ?? PROXY_DEFAULTS.minVersion,
        }
      : undefined;

  const users: ProxyUser[] = [];
  const seen = new Set<string>();
  (valid('users') ? (section.users ?? []) : []).forEach((user, i) => {
    const hash = parsePasswordHash(user.passwordHash, 'mailbridge proxy hash-password');
    if (!hash.ok) add(`proxy.users[${i}].passwordHash`, hash.reason);
    if (user.name.includes('#')) {
      add(`proxy.users[${i}].name`, "a user name cannot hold '#': it separates name and mailbox.");
    }
    if (seen.has(user.name)) add(`proxy.users[${i}].name`, 'this user name is listed twice.');
    seen.add(user.name);
    if (hash.ok) {
      users.push({
        name: user.name,
        hash: hash.value,
        mailboxes: user.mailboxes.map((m) => m.trim().toLowerCase()),
      });
    }
  });
  if (valid('users') && (section.users ?? []).length === 0) {
    add(
      'proxy.users',
      'proxy.users must list at least one user: { name, passwordHash, mailboxes }.',
    );
  }

  let http: { host: string; port: number } | undefined;
  if (valid('http') && section.http) {
    const address = parseListenAddress(section.http, { plain: 'http', tls: 'https' });
    if (typeof address === 'string' || address.implicitTls) {
      add('proxy.http', 'proxy.http must be HOST:PORT, e.g. 127.0.0.1:9026.');
    } else if (!isLoopbackAddress(address.host)) {
      add(
        'proxy.http',
        `proxy.http ${address.text} is not a loopback address: /healthz and /metrics are served on loopback only (127.0.0.1 or ::1).`,
      );
    } else http = { host: address.host, port: address.port };
  }

  const penalty = valid('authPenalty') ? section.authPenalty : undefined;
  const authPenalty = {
    initialMs: penalty?.initial ?? PROXY_DEFAULTS.authPenalty.initialMs,
    maxMs: penalty?.max ?? PROXY_DEFAULTS.authPenalty.maxMs,
  };
  if (authPenalty.initialMs > authPenalty.maxMs) {
    add('proxy.authPenalty', 'proxy.authPenalty.initial must not exceed proxy.authPenalty.max.');
  }
  const or = <K extends keyof ProxySection>(key: K, fallback: NonNullable<ProxySection[K]>) =>
    valid(String(key)) && section[key] !== undefined
      ? (section[key] as NonNullable<ProxySection[K]>)
      : fallback;
  const settings: ProxySettings = {
    listen,
    ...(tls ? { tls } : {}),
    users,
    allowNetworks,
    maxConnections: or('maxConnections', PROXY_DEFAULTS.maxConnections),
    maxConnectionsPerAddress: or(
      'maxConnectionsPerAddress',
      PROXY_DEFAULTS.maxConnectionsPerAddress,
    ),
    maxConnectionsPerUser: or('maxConnectionsPerUser', PROXY_DEFAULTS.maxConnectionsPerUser),
    idleTimeout: or('idleTimeout', PROXY_DEFAULTS.idleTimeout),
    loginTimeout: or('loginTimeout', PROXY_DEFAULTS.loginTimeout),
    shutdownTimeout: or('shutdownTimeout', PROXY_DEFAULTS.shutdownTimeout),
    authPenalty,
    ...(http ? { http } : {}),
  };
  problems.push(...exposureProblems(settings));
  throwSectionProblems(
    'proxy',
    'PROXY_CONFIG_INVALID',
    problems,
    'Fix the proxy section of the config file; `mailbridge proxy --help` lists its keys.',
  );
  return settings;
}

/**
 * Passwords cross the network only inside TLS, and only from networks the
 * operator named: a listener beyond loopback without TLS, or without an
 * `allowNetworks` list that is not "everyone", is refused.
 */
export function exposureProblems(
  settings: Pick<ProxySettings, 'listen' | 'tls' | 'allowNetworks'>,
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const listener of settings.listen) {
    const field = `proxy.${listener.protocol}.listen`;
    if (listener.implicitTls && !settings.tls) {
      problems.push({
        field,
        message: `${listener.text} asks for implicit TLS, but proxy.tls (cert and key) is not set.`,
      });
    }
    if (isLoopbackAddress(listener.host)) continue;
    if (!settings.tls) {
      problems.push({
        field,
        message: `Refusing to listen on ${listener.text} (beyond loopback) without TLS: passwords would cross the network in clear. Set proxy.tls (cert and key), or listen on 127.0.0.1.`,
      });
    }
    const everywhere = settings.allowNetworks.filter(isEverywhere);
    if (settings.allowNetworks.length === 0 || everywhere.length > 0) {
      problems.push({
        field,
        message: `Refusing to listen on ${listener.text} (beyond loopback) for every address: set proxy.allowNetworks to the networks of the clients${everywhere.length > 0 ? ` (not ${everywhere.map((c) => c.text).join(', ')})` : ''}.`,
      });
    }
  }
  return problems;
}
