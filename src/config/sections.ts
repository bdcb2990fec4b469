/**
 * Job sections declared ahead of their jobs: `migrate:` and `archive:`
 * (issue 16), `proxy:` (issue 18) and `queue:` (issue 20). Each is a schema and the type it
 * infers; the job that reads a section calls `sectionProblems` (or
 * `parseSection`) and adds its own rules between settings (listeners beyond
 * loopback, networks). Unknown keys are refused with their "did you mean",
 * as in `relay:`.
 */
import * as v from 'valibot';
import type { ConfigProblem } from '../errors.js';
import {
  type AnySchema,
  count,
  duration,
  FIELD,
  flag,
  isPlainObject,
  parseSection,
  rule,
  sectionMapping,
  stringList,
  text,
} from './schema.js';

const path = text(`${FIELD} must name a file or directory.`);

/** `SRC=DEST`, both sides named. */
function folderMapping(entry: string): [string, string] | undefined {
  const at = entry.indexOf('=');
  const from = entry.slice(0, at).trim();
  const to = entry.slice(at + 1).trim();
  return at > 0 && from !== '' && to !== '' ? [from, to] : undefined;
}

/** A calendar date, `YYYY-MM-DD`, that exists. */
function isCalendarDate(value: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) return false;
  const date = new Date(`${value}T00:00:00Z`);
  return !Number.isNaN(date.getTime()) && date.toISOString().startsWith(value);
}

const COMMAND_MESSAGE = `${FIELD} must be a list: [program, argument, ...], run without a shell.`;

/** A command line as argv: a single string would invite shell quoting that nothing here applies. */
const commandLine = v.pipe(
  v.array(v.string(COMMAND_MESSAGE), COMMAND_MESSAGE),
  v.minLength(1, COMMAND_MESSAGE),
  rule((argv: string[]) =>
    argv[0]?.trim() ? undefined : `${FIELD} must start with the program to run.`,
  ),
);

const MAP_MESSAGE = `${FIELD} must map source folders to target folders: { SRC: DEST } or a list of 'SRC=DEST'.`;

/** `migrate:` — copy mailboxes from one IMAP server to another (issue 16). */
export const migrateSectionSchema = sectionMapping(
  {
    from: v.optional(text(`${FIELD} must name the source.`)),
    to: v.optional(text(`${FIELD} must name the target.`)),
    folders: v.optional(stringList),
    exclude: v.optional(stringList),
    map: v.optional(
      v.union(
        [
          // valibot's records take a list too: `['INBOX']` would read as { 0: 'INBOX' }.
          v.pipe(
            v.custom<Record<string, unknown>>(isPlainObject),
            v.record(v.string(), v.pipe(v.string(), v.trim(), v.nonEmpty())),
          ),
          v.pipe(
            v.array(v.string()),
            v.rawTransform<string[], Record<string, string>>(({ dataset, addIssue, NEVER }) => {
              const pairs = dataset.value.map(folderMapping);
              if (pairs.every((pair) => pair !== undefined)) return Object.fromEntries(pairs);
              addIssue({ message: MAP_MESSAGE });
              return NEVER;
            }),
          ),
        ],
        MAP_MESSAGE,
      ),
    ),
    since: v.optional(
      v.pipe(
        v.string(`${FIELD} must be a date, YYYY-MM-DD (in YAML, put it in quotes).`),
        v.trim(),
        rule((date: string) =>
          isCalendarDate(date) ? undefined : `${FIELD} must be a date, YYYY-MM-DD.`,
        ),
      ),
    ),
    state: v.optional(path),
    connections: v.optional(count(1, 16)),
    syncFlags: v.optional(flag),
    fromPasswordFile: v.optional(path),
    toPasswordFile: v.optional(path),
    /** An imaps:// side with XOAUTH2: the command printing its access token. */
    fromTokenCommand: v.optional(commandLine),
    toTokenCommand: v.optional(commandLine),
  },
  `${FIELD} must be a mapping of settings.`,
);
export type MigrateSection = v.InferOutput<typeof migrateSectionSchema>;

/** `archive:` — what `mailbridge archive` takes from the config file; its flags win. */
export const archiveSectionSchema = sectionMapping(
  {
    /** IMAP connections per mailbox (`--connections`); the job checks the per-mailbox cap. */
    connections: v.optional(count(1, 16)),
  },
  `${FIELD} must be a mapping of settings, e.g. archive: { connections: 4 }.`,
);
export type ArchiveSection = v.InferOutput<typeof archiveSectionSchema>;

const listener = (example: string) =>
  v.optional(
    sectionMapping(
      { listen: v.optional(stringList) },
      `${FIELD} must be a mapping: { listen: [${example}] }.`,
    ),
  );

/** `proxy:` — IMAP and POP3 with a password inside, app-only OAuth2 towards Exchange (issue 18). */
export const proxySectionSchema = sectionMapping(
  {
    imap: listener("'127.0.0.1:1143'"),
    pop3: listener("'127.0.0.1:1110'"),
    tls: v.optional(
      sectionMapping(
        {
          cert: text(`${FIELD} must name the PEM certificate file.`),
          key: text(`${FIELD} must name the PEM private key file.`),
          minVersion: v.optional(
            v.picklist(
              ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'],
              `${FIELD} must be one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3.`,
            ),
          ),
        },
        `${FIELD} must be a mapping with cert and key (PEM files).`,
      ),
    ),
    users: v.optional(
      v.array(
        sectionMapping(
          {
            name: text(`${FIELD} must be the user's login name.`),
            passwordHash: text(
              `${FIELD} must be a password hash (make one with \`mailbridge proxy hash-password\`).`,
            ),
            mailboxes: v.pipe(
              v.array(text(`${FIELD} must be a mailbox address.`), `${FIELD} must list mailboxes.`),
              v.nonEmpty(`${FIELD} must list at least one mailbox the user may read.`),
            ),
          },
          'a user is a mapping: { name, passwordHash, mailboxes: [...] }.',
        ),
        `${FIELD} must be a list of users.`,
      ),
    ),
    allowNetworks: v.optional(stringList),
    maxConnections: v.optional(count(1, 10_000)),
    maxConnectionsPerAddress: v.optional(count(1, 10_000)),
    maxConnectionsPerUser: v.optional(count(1, 1000)),
    idleTimeout: v.optional(duration),
    /** Time a client has from connecting to a successful login; then it is cut off. */
    loginTimeout: v.optional(
      v.pipe(
        duration,
        rule((ms: number) => (ms === 0 ? `${FIELD} must be above 0.` : undefined)),
      ),
    ),
    /** On SIGTERM, how long relayed sessions get to reach the end of a reply before they are cut. */
    shutdownTimeout: v.optional(duration),
    /** Delay after wrong passwords, per address and per user, doubling from initial to max. */
    authPenalty: v.optional(
      sectionMapping(
        { initial: v.optional(duration), max: v.optional(duration) },
        `${FIELD} must be a mapping: { initial: 1s, max: 15s }.`,
      ),
    ),
    http: v.optional(text(`${FIELD} must be HOST:PORT, e.g. 127.0.0.1:9026.`)),
  },
  `${FIELD} must be a mapping of settings.`,
);
export type ProxySection = v.InferOutput<typeof proxySectionSchema>;

/** `queue:` — jobs on BullMQ/Redis, run by workers on several machines (issue 20). */
export const queueSectionSchema = sectionMapping(
  {
    // Never quoted: the URL may hold the Redis password.
    url: v.optional(
      v.pipe(
        text(`${FIELD} must be a Redis URL, redis://HOST:PORT/DB or rediss://… for TLS.`),
        rule((url: string) =>
          /^rediss?:\/\/[^\s/]+/i.test(url)
            ? undefined
            : `${FIELD} must be a Redis URL, redis://HOST:PORT/DB or rediss://… for TLS.`,
        ),
      ),
    ),
    /** Mailboxes one worker archives at once (`worker --concurrency` wins). */
    concurrency: v.optional(count(1, 100)),
    /** Connections to one mailbox open at once across every worker: the shared budget. */
    connectionsPerMailbox: v.optional(count(1, 16)),
    /** Runs of a job before it is marked failed. */
    attempts: v.optional(count(1, 100)),
    /**
     * How long a job's lock (and a connection lease) outlives a worker that
     * stopped renewing it: the time before a killed worker's jobs and
     * connections go to the others.
     */
    lockDuration: v.optional(duration),
    /**
     * How long a job waits, deferred, for another run's lock on its archive
     * or migrate state before it fails: a lock left on another machine is
     * never known to be free.
     */
    lockWait: v.optional(duration),
    /** PEM CA certificates to trust for a `rediss://` server, besides Node's own. */
    caFile: v.optional(text(`${FIELD} must be the path of a PEM file.`)),
  },
  `${FIELD} must be a mapping of settings.`,
);
export type QueueSection = v.InferOutput<typeof queueSectionSchema>;

/** The declared sections by name. */
export const JOB_SECTION_SCHEMAS = {
  archive: archiveSectionSchema,
  migrate: migrateSectionSchema,
  proxy: proxySectionSchema,
  queue: queueSectionSchema,
} as const satisfies Record<string, AnySchema>;

/** The problems of a declared section (none when it is absent), each named by its key. */
export function sectionProblems(
  name: keyof typeof JOB_SECTION_SCHEMAS,
  raw: unknown,
): ConfigProblem[] {
  if (raw === undefined || raw === null) return [];
  return parseSection(JOB_SECTION_SCHEMAS[name], raw, { prefix: name }).problems;
}
