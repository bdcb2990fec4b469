/**
 * The queue's settings: the Redis URL from `--queue`, `MAILBRIDGE_REDIS_URL`
 * or `queue.url`, and the `queue:` section (src/config/sections.ts). The
 * password never comes from argv: `--queue` names the server, and its
 * password is taken from the environment or the config file when they name
 * the same host and port.
 */

import { dirname, resolve } from 'node:path';
import { DEFAULT_MAX_CONNECTIONS_PER_MAILBOX } from '../../clients/connection-limit.js';
import { readCaFile, readNodeExtraCaCerts } from '../../config/ca-file.js';
import { readRedisUrlEnvironment } from '../../config/env.js';
import { readConfigFile } from '../../config/file.js';
import { parseSection } from '../../config/schema.js';
import { type QueueSection, queueSectionSchema } from '../../config/sections.js';
import { ConfigurationError } from '../../errors.js';
import { displayText } from '../../util/display-text.js';
import { trustOptions } from '../../util/tls.js';

export const DEFAULT_WORKER_CONCURRENCY = 4;
export const DEFAULT_JOB_ATTEMPTS = 5;
export const DEFAULT_LOCK_DURATION_MS = 30_000;
/** Long enough for a cut-off worker's run of a large mailbox to end. */
export const DEFAULT_LOCK_WAIT_MS = 3_600_000;

export interface QueueSettings {
  /** With its password: give it to ioredis, never to a log or an error. */
  url: string;
  /** The same URL without user and password, for messages. */
  shownUrl: string;
  concurrency: number;
  connectionsPerMailbox: number;
  attempts: number;
  lockDurationMs: number;
  /** How long a job is deferred for another run's lock before it fails. */
  lockWaitMs: number;
  /** For `rediss://` with `queue.caFile`: Node's CAs and that file's; absent, Node's own. */
  tls?: { ca: string[] };
}

export interface QueueSettingsSources {
  /** `--queue`'s value. */
  flag?: string | undefined;
  /** `--config`'s file. */
  configFile?: string | undefined;
  env?: Readonly<Record<string, string | undefined>>;
}

/**
 * @throws ConfigurationError QUEUE_PASSWORD_IN_ARGV, QUEUE_URL_INVALID,
 *   QUEUE_URL_MISSING, QUEUE_OPTION_INVALID
 */
export async function readQueueSettings(sources: QueueSettingsSources): Promise<QueueSettings> {
  const section = sources.configFile ? await readQueueSection(sources.configFile) : {};
  const fromEnv = readRedisUrlEnvironment(sources.env);
  const url = resolveRedisUrl(sources.flag, [
    { url: fromEnv, where: 'MAILBRIDGE_REDIS_URL' },
    { url: section.url, where: 'queue.url' },
  ]);
  return {
    url: url.href,
    shownUrl: shownRedisUrl(url),
    concurrency: section.concurrency ?? DEFAULT_WORKER_CONCURRENCY,
    connectionsPerMailbox: section.connectionsPerMailbox ?? DEFAULT_MAX_CONNECTIONS_PER_MAILBOX,
    attempts: section.attempts ?? DEFAULT_JOB_ATTEMPTS,
    lockDurationMs: section.lockDuration ?? DEFAULT_LOCK_DURATION_MS,
    lockWaitMs: section.lockWait ?? DEFAULT_LOCK_WAIT_MS,
    ...(section.caFile ? { tls: await trustedCas(section.caFile) } : {}),
  };
}

/**
 * A `ca` option replaces Node's trust store, so the default CAs and
 * NODE_EXTRA_CA_CERTS's (which Node loaded at start) are listed with the file's.
 */
async function trustedCas(caFile: string): Promise<{ ca: string[] }> {
  const result = await readCaFile(caFile);
  if ('problem' in result) {
    throw new ConfigurationError({
      code: 'QUEUE_OPTION_INVALID',
      message: `queue.caFile ${displayText(caFile)} cannot be used: ${result.problem}`,
      remedy: "Name a PEM file holding the CA that signed the Redis server's certificate.",
    });
  }
  const extra = [
    ...result.certificates,
    ...(await readNodeExtraCaCerts(process.env.NODE_EXTRA_CA_CERTS)),
  ];
  return trustOptions(extra) as { ca: string[] };
}

async function readQueueSection(file: string): Promise<Partial<QueueSection>> {
  const raw = (await readConfigFile(file)).queue;
  if (raw === undefined || raw === null) return {};
  const parsed = parseSection(queueSectionSchema, raw, { prefix: 'queue' });
  if (parsed.problems.length === 0) {
    const section = parsed.value as Partial<QueueSection>;
    // Relative to the config file, as the file settings of the app are.
    if (section.caFile) section.caFile = resolve(dirname(resolve(file)), section.caFile);
    return section;
  }
  const lines = parsed.problems.map((p) => `  - ${p.field}: ${p.message}`);
  throw new ConfigurationError({
    code: 'QUEUE_OPTION_INVALID',
    message: `The queue section of the config file is not valid:\n${lines.join('\n')}`,
    remedy: 'Fix each setting named.',
    problems: parsed.problems,
  });
}

interface UrlSource {
  url: string | undefined;
  where: string;
}

/**
 * The URL to connect to: `flag` when given (refused if it carries a
 * password), with the user and password of the first other source naming
 * the same host and port; otherwise the first other source.
 */
export function resolveRedisUrl(flag: string | undefined, others: readonly UrlSource[]): URL {
  const given = others.filter((s): s is { url: string; where: string } => s.url !== undefined);
  if (flag === undefined) {
    const first = given[0];
    if (!first) {
      throw new ConfigurationError({
        code: 'QUEUE_URL_MISSING',
        message: 'No Redis server named for the job queue',
        remedy:
          'Give --queue redis://HOST:PORT/DB, or set MAILBRIDGE_REDIS_URL (or queue.url in the config file).',
      });
    }
    return parseRedisUrl(first.url, first.where);
  }
  const url = parseRedisUrl(flag, '--queue');
  if (url.password !== '') {
    throw new ConfigurationError({
      code: 'QUEUE_PASSWORD_IN_ARGV',
      message: '--queue holds a password: every user of this machine can read it in `ps`',
      remedy: `Give --queue ${shownRedisUrl(url)} and put the URL with its password in MAILBRIDGE_REDIS_URL (or queue.url of a config file only you can read).`,
    });
  }
  for (const source of given) {
    const other = parseRedisUrl(source.url, source.where);
    if (other.hostname.toLowerCase() === url.hostname.toLowerCase() && port(other) === port(url)) {
      if (url.username === '') url.username = other.username;
      url.password = other.password;
      break;
    }
  }
  return url;
}

function parseRedisUrl(text: string, where: string): URL {
  let url: URL | undefined;
  try {
    url = new URL(text.trim());
  } catch {
    url = undefined;
  }
  if (!url || !/^rediss?:$/.test(url.protocol) || url.hostname === '') {
    throw new ConfigurationError({
      code: 'QUEUE_URL_INVALID',
      // Only the start, and never a password: the text may be a mistyped URL with one.
      message: `${where} is not a Redis URL (${url ? shownRedisUrl(url) : 'it does not parse as a URL'})`,
      remedy: 'Give redis://HOST:PORT/DB, or rediss://HOST:PORT/DB for TLS.',
    });
  }
  if (!/^\/?\d*$/.test(url.pathname)) {
    throw new ConfigurationError({
      code: 'QUEUE_URL_INVALID',
      message: `${where} names database '${url.pathname.slice(1, 20)}'; Redis databases are numbers`,
      remedy: 'Give redis://HOST:PORT/DB with DB a number (0 when in doubt).',
    });
  }
  return url;
}

function port(url: URL): string {
  return url.port === '' ? '6379' : url.port;
}

/** The URL without user and password. */
export function shownRedisUrl(url: URL): string {
  const shown = new URL(url.href);
  shown.username = '';
  shown.password = '';
  return `${shown.protocol}//${shown.host}${shown.pathname === '/' ? '' : shown.pathname}`;
}
