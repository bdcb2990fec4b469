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
import * as v from 'valibot';
import {
  count,
  duration,
  FIELD,
  flag,
  isPlainObject,
  mapping,
  parsedBy,
  parseSection,
  rule,
  sectionMapping,
  stringList,
  text,
  unknownSectionKey,
  whenAbsent,
} from '../../config/schema.js';
import type { ConfigProblem } from '../../errors.js';
import { type Cidr, isEverywhere, isLoopbackAddress, parseCidr } from '../listener/cidr.js';
import { throwSectionProblems } from '../listener/config-problems.js';
import { type ListenAddress, parseListenAddress } from '../listener/listen-address.js';
import { type PolicyRule, parseSenderPattern, type SenderPattern } from './policy.js';
import { type HveRoute, hveRouteSchema } from './route-config.js';
import { parseSize } from './size.js';

export type { ListenAddress } from '../listener/listen-address.js';
export { parseListenAddress } from '../listener/listen-address.js';
export type { PolicyRule } from './policy.js';
export type { HveRoute } from './route-config.js';

/** Exchange Online's default maximum message size (35 MB, counted in binary units). */
export const EXCHANGE_MAX_MESSAGE_SIZE = 35 * 1024 * 1024;
/** Exchange Online accepts messages of up to 150 MB when an administrator raises the limit. */
export const EXCHANGE_MAX_MESSAGE_SIZE_CEILING = 150 * 1024 * 1024;
/** Exchange Online's default recipients per message (MaxRecipientEnvelopeLimit). */
export const EXCHANGE_MAX_RECIPIENTS = 500;
/** Exchange Online refuses more than three concurrent SMTP submissions per mailbox. */
export const EXCHANGE_MAX_CONNECTIONS_PER_MAILBOX = 3;

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
  /** Upstreams other than the sending mailbox; today only High Volume Email for internal recipients. @default {} */
  routes: { hve?: HveRoute };
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

export interface ParseRelayOptions {
  /** Relative paths are resolved against this directory (the config file's). @default process.cwd() */
  baseDir?: string;
  /** Replace `relay.listen` (the `--listen` flags). */
  listen?: string[];
  /** Replace `relay.spool` (a `--spool` flag). */
  spool?: string;
}

const ADDRESS = /^[^\s@<>()[\]\\,;:"]+@[^\s@<>()[\]\\,;:"]+$/;

/** `{ initial, max }` durations, the first at most the second (retry backoff, auth penalty). */
const growingDelay = (
  fallback: { readonly initialMs: number; readonly maxMs: number },
  example: string,
) =>
  v.pipe(
    sectionMapping(
      {
        initial: v.optional(duration),
        max: v.optional(duration),
      },
      `${FIELD} must be a mapping: ${example}.`,
    ),
    v.transform(({ initial, max }) => ({
      initialMs: initial ?? fallback.initialMs,
      maxMs: max ?? fallback.maxMs,
    })),
    rule((delay) =>
      delay.initialMs > delay.maxMs ? `${FIELD}.initial must not exceed ${FIELD}.max.` : undefined,
    ),
  );

const SENDERS_MESSAGE = "senders must list at least one address, '*@domain' or '*'.";

const policyRule = v.pipe(
  sectionMapping(
    {
      user: v.optional(
        v.pipe(
          v.string('user must be a user name of the users file.'),
          v.regex(/^[\x21-\x39\x3b-\x7e]{1,128}$/, 'user must be a user name of the users file.'),
        ),
      ),
      network: v.optional(
        parsedBy(
          (input) => (typeof input === 'string' ? parseCidr(input) : undefined),
          'network must be an IPv4 or IPv6 network (CIDR).',
        ),
      ),
      senders: v.pipe(
        v.array(
          // Not quoted when unreadable: the entry could be anything pasted there, a secret included.
          parsedBy(
            (input) => (typeof input === 'string' ? parseSenderPattern(input) : undefined),
            (input) => `this entry is not an address, '*@domain', '*' or '<>'${senderHint(input)}.`,
          ),
          SENDERS_MESSAGE,
        ),
        v.nonEmpty(SENDERS_MESSAGE),
      ),
      mailbox: v.optional(
        v.pipe(
          v.string('mailbox must be the address of a Microsoft 365 mailbox.'),
          v.trim(),
          v.regex(ADDRESS, 'mailbox must be the address of a Microsoft 365 mailbox.'),
          v.toLowerCase(),
        ),
      ),
    },
    'a rule is a mapping: { user | network, senders: [...], mailbox }.',
  ),
  // Read from the input as given, so that these are said even while another key of the rule is wrong.
  v.rawCheck(({ dataset, addIssue }) => {
    const rule = dataset.value;
    if (!isPlainObject(rule)) return;
    if ((rule.user === undefined) === (rule.network === undefined)) {
      addIssue({
        message: 'a rule names exactly one of user (a local account) or network (CIDR).',
      });
    }
    const senders = Array.isArray(rule.senders) ? rule.senders : [];
    if (rule.mailbox === undefined && senders.some((s) => (s as SenderPattern)?.kind === 'null')) {
      addIssue({
        message: "a rule that allows the null sender '<>' needs a mailbox to send as.",
        path: [{ type: 'object', origin: 'value', input: rule, key: 'mailbox', value: undefined }],
      });
    }
  }),
);

const SPOOL_REQUIRED = `${FIELD} is required: the directory that keeps accepted messages.`;
const SPOOL_MESSAGE = `${FIELD} must be a directory path.`;
const POLICY_REQUIRED = `${FIELD} is required: list which senders each user or network may use, and the mailbox each goes out as.`;

/** The `relay:` section as the config file holds it. Paths and `--listen`/`--spool` are applied after. */
/** The section's keys, in the order `Known:` lists them. */
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
  'routes',
] as const;

// Entries in the order their problems are reported, which is not quite RELAY_KEYS's.
export const relaySectionSchema = mapping(
  {
    listen: v.optional(stringList),
    spool: v.pipe(
      v.string(whenAbsent(SPOOL_REQUIRED, SPOOL_MESSAGE)),
      v.trim(),
      v.nonEmpty(SPOOL_MESSAGE),
    ),
    tls: v.optional(
      sectionMapping(
        {
          cert: text(`${FIELD} must name the PEM certificate file.`),
          key: text(`${FIELD} must name the PEM private key file.`),
        },
        `${FIELD} must be a mapping with cert and key (PEM files).`,
      ),
    ),
    users: v.optional(text(`${FIELD} must name a file of name:hash lines.`)),
    allowNetworks: v.optional(stringList, []),
    maxMessageSize: v.optional(
      v.pipe(
        parsedBy(parseSize, `${FIELD} must be a size such as 35MB or a number of bytes.`),
        rule((bytes: number) =>
          bytes > EXCHANGE_MAX_MESSAGE_SIZE_CEILING
            ? `${FIELD} is above Exchange Online's ceiling of 150 MB.`
            : undefined,
        ),
      ),
    ),
    maxRecipients: v.optional(count(1, 1000)),
    rateLimitPerMinute: v.optional(
      v.union(
        [v.literal(false), count(1, 100_000, ' or false for no limit')],
        `${FIELD} must be a whole number from 1 to 100000 or false for no limit.`,
      ),
    ),
    connectionsPerMailbox: v.optional(count(1, EXCHANGE_MAX_CONNECTIONS_PER_MAILBOX)),
    retryFor: v.optional(duration),
    shutdownTimeout: v.optional(duration),
    retryBackoff: v.optional(growingDelay(RELAY_DEFAULTS.retryBackoff, '{ initial: 1m, max: 1h }')),
    authPenalty: v.optional(growingDelay(RELAY_DEFAULTS.authPenalty, '{ initial: 1s, max: 15s }')),
    maxConnections: v.optional(count(1, 10_000)),
    maxConnectionsPerAddress: v.optional(count(1, 10_000)),
    sessionTimeout: v.optional(
      v.pipe(
        duration,
        rule((ms: number) => (ms === 0 ? `${FIELD} must be above 0.` : undefined)),
      ),
    ),
    bounce: v.optional(flag),
    allowPlaintextAuth: v.optional(flag),
    hostname: v.optional(
      v.pipe(
        v.string(`${FIELD} must be a host name.`),
        v.regex(/^[a-z0-9.-]{1,253}$/i, `${FIELD} must be a host name.`),
      ),
    ),
    http: v.optional(
      v.pipe(
        parsedBy((input) => {
          const parsed = typeof input === 'string' ? parseListenAddress(input) : undefined;
          return typeof parsed === 'object' && !parsed.implicitTls ? parsed : undefined;
        }, `${FIELD} must be HOST:PORT, e.g. 127.0.0.1:9025.`),
        rule((address: ListenAddress) =>
          isLoopbackAddress(address.host)
            ? undefined
            : `${FIELD} ${address.text} is not a loopback address: /healthz and /metrics are served on loopback only (127.0.0.1 or ::1).`,
        ),
        v.transform(({ host, port }) => ({ host, port })),
      ),
    ),
    routes: v.optional(
      sectionMapping(
        { hve: v.optional(hveRouteSchema) },
        `${FIELD} must be a mapping of routes: { hve: { account, internalDomains } }.`,
      ),
    ),
    policy: v.pipe(
      v.array(
        policyRule,
        whenAbsent(POLICY_REQUIRED, `${FIELD} must be a non-empty list of rules.`),
      ),
      v.nonEmpty(`${FIELD} must be a non-empty list of rules.`),
    ),
  },
  {
    notMapping: 'relay must be a mapping of settings.',
    unknownKey: (key, near) => unknownSectionKey(key, near, RELAY_KEYS),
  },
);

/** The `relay:` section as written: what `relaySectionSchema` reads. */
export type RelaySection = v.InferOutput<typeof relaySectionSchema>;

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

  let input: Record<string, unknown> = {};
  if (raw === undefined || raw === null) {
    add('relay', 'The config file has no relay section: add one (see `mailbridge relay --help`).');
  } else if (!isPlainObject(raw)) {
    add('relay', 'relay must be a mapping of settings.');
  } else {
    input = { ...raw };
  }
  if (options.spool !== undefined) input.spool = options.spool;
  const parsed = parseSection(relaySectionSchema, input, { prefix: 'relay' });
  problems.push(...parsed.problems);
  // What could be read, to check the rules between settings too: a value with a problem counts as absent.
  const section = parsed.value as Partial<RelaySection>;
  const valid = (field: string) => parsed.ok || !parsed.invalid(`relay.${field}`);

  const listen: ListenAddress[] = [];
  const flags = options.listen && options.listen.length > 0 ? options.listen : undefined;
  const listenTexts =
    flags ?? (valid('listen') ? (section.listen ?? [...RELAY_DEFAULTS.listen]) : undefined);
  listenTexts?.forEach((text, i) => {
    const address = parseListenAddress(text);
    if (typeof address === 'string')
      add(flags ? `--listen ${text}` : `relay.listen[${i}]`, address);
    else listen.push(address);
  });
  if (listenTexts?.length === 0) add('relay.listen', 'relay.listen needs at least one address.');

  const allowNetworks: Cidr[] = [];
  (valid('allowNetworks') ? (section.allowNetworks ?? []) : []).forEach((text, i) => {
    const cidr = parseCidr(text);
    // Not quoted: a value that is not a network could be anything pasted there, a secret included.
    if (cidr) allowNetworks.push(cidr);
    else add(`relay.allowNetworks[${i}]`, 'this entry is not an IPv4 or IPv6 network (CIDR).');
  });

  const tls =
    valid('tls') && section.tls
      ? { cert: path(section.tls.cert), key: path(section.tls.key) }
      : undefined;
  const users = valid('users') && section.users ? path(section.users) : undefined;
  const policy: PolicyRule[] = [];
  if (Array.isArray(section.policy)) {
    section.policy.forEach((entry, index) => {
      if (!valid(`policy[${index}]`)) return;
      const { user, network, senders, mailbox } = entry;
      policy.push({
        index,
        senders,
        ...(user === undefined ? {} : { user }),
        ...(network === undefined ? {} : { network }),
        ...(mailbox === undefined ? {} : { mailbox }),
      });
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

  const or = <K extends keyof RelaySection>(key: K, fallback: NonNullable<RelaySection[K]>) =>
    valid(String(key)) && section[key] !== undefined
      ? (section[key] as NonNullable<RelaySection[K]>)
      : fallback;
  const settings: RelaySettings = {
    listen,
    spool: valid('spool') && section.spool ? path(section.spool) : '',
    ...(tls ? { tls } : {}),
    ...(users ? { users } : {}),
    allowNetworks,
    policy,
    maxMessageSize: or('maxMessageSize', RELAY_DEFAULTS.maxMessageSize),
    maxRecipients: or('maxRecipients', RELAY_DEFAULTS.maxRecipients),
    rateLimitPerMinute: or('rateLimitPerMinute', RELAY_DEFAULTS.rateLimitPerMinute),
    connectionsPerMailbox: or('connectionsPerMailbox', RELAY_DEFAULTS.connectionsPerMailbox),
    retryFor: or('retryFor', RELAY_DEFAULTS.retryFor),
    retryBackoff: or('retryBackoff', { ...RELAY_DEFAULTS.retryBackoff }),
    bounce: or('bounce', false),
    ...(valid('http') && section.http ? { http: section.http } : {}),
    shutdownTimeout: or('shutdownTimeout', RELAY_DEFAULTS.shutdownTimeout),
    ...(valid('hostname') && section.hostname ? { hostname: section.hostname } : {}),
    allowPlaintextAuth: or('allowPlaintextAuth', false),
    maxConnections: or('maxConnections', RELAY_DEFAULTS.maxConnections),
    maxConnectionsPerAddress: or(
      'maxConnectionsPerAddress',
      RELAY_DEFAULTS.maxConnectionsPerAddress,
    ),
    sessionTimeout: or('sessionTimeout', RELAY_DEFAULTS.sessionTimeout),
    authPenalty: or('authPenalty', { ...RELAY_DEFAULTS.authPenalty }),
    routes: valid('routes') && section.routes?.hve ? { hve: section.routes.hve } : {},
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

  throwSectionProblems(
    'relay',
    'RELAY_CONFIG_INVALID',
    problems,
    'Fix the relay section of the config file; `mailbridge relay --help` lists its keys.',
  );
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

export { parseDuration } from '../../config/schema.js';

export { parseSize } from './size.js';

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
