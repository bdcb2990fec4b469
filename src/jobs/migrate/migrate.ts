/**
 * `migrateMailbox`: copies one mailbox into another over IMAP, folder by
 * folder, resumable and without duplicates (see copy-folder.ts and state.ts).
 */
import { createTokenProvider, type TokenProvider } from '../../auth/token-provider.js';
import {
  type ConnectionSlots,
  connectionKey,
  DEFAULT_MAX_CONNECTIONS_PER_MAILBOX,
  processConnectionSlots,
} from '../../clients/connection-limit.js';
import { createImapSession, type ImapSession } from '../../clients/imap-session.js';
import type { MailbridgeConfig } from '../../config/types.js';
import { ConfigurationError } from '../../errors.js';
import { type Logger, silentLogger } from '../../log/logger.js';
import { displayText } from '../../util/display-text.js';
import { folderSuggestions, unmatchedPatterns } from '../mailbox-read/folder-filter.js';
import { runFolderWorkers } from '../mailbox-read/folder-workers.js';
import { LeasePool } from '../mailbox-read/lease-pool.js';
import { AppendLane, type LaneSlot, passwordPipeline, tokenPipeline } from './append-lane.js';
import { ArchiveSource } from './archive-source.js';
import {
  type ConnectionPair,
  type CopyContext,
  copyFolder,
  type MigrateFolderResult,
  type MigrateProgressEvent,
  throwIfInterrupted,
} from './copy-folder.js';
import {
  archiveDestinationError,
  describeEndpoint,
  type MigrateEndpoint,
  type PasswordImapEndpoint,
  parseEndpoint,
  resolvePassword,
  type Side,
} from './endpoint.js';
import {
  type FolderMapping,
  type ListedFolder,
  parseMapEntry,
  planFolders,
} from './folder-plan.js';
import { refusedOnSide } from './login-side.js';
import { PairDestination } from './pair-destination.js';
import { createPasswordSession, type ImapCredential } from './password-session.js';
import { defaultStateDir, MigrationState } from './state.js';
import { syncFolderFlags } from './sync-flags.js';
import { forgetVanishedCopies } from './vanished-copies.js';

/** Connections per side by default: several folders at once, well under Exchange's ~16 per mailbox. */
export const DEFAULT_MIGRATE_CONNECTIONS = 4;

export interface MigrateMailboxOptions {
  /**
   * `m365:ADDRESS`, `imaps://USER@HOST:PORT` or `imap://…` (STARTTLS),
   * `archive:DIR` (a mailbox's folder written by `mailbridge archive`; source
   * only), or a parsed endpoint.
   */
  from: string | MigrateEndpoint;
  to: string | MigrateEndpoint;
  /** Configuration of an `m365:` source; also used for an `m365:` destination without `toConfig`. */
  fromConfig?: MailbridgeConfig;
  toConfig?: MailbridgeConfig;
  /** Password of a password endpoint; else `MAILBRIDGE_FROM_PASSWORD` / `MAILBRIDGE_TO_PASSWORD`. */
  fromPassword?: string;
  toPassword?: string;
  /**
   * An `imaps://` endpoint that logs in with XOAUTH2: the program and
   * arguments (no shell) of a command printing an OAuth access token on
   * stdout, run for every login. Takes the place of the password.
   */
  fromTokenCommand?: readonly string[];
  toTokenCommand?: readonly string[];
  /** Source folders to take (`*` wildcard); all when empty. */
  folders?: readonly string[];
  exclude?: readonly string[];
  /** `SRC=DEST` overrides of destination folder names (DEST with the destination's delimiter). */
  map?: readonly string[];
  /** Only messages received on or after this day. */
  since?: Date;
  /** State folder of this pair. @default under $XDG_STATE_HOME/mailbridge/migrate */
  stateDir?: string;
  /**
   * Connections on each side, folders spread over them (those sharing a
   * destination folder on one). @default 4, at most the session layer's cap per mailbox (8)
   */
  connections?: number;
  /** Plans and counts; creates, copies and writes nothing. */
  dryRun?: boolean;
  /**
   * Brings flag changes on messages copied by earlier runs across (\Deleted
   * and \Recent never). @default false
   */
  syncFlags?: boolean;
  logger?: Logger;
  signal?: AbortSignal;
  onProgress?: (event: MigrateProgressEvent) => void;
  /** Environment for passwords and the default state folder. @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
  /**
   * Where each side's sessions take their slot of `maxConnections`: this
   * process by default; the job queue's workers share leases in Redis.
   */
  connectionSlots?: ConnectionSlots;
  /** Sessions to one mailbox at once, on each side. @default 8 */
  maxConnections?: number;
  /** Token providers by configuration, shared by the runs of a list so each app asks once. */
  tokenProviders?: Map<MailbridgeConfig, TokenProvider>;
}

export interface MigrateResult {
  /** Every message is at the destination (copied now or before, or found there). */
  ok: boolean;
  dryRun: boolean;
  from: string;
  to: string;
  stateDir: string;
  copied: number;
  alreadyPresent: number;
  /** Messages the destination refused; each folder lists them with the server's words. */
  skipped: number;
  bytes: number;
  /** Messages copied earlier whose flags were brought up to date (with `syncFlags`). */
  flagsUpdated: number;
  folders: MigrateFolderSummary[];
}

export type MigrateFolderSummary = MigrateFolderResult & {
  /** With `syncFlags`: messages copied earlier whose flags changed here. */
  flagsUpdated?: number;
};

export async function migrateMailbox(options: MigrateMailboxOptions): Promise<MigrateResult> {
  const logger = options.logger ?? silentLogger;
  const env = options.env ?? process.env;
  const from =
    typeof options.from === 'string' ? parseEndpoint(options.from, 'from') : options.from;
  const to = typeof options.to === 'string' ? parseEndpoint(options.to, 'to') : options.to;
  if (to.kind === 'archive') throw archiveDestinationError('--to');
  if (describeEndpoint(from).toLowerCase() === describeEndpoint(to).toLowerCase()) {
    // Every message would be "already there": almost surely a typo in one of the two.
    throw new ConfigurationError({
      code: 'MIGRATE_ENDPOINT_INVALID',
      message: `--from and --to are the same mailbox, ${displayText(describeEndpoint(to), 80)}`,
      remedy: 'Give the mailbox to copy from as --from and the one to copy into as --to.',
    });
  }
  for (const [side, endpoint] of [
    ['from', from],
    ['to', to],
  ] as const) {
    if (options[`${side}TokenCommand`] && endpoint.kind !== 'imap') {
      throw new ConfigurationError({
        code: 'MIGRATE_OPTION_INVALID',
        message: `migrate.${side}TokenCommand is set, but --${side} ${displayText(describeEndpoint(endpoint), 80)} is not an imaps:// server`,
        remedy: `Give --${side} imaps://USER@HOST:993 for a server that takes XOAUTH2 with that token, or remove the setting.`,
      });
    }
  }
  const archive = from.kind === 'archive' ? new ArchiveSource(from.dir, logger) : undefined;
  const map = (options.map ?? []).map((text) => {
    const entry = parseMapEntry(text);
    if (!entry) {
      throw new ConfigurationError({
        code: 'MIGRATE_OPTION_INVALID',
        message: `--map '${displayText(text, 80)}' is not SRC=DEST`,
        remedy:
          "Give the source folder's path, `=`, and the destination path: --map 'Sent=Sent Items'.",
      });
    }
    return entry;
  });
  const pair = { from: describeEndpoint(from), to: describeEndpoint(to) };
  const stateDir = options.stateDir ?? defaultStateDir(pair.from, pair.to, env);
  const dryRun = options.dryRun === true;
  const connections = options.connections ?? DEFAULT_MIGRATE_CONNECTIONS;
  if (
    !Number.isInteger(connections) ||
    connections < 1 ||
    connections > DEFAULT_MAX_CONNECTIONS_PER_MAILBOX
  ) {
    throw new ConfigurationError({
      code: 'MIGRATE_OPTION_INVALID',
      message: `--connections must be a whole number from 1 to ${DEFAULT_MAX_CONNECTIONS_PER_MAILBOX}, not ${displayText(String(connections), 20)}`,
      remedy: `Each is one connection on each side; Exchange Online allows about 16 per mailbox. The default is ${DEFAULT_MIGRATE_CONNECTIONS}.`,
    });
  }

  const providers = options.tokenProviders ?? new Map<MailbridgeConfig, TokenProvider>();
  const slots = {
    ...(options.connectionSlots ? { connectionSlots: options.connectionSlots } : {}),
    ...(options.maxConnections ? { maxConnections: options.maxConnections } : {}),
  };
  /** One token provider per configuration, so each app asks once for all the run's connections. */
  const providerOf = (config: MailbridgeConfig): TokenProvider => {
    let provider = providers.get(config);
    if (!provider) {
      provider = createTokenProvider(config, { logger });
      providers.set(config, provider);
    }
    return provider;
  };
  /** A password endpoint's token command, else its password (given, or from the environment). */
  const credential = (side: Side, endpoint: PasswordImapEndpoint): ImapCredential => {
    const argv = side === 'from' ? options.fromTokenCommand : options.toTokenCommand;
    // One command can serve many users (a list of pairs): it learns which from MAILBRIDGE_USER.
    if (argv) {
      return {
        argv,
        name: `migrate.${side}TokenCommand`,
        env: { ...env, MAILBRIDGE_USER: endpoint.user },
      };
    }
    return (
      (side === 'from' ? options.fromPassword : options.toPassword) ??
      resolvePassword(side, { env })
    );
  };
  const open = (endpoint: MigrateEndpoint, side: Side): ImapSession => {
    if (endpoint.kind === 'archive') {
      if (!archive) throw archiveDestinationError(`--${side}`);
      return archive.session();
    }
    if (endpoint.kind === 'imap')
      return createPasswordSession(endpoint, credential(side, endpoint), { logger, ...slots });
    const config = side === 'from' ? options.fromConfig : (options.toConfig ?? options.fromConfig);
    if (!config) {
      throw new ConfigurationError({
        code: 'MIGRATE_OPTION_INVALID',
        message: `--${side} m365:${endpoint.mailbox} needs a configuration (tenant, app, credential)`,
        remedy: `Pass ${side}Config to migrateMailbox (the CLI loads the usual configuration, or --${side}-config FILE).`,
      });
    }
    return createImapSession(config, {
      mailbox: endpoint.mailbox,
      tokenProvider: providerOf(config),
      logger,
      ...slots,
    });
  };

  /** The slot a pipelined APPEND connection holds: the same budget as the sessions to that mailbox. */
  const laneSlot = (host: string, port: number, user: string): LaneSlot => ({
    key: connectionKey(host, port, user),
    limit: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS_PER_MAILBOX,
    slots: options.connectionSlots ?? processConnectionSlots,
  });
  /** The destination's pipelined APPEND connection of one pair (append-lane.ts). */
  const appends = (endpoint: MigrateEndpoint): AppendLane => {
    if (endpoint.kind === 'archive') throw archiveDestinationError('--to');
    if (endpoint.kind === 'imap') {
      const slot = laneSlot(endpoint.host, endpoint.port, endpoint.user);
      return new AppendLane(passwordPipeline(endpoint, credential('to', endpoint)), slot, logger);
    }
    // open() refuses an m365: endpoint without a configuration before any lane is made.
    const config = (options.toConfig ?? options.fromConfig) as MailbridgeConfig;
    const slot = laneSlot(config.imap.host, config.imap.port, endpoint.mailbox);
    return new AppendLane(
      tokenPipeline(config, endpoint.mailbox, providerOf(config)),
      slot,
      logger,
    );
  };
  /** Session or APPEND connection, one at a time: a pair counts once against the destination's budget. */
  const destinationOfPair = () => {
    // The session first: it refuses an endpoint the lane could not serve (no configuration).
    const session = open(to, 'to');
    return new PairDestination(session, () => open(to, 'to'), appends(to));
  };

  // Both are checked before anything is written: a wrong password must not leave a state folder behind.
  const source = open(from, 'from');
  const destination = destinationOfPair();
  // The first pair is the one that lists; the others open when a folder or a batch needs them.
  const pool = new LeasePool<ConnectionPair>(connections, (index) =>
    index === 0
      ? { source, destination }
      : { source: open(from, 'from'), destination: destinationOfPair() },
  );
  let state: MigrationState | undefined;
  try {
    // Both settled before either failure is thrown: a session closed while its login is still
    // on its way would keep that connection, and the process, alive.
    // The first logins of the run: a refusal names its side (both may be m365: mailboxes).
    const listed = await Promise.allSettled([
      listFolders(source).catch((error) => Promise.reject(refusedOnSide(error, 'from', from))),
      listFolders(destination).catch((error) => Promise.reject(refusedOnSide(error, 'to', to))),
    ]);
    const [sourceFolders, destFolders] = listed.map((outcome) => {
      if (outcome.status === 'rejected') throw outcome.reason;
      return outcome.value;
    }) as [ListedFolder[], ListedFolder[]];
    const plan = planFolders(sourceFolders, destFolders, {
      include: options.folders ?? [],
      exclude: options.exclude ?? [],
      map,
    });
    checkSelection(plan, sourceFolders, options.folders ?? []);
    state = await MigrationState.open(stateDir, pair, { readOnly: dryRun });
    if (!dryRun) await subscribeExisting(destination, plan, destFolders);

    const context: CopyContext = {
      pool,
      state,
      dryRun,
      logger,
      ...(options.since ? { since: options.since } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    };
    const opened = state;
    const folders = await runFolderWorkers(
      plan,
      pool,
      async (pair, mapping): Promise<MigrateFolderSummary> => {
        throwIfInterrupted(options.signal);
        await forgetVanishedCopies(pair.destination, opened, mapping, logger);
        const copied = await copyFolder(context, pair, mapping);
        if (archive) reportDamaged(copied, archive.takeDamaged(mapping.source), options.onProgress);
        if (options.syncFlags !== true) return copied;
        const flags = { source: pair.source, destination: pair.destination, state: opened, dryRun };
        return { ...copied, flagsUpdated: await syncFolderFlags(flags, mapping) };
      },
    );
    const sum = (pick: (f: MigrateFolderSummary) => number) =>
      folders.reduce((total, f) => total + pick(f), 0);
    const skipped = sum((f) => f.skipped.length);
    return {
      ok: skipped === 0,
      dryRun,
      ...pair,
      stateDir,
      copied: sum((f) => f.copied),
      alreadyPresent: sum((f) => f.alreadyPresent),
      skipped,
      bytes: sum((f) => f.bytes),
      flagsUpdated: sum((f) => f.flagsUpdated ?? 0),
      folders,
    };
  } finally {
    await state?.close();
    // The listing pair may never have entered the pool.
    const sessions = new Set<ImapSession>([source, destination]);
    for (const p of pool.items) sessions.add(p.source).add(p.destination);
    await Promise.all([...sessions].map((s) => s.close()));
  }
}

/** Archived messages whose file was missing or altered: not sent, reported with the refusals. */
function reportDamaged(
  result: MigrateFolderResult,
  damaged: readonly MigrateFolderResult['skipped'][number][],
  onProgress: ((event: MigrateProgressEvent) => void) | undefined,
): void {
  for (const message of damaged) {
    result.skipped.push(message);
    onProgress?.({ type: 'message', source: result.source, outcome: 'skipped', bytes: 0 });
  }
}

async function listFolders(session: ImapSession): Promise<ListedFolder[]> {
  const listed = await session.run((c) => c.list());
  return listed.map((f) => ({
    path: f.path,
    delimiter: f.delimiter ?? '',
    flags: f.flags,
    specialUse: f.specialUse,
    subscribed: f.subscribed,
  }));
}

function checkSelection(
  plan: readonly FolderMapping[],
  source: readonly ListedFolder[],
  include: readonly string[],
): void {
  if (include.length === 0 || plan.length > 0) return;
  const unmatched = unmatchedPatterns(
    source.map((f) => f.path),
    include,
  );
  throw new ConfigurationError({
    code: 'MIGRATE_NO_FOLDER_MATCHED',
    message:
      unmatched.length > 0
        ? `--folder ${unmatched.map((p) => `'${displayText(p, 80)}'`).join(', ')} matches no folder of the source (it has ${source.length})`
        : '--folder and --exclude together leave no folder of the source',
    remedy: `${folderSuggestions(
      unmatched,
      source.map((f) => f.path),
    )}Give folder paths as the source lists them (\`*\` as a wildcard); --dry-run shows the plan.`,
  });
}

/** Source subscriptions for folders the destination already has (new folders are subscribed on creation). */
async function subscribeExisting(
  destination: ImapSession,
  plan: readonly FolderMapping[],
  destFolders: readonly ListedFolder[],
): Promise<void> {
  const subscribed = new Set(destFolders.filter((f) => f.subscribed).map((f) => f.path));
  for (const mapping of plan) {
    if (mapping.exists && mapping.subscribed && !subscribed.has(mapping.destination)) {
      await destination.run((c) => c.mailboxSubscribe(mapping.destination));
      subscribed.add(mapping.destination);
    }
  }
}
