/**
 * The config file's `relay:` section, validated once into `RelaySettings`.
 * Every problem is collected and reported together (ConfigurationError,
 * exit 2), each named by its key (`relay.policy[1].senders[0]`).
 *
 * The no-open-relay rule lives here, as the pure `openRelayProblems`: a
 * listener reachable from beyond loopback must either limit clients to an IP
 * allow-list or offer TLS and require authentication. Anything else would let
 * whoever reaches the port send mail as the organisation's mailboxes.
 */
import { isAbsolute, resolve } from 'node:path';
import { fieldName, quotedKey } from '../../config/unknown-key.js';
import { type ConfigProblem, ConfigurationError } from '../../errors.js';
import { closestName } from '../../util/did-you-mean.js';
import { displayText } from '../../util/display-text.js';
import { type Cidr, isEverywhere, isLoopbackAddress, parseCidr } from './cidr.js';
import { type PolicyRule, parseSenderPattern } from './policy.js';

export type { PolicyRule } from './policy.js';

/** Exchange Online's default maximum message size (35 MB, counted in binary units). */
export const EXCHANGE_MAX_MESSAGE_SIZE = 35 * 1024 * 1024;
/** Exchange Online accepts messages of up to 150 MB when an administrator raises the limit. */
export const EXCHANGE_MAX_MESSAGE_SIZE_CEILING = 150 * 1024 * 1024;
/** Exchange Online's default recipients per message (MaxRecipientEnvelopeLimit). */
export const EXCHANGE_MAX_RECIPIENTS = 500;
/** Exchange Online refuses more than three concurrent SMTP submissions per mailbox. */
export const EXCHANGE_MAX_CONNECTIONS_PER_MAILBOX = 3;

export interface ListenAddress {
  host: string;
  port: number;
  /** TLS from the first byte (`smtps://`), instead of STARTTLS. */
  implicitTls: boolean;
  /** As written, for messages and logs. */
  text: string;
}

export interface RelaySettings {
  /** @default [127.0.0.1:2525] */
  listen: ListenAddress[];
  /** Spool directory (absolute). */
  spool: string;
  /** Certificate and key (PEM files, absolute paths): offers STARTTLS, and implicit TLS on `smtps://` listeners. */
  tls?: { cert: string; key: string };
  /** Users file (absolute path) for AUTH PLAIN/LOGIN. */
  users?: string;
  /** Networks whose clients may send without authenticating. @default [] */
  allowNetworks: Cidr[];
  policy: PolicyRule[];
  /** Bytes. @default 35 MiB (Exchange's limit) */
  maxMessageSize: number;
  /** @default 500 (Exchange's) */
  maxRecipients: number;
  /** Messages per minute per mailbox, or `false` for no limit. @default 30 (Exchange's) */
  rateLimitPerMinute: number | false;
  /** Concurrent upstream connections per mailbox. @default 2 (Exchange allows 3) */
  connectionsPerMailbox: number;
  /** How long temporary failures are retried, in ms. @default 24 h */
  retryFor: number;
  /** Delay after the first temporary failure, doubling up to `maxMs`. @default 1 min … 1 h */
  retryBackoff: { initialMs: number; maxMs: number };
  /** Send a bounce to the envelope sender when a message ends in `dead/`. @default false */
  bounce: boolean;
  /** Loopback address of `/healthz` and `/metrics`. @default none */
  http?: { host: string; port: number };
  /** On SIGTERM, how long in-flight deliveries may take before the relay exits. @default 30 s */
  shutdownTimeout: number;
  /** Name in the banner and in generated Message-IDs. @default the OS host name */
  hostname?: string;
  /** Accept AUTH without TLS on listeners beyond loopback (legacy devices). @default false */
  allowPlaintextAuth: boolean;
  /** SMTP connections open at once, over all listeners; beyond it a client gets 421. @default 100 */
  maxConnections: number;
  /** SMTP connections open at once from one client address. @default 20 */
  maxConnectionsPerAddress: number;
  /** Longest an SMTP session may last, however slowly the client sends, in ms. @default 10 min */
  sessionTimeout: number;
  /**
   * Delay before the next password check after failures, per client address
   * and per user name, doubling from `initialMs` up to `maxMs`. @default 1 s … 15 s
   */
  authPenalty: { initialMs: number; maxMs: number };
}

export const RELAY_DEFAULTS = {
  listen: ['127.0.0.1:2525'],
  maxMessageSize: EXCHANGE_MAX_MESSAGE_SIZE,
  maxRecipients: EXCHANGE_MAX_RECIPIENTS,
  rateLimitPerMinute: 30,
  connectionsPerMailbox: 2,
  retryFor: 24 * 60 * 60 * 1000,
  retryBackoff: { initialMs: 60_000, maxMs: 60 * 60 * 1000 },
  shutdownTimeout: 30_000,
  // Postfix's default_process_limit is 100 too; 20 per address still lets a NAT of devices in.
  maxConnections: 100,
  maxConnectionsPerAddress: 20,
  // 35 MB at 0.5 Mbit/s takes about 10 minutes: longer is a client holding a connection, not sending.
  sessionTimeout: 10 * 60 * 1000,
  // Dovecot's auth penalty grows 2, 4, 8, 15 s; ours starts lower so one typo costs a second.
  authPenalty: { initialMs: 1000, maxMs: 15_000 },
} as const;

export const RELAY_KEYS = [
  'listen',
  'spool',
  'tls',
  'users',
  'allowNetworks',
  'policy',
  'maxMessageSize',
  'maxRecipients',
  'rateLimitPerMinute',
  'connectionsPerMailbox',
  'retryFor',
  'retryBackoff',
  'bounce',
  'http',
  'shutdownTimeout',
  'hostname',
  'allowPlaintextAuth',
  'maxConnections',
  'maxConnectionsPerAddress',
  'sessionTimeout',
  'authPenalty',
] as const;

export interface ParseRelayOptions {
  /** Relative paths are resolved against this directory (the config file's). @default process.cwd() */
  baseDir?: string;
  /** Replace `relay.listen` (the `--listen` flags). */
  listen?: string[];
  /** Replace `relay.spool` (a `--spool` flag). */
  spool?: string;
}

const ADDRESS = /^[^\s@<>()[\]\\,;:"]+@[^\s@<>()[\]\\,;:"]+$/;

/**
 * Validates the raw `relay` section.
 *
 * @throws ConfigurationError `RELAY_CONFIG_INVALID` listing every problem
 */
export function parseRelaySettings(raw: unknown, options: ParseRelayOptions = {}): RelaySettings {
  const problems: ConfigProblem[] = [];
  const add = (field: string, message: string) => problems.push({ field, message });
  const baseDir = options.baseDir ?? process.cwd();
  const path = (value: string) => (isAbsolute(value) ? value : resolve(baseDir, value));

  let section: Record<string, unknown> = {};
  if (raw === undefined || raw === null) {
    add('relay', 'The config file has no relay section: add one (see `mailbridge relay --help`).');
  } else if (typeof raw !== 'object' || Array.isArray(raw)) {
    add('relay', 'relay must be a mapping of settings.');
  } else {
    section = raw as Record<string, unknown>;
  }
  for (const key of Object.keys(section)) {
    if ((RELAY_KEYS as readonly string[]).includes(key)) continue;
    const near = closestName(key, RELAY_KEYS);
    add(
      fieldName(key, 'relay.'),
      near
        ? `Unknown setting ${quotedKey(key, 'relay.')}: did you mean 'relay.${near}'?`
        : `Unknown setting ${quotedKey(key, 'relay.')}. Known: ${RELAY_KEYS.join(', ')}.`,
    );
  }

  // listen
  const listenTexts =
    options.listen && options.listen.length > 0
      ? options.listen
      : stringList(section.listen, 'relay.listen', add, [...RELAY_DEFAULTS.listen]);
  const listen: ListenAddress[] = [];
  listenTexts.forEach((text, i) => {
    const field = options.listen?.length ? `--listen ${text}` : `relay.listen[${i}]`;
    const parsed = parseListenAddress(text);
    if (typeof parsed === 'string') add(field, parsed);
    else listen.push(parsed);
  });
  if (listenTexts.length === 0) add('relay.listen', 'relay.listen needs at least one address.');

  // spool
  const spoolText = options.spool ?? section.spool;
  let spool = '';
  if (typeof spoolText === 'string' && spoolText.trim() !== '') spool = path(spoolText.trim());
  else if (spoolText === undefined) {
    add('relay.spool', 'relay.spool is required: the directory that keeps accepted messages.');
  } else add('relay.spool', 'relay.spool must be a directory path.');

  // tls
  let tls: RelaySettings['tls'];
  if (section.tls !== undefined) {
    const t = section.tls as Record<string, unknown>;
    if (typeof t !== 'object' || t === null || Array.isArray(t)) {
      add('relay.tls', 'relay.tls must be a mapping with cert and key (PEM files).');
    } else {
      const cert = typeof t.cert === 'string' && t.cert.trim() ? path(t.cert.trim()) : undefined;
      const key = typeof t.key === 'string' && t.key.trim() ? path(t.key.trim()) : undefined;
      if (!cert) add('relay.tls.cert', 'relay.tls.cert must name the PEM certificate file.');
      if (!key) add('relay.tls.key', 'relay.tls.key must name the PEM private key file.');
      for (const k of Object.keys(t)) {
        if (k !== 'cert' && k !== 'key') {
          add(fieldName(k, 'relay.tls.'), `Unknown setting ${quotedKey(k, 'relay.tls.')}.`);
        }
      }
      if (cert && key) tls = { cert, key };
    }
  }

  // users
  let users: string | undefined;
  if (section.users !== undefined) {
    if (typeof section.users === 'string' && section.users.trim())
      users = path(section.users.trim());
    else add('relay.users', 'relay.users must name a file of name:hash lines.');
  }

  // allowNetworks
  const allowNetworks: Cidr[] = [];
  stringList(section.allowNetworks, 'relay.allowNetworks', add, []).forEach((text, i) => {
    const cidr = parseCidr(text);
    if (cidr) allowNetworks.push(cidr);
    // Not quoted: a value that is not a network could be anything pasted there, a secret included.
    else add(`relay.allowNetworks[${i}]`, 'this entry is not an IPv4 or IPv6 network (CIDR).');
  });

  // numbers, sizes, durations
  const maxMessageSize = sizeSetting(
    section.maxMessageSize,
    'relay.maxMessageSize',
    RELAY_DEFAULTS.maxMessageSize,
    EXCHANGE_MAX_MESSAGE_SIZE_CEILING,
    add,
  );
  const maxRecipients = integerSetting(
    section.maxRecipients,
    'relay.maxRecipients',
    RELAY_DEFAULTS.maxRecipients,
    1,
    1000,
    add,
  );
  let rateLimitPerMinute: number | false = RELAY_DEFAULTS.rateLimitPerMinute;
  if (section.rateLimitPerMinute === false) rateLimitPerMinute = false;
  else
    rateLimitPerMinute = integerSetting(
      section.rateLimitPerMinute,
      'relay.rateLimitPerMinute',
      RELAY_DEFAULTS.rateLimitPerMinute,
      1,
      100_000,
      add,
      ' or false for no limit',
    );
  const connectionsPerMailbox = integerSetting(
    section.connectionsPerMailbox,
    'relay.connectionsPerMailbox',
    RELAY_DEFAULTS.connectionsPerMailbox,
    1,
    EXCHANGE_MAX_CONNECTIONS_PER_MAILBOX,
    add,
  );
  const retryFor = durationSetting(
    section.retryFor,
    'relay.retryFor',
    RELAY_DEFAULTS.retryFor,
    add,
  );
  const shutdownTimeout = durationSetting(
    section.shutdownTimeout,
    'relay.shutdownTimeout',
    RELAY_DEFAULTS.shutdownTimeout,
    add,
  );
  const retryBackoff = growingDelaySetting(
    section.retryBackoff,
    'relay.retryBackoff',
    RELAY_DEFAULTS.retryBackoff,
    '{ initial: 1m, max: 1h }',
    add,
  );
  const authPenalty = growingDelaySetting(
    section.authPenalty,
    'relay.authPenalty',
    RELAY_DEFAULTS.authPenalty,
    '{ initial: 1s, max: 15s }',
    add,
  );
  const maxConnections = integerSetting(
    section.maxConnections,
    'relay.maxConnections',
    RELAY_DEFAULTS.maxConnections,
    1,
    10_000,
    add,
  );
  const maxConnectionsPerAddress = integerSetting(
    section.maxConnectionsPerAddress,
    'relay.maxConnectionsPerAddress',
    RELAY_DEFAULTS.maxConnectionsPerAddress,
    1,
    10_000,
    add,
  );
  const sessionTimeout = durationSetting(
    section.sessionTimeout,
    'relay.sessionTimeout',
    RELAY_DEFAULTS.sessionTimeout,
    add,
  );
  if (sessionTimeout === 0) add('relay.sessionTimeout', 'relay.sessionTimeout must be above 0.');

  const bounce = booleanSetting(section.bounce, 'relay.bounce', false, add);
  const allowPlaintextAuth = booleanSetting(
    section.allowPlaintextAuth,
    'relay.allowPlaintextAuth',
    false,
    add,
  );

  let hostname: string | undefined;
  if (section.hostname !== undefined) {
    if (typeof section.hostname === 'string' && /^[a-z0-9.-]{1,253}$/i.test(section.hostname)) {
      hostname = section.hostname;
    } else add('relay.hostname', 'relay.hostname must be a host name.');
  }

  let http: RelaySettings['http'];
  if (section.http !== undefined) {
    const parsed = typeof section.http === 'string' ? parseListenAddress(section.http) : undefined;
    if (parsed === undefined || typeof parsed === 'string' || parsed.implicitTls) {
      add('relay.http', 'relay.http must be HOST:PORT, e.g. 127.0.0.1:9025.');
    } else if (!isLoopbackAddress(parsed.host)) {
      add(
        'relay.http',
        `relay.http ${parsed.text} is not a loopback address: /healthz and /metrics are served on loopback only (127.0.0.1 or ::1).`,
      );
    } else http = { host: parsed.host, port: parsed.port };
  }

  // policy
  const policy: PolicyRule[] = [];
  if (section.policy === undefined) {
    add(
      'relay.policy',
      'relay.policy is required: list which senders each user or network may use, and the mailbox each goes out as.',
    );
  } else if (!Array.isArray(section.policy) || section.policy.length === 0) {
    add('relay.policy', 'relay.policy must be a non-empty list of rules.');
  } else {
    section.policy.forEach((entry, index) => {
      const rule = parsePolicyRule(entry, index, add);
      if (rule) policy.push(rule);
    });
  }
  for (const rule of policy) {
    if (rule.user !== undefined && users === undefined) {
      add(
        `relay.policy[${rule.index}].user`,
        `the rule names user '${rule.user}' but relay.users (the users file) is not set.`,
      );
    }
    if (
      rule.network &&
      !allowNetworks.some((allowed) => cidrCovers(allowed, rule.network as Cidr))
    ) {
      add(
        `relay.policy[${rule.index}].network`,
        `${rule.network.text} is not inside relay.allowNetworks: its clients are refused before the policy applies. Add it to relay.allowNetworks.`,
      );
    }
  }

  const settings: RelaySettings = {
    listen,
    spool,
    ...(tls ? { tls } : {}),
    ...(users ? { users } : {}),
    allowNetworks,
    policy,
    maxMessageSize,
    maxRecipients,
    rateLimitPerMinute,
    connectionsPerMailbox,
    retryFor,
    retryBackoff,
    bounce,
    ...(http ? { http } : {}),
    shutdownTimeout,
    ...(hostname ? { hostname } : {}),
    allowPlaintextAuth,
    maxConnections,
    maxConnectionsPerAddress,
    sessionTimeout,
    authPenalty,
  };
  problems.push(...openRelayProblems(settings));
  for (const listener of listen) {
    if (listener.implicitTls && !tls) {
      add(
        'relay.listen',
        `${listener.text} asks for implicit TLS, but relay.tls (cert and key) is not set.`,
      );
    }
  }

  if (problems.length > 0) {
    throw new ConfigurationError({
      code: 'RELAY_CONFIG_INVALID',
      message: `The relay configuration has ${problems.length} problem(s)`,
      remedy: 'Fix the relay section of the config file; `mailbridge relay --help` lists its keys.',
      problems,
    });
  }
  return settings;
}

/**
 * The no-open-relay rule. A listener beyond loopback (including `0.0.0.0`
 * and `::`) is refused unless clients are limited to an allow-list that is
 * not "everyone", or TLS is offered and a users file makes AUTH possible.
 * An allow-list entry such as `0.0.0.0/0` is refused outright there.
 */
export function openRelayProblems(
  settings: Pick<RelaySettings, 'listen' | 'tls' | 'users' | 'allowNetworks'>,
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const exposed = settings.listen.filter((l) => !isLoopbackAddress(l.host));
  if (exposed.length === 0) return problems;
  const everywhere = settings.allowNetworks.filter(isEverywhere);
  for (const cidr of everywhere) {
    problems.push({
      field: 'relay.allowNetworks',
      message: `${cidr.text} admits every address: with a listener beyond loopback (${exposed.map((l) => l.text).join(', ')}) that is an open relay. List only the networks of the devices that send.`,
    });
  }
  const allowList = settings.allowNetworks.length > 0 && everywhere.length === 0;
  const authenticated = settings.tls !== undefined && settings.users !== undefined;
  if (!allowList && !authenticated && everywhere.length === 0) {
    for (const listener of exposed) {
      const missing = [
        ...(settings.tls ? [] : ['relay.tls']),
        ...(settings.users ? [] : ['relay.users']),
      ];
      problems.push({
        field: 'relay.listen',
        message: `Refusing to listen on ${listener.text} (beyond loopback) as an open relay: set relay.allowNetworks to the devices' networks, or ${missing.join(' and ')} so that clients must authenticate over TLS.`,
      });
    }
  }
  return problems;
}

/** `127.0.0.1:2525`, `[::1]:2525`, `0.0.0.0:587`, `smtps://0.0.0.0:465`. */
export function parseListenAddress(input: string): ListenAddress | string {
  const text = input.trim();
  let rest = text;
  let implicitTls = false;
  const scheme = /^([a-z]+):\/\//i.exec(rest);
  if (scheme) {
    const name = (scheme[1] as string).toLowerCase();
    if (name !== 'smtps' && name !== 'smtp') {
      return `'${displayText(text, 60)}': the scheme must be smtp:// or smtps:// (implicit TLS).`;
    }
    implicitTls = name === 'smtps';
    rest = rest.slice(scheme[0].length);
  }
  const m = /^(?:\[([0-9a-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/i.exec(rest);
  if (!m) return `'${displayText(text, 60)}' is not HOST:PORT (IPv6 as [::1]:2525).`;
  const host = (m[1] ?? m[2]) as string;
  const port = Number(m[3]);
  if (port > 65535) return `'${displayText(text, 60)}': the port must be 0-65535.`;
  return { host, port, implicitTls, text };
}

/** `90s`, `30m`, `24h`, `2d`, `500ms`, or a number of seconds → ms. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') {
    return Number.isFinite(value) && value >= 0 ? Math.round(value * 1000) : undefined;
  }
  if (typeof value !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i.exec(value);
  if (!m) return undefined;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
    (m[2] as string).toLowerCase() as 'ms' | 's' | 'm' | 'h' | 'd'
  ];
  return Math.round(Number(m[1]) * unit);
}

/** `35MB`, `35 MiB`, `512k`, or a number of bytes. Units are binary: 1 MB = 1024 × 1024 bytes, as Exchange counts. */
export function parseSize(value: unknown): number | undefined {
  if (typeof value === 'number') {
    return Number.isInteger(value) && value > 0 ? value : undefined;
  }
  if (typeof value !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$/i.exec(value);
  if (!m) return undefined;
  const unit = (m[2] ?? 'b').toLowerCase()[0] as 'b' | 'k' | 'm' | 'g';
  const factor = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[unit];
  const bytes = Math.round(Number(m[1]) * factor);
  return bytes > 0 ? bytes : undefined;
}

function parsePolicyRule(
  entry: unknown,
  index: number,
  add: (field: string, message: string) => void,
): PolicyRule | undefined {
  const field = `relay.policy[${index}]`;
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    add(field, 'a rule is a mapping: { user | network, senders: [...], mailbox }.');
    return undefined;
  }
  const e = entry as Record<string, unknown>;
  let ok = true;
  for (const key of Object.keys(e)) {
    if (!['user', 'network', 'senders', 'mailbox'].includes(key)) {
      add(
        fieldName(key, `${field}.`),
        `Unknown key ${quotedKey(key)} (a rule has user or network, senders, mailbox).`,
      );
      ok = false;
    }
  }
  const rule: PolicyRule = { index, senders: [] };
  if ((e.user === undefined) === (e.network === undefined)) {
    add(field, 'a rule names exactly one of user (a local account) or network (CIDR).');
    ok = false;
  }
  if (e.user !== undefined) {
    if (typeof e.user === 'string' && /^[\x21-\x39\x3b-\x7e]{1,128}$/.test(e.user))
      rule.user = e.user;
    else {
      add(`${field}.user`, 'user must be a user name of the users file.');
      ok = false;
    }
  }
  if (e.network !== undefined) {
    const cidr = typeof e.network === 'string' ? parseCidr(e.network) : undefined;
    if (cidr) rule.network = cidr;
    else {
      add(`${field}.network`, 'network must be an IPv4 or IPv6 network (CIDR).');
      ok = false;
    }
  }
  if (!Array.isArray(e.senders) || e.senders.length === 0) {
    add(`${field}.senders`, "senders must list at least one address, '*@domain' or '*'.");
    ok = false;
  } else {
    e.senders.forEach((sender, i) => {
      const pattern = typeof sender === 'string' ? parseSenderPattern(sender) : undefined;
      if (pattern) rule.senders.push(pattern);
      else {
        // Not quoted, for the same reason as allowNetworks.
        add(
          `${field}.senders[${i}]`,
          `this entry is not an address, '*@domain', '*' or '<>'${senderHint(sender)}.`,
        );
        ok = false;
      }
    });
  }
  if (e.mailbox !== undefined) {
    if (typeof e.mailbox === 'string' && ADDRESS.test(e.mailbox.trim())) {
      rule.mailbox = e.mailbox.trim().toLowerCase();
    } else {
      add(`${field}.mailbox`, 'mailbox must be the address of a Microsoft 365 mailbox.');
      ok = false;
    }
  } else if (rule.senders.some((s) => s.kind === 'null')) {
    add(`${field}.mailbox`, "a rule that allows the null sender '<>' needs a mailbox to send as.");
    ok = false;
  }
  return ok ? rule : undefined;
}

/** Whether `outer` holds every address of `inner`. */
function cidrCovers(outer: Cidr, inner: Cidr): boolean {
  if (outer.prefix > inner.prefix) return false;
  for (let bit = 0; bit < outer.prefix; bit++) {
    const byte = bit >> 3;
    const mask = 0x80 >> (bit & 7);
    if (((outer.bytes[byte] as number) & mask) !== ((inner.bytes[byte] as number) & mask)) {
      return false;
    }
  }
  return true;
}

/** What is wrong with a sender entry, told by its shape rather than by quoting it. */
function senderHint(value: unknown): string {
  if (typeof value !== 'string')
    return ` (it is a ${Array.isArray(value) ? 'list' : typeof value})`;
  if (value.trim() === '') return ' (it is empty)';
  if (!value.includes('@')) return ' (it has no @)';
  if (/\s/.test(value.trim())) return ' (it contains a space)';
  return '';
}

function stringList(
  value: unknown,
  field: string,
  add: (field: string, message: string) => void,
  fallback: string[],
): string[] {
  if (value === undefined) return fallback;
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  add(field, `${field} must be a list of strings.`);
  return [];
}

function integerSetting(
  value: unknown,
  field: string,
  fallback: number,
  min: number,
  max: number,
  add: (field: string, message: string) => void,
  alternative = '',
): number {
  if (value === undefined) return fallback;
  if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) {
    return value;
  }
  add(field, `${field} must be a whole number from ${min} to ${max}${alternative}.`);
  return fallback;
}

function sizeSetting(
  value: unknown,
  field: string,
  fallback: number,
  max: number,
  add: (field: string, message: string) => void,
): number {
  if (value === undefined) return fallback;
  const bytes = parseSize(value);
  if (bytes === undefined) {
    add(field, `${field} must be a size such as 35MB or a number of bytes.`);
    return fallback;
  }
  if (bytes > max) {
    add(field, `${field} is above Exchange Online's ceiling of 150 MB.`);
    return fallback;
  }
  return bytes;
}

function durationSetting(
  value: unknown,
  field: string,
  fallback: number,
  add: (field: string, message: string) => void,
): number {
  if (value === undefined) return fallback;
  const ms = parseDuration(value);
  if (ms === undefined) {
    add(field, `${field} must be a duration such as 90s, 30m, 24h or 2d.`);
    return fallback;
  }
  return ms;
}

/** `{ initial, max }` durations, the first at most the second (retry backoff, auth penalty). */
function growingDelaySetting(
  value: unknown,
  field: string,
  fallback: { readonly initialMs: number; readonly maxMs: number },
  example: string,
  add: (field: string, message: string) => void,
): { initialMs: number; maxMs: number } {
  const delay = { ...fallback };
  if (value === undefined) return delay;
  const b = value as Record<string, unknown>;
  if (typeof b !== 'object' || b === null || Array.isArray(b)) {
    add(field, `${field} must be a mapping: ${example}.`);
    return delay;
  }
  delay.initialMs = durationSetting(b.initial, `${field}.initial`, delay.initialMs, add);
  delay.maxMs = durationSetting(b.max, `${field}.max`, delay.maxMs, add);
  if (delay.initialMs > delay.maxMs) {
    add(field, `${field}.initial must not exceed ${field}.max.`);
  }
  return delay;
}

function booleanSetting(
  value: unknown,
  field: string,
  fallback: boolean,
  add: (field: string, message: string) => void,
): boolean {
  if (value === undefined) return fallback;
  if (typeof value === 'boolean') return value;
  add(field, `${field} must be true or false.`);
  return fallback;
}
