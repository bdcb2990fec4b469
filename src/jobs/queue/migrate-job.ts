/**
 * One migrate job on a worker: the crash-safe `migrateMailbox` run of one
 * mailbox pair, so a job retried after its worker died continues from the
 * pair's state folder (when the workers share it) or finds what the first
 * attempt copied by identity at the destination: nothing twice either way.
 *
 * Passwords of `imaps://` endpoints are the worker's own (its environment or
 * config file), never the job's: nothing secret goes through Redis.
 */
import type { TokenProvider } from '../../auth/token-provider.js';
import type { ConnectionSlots } from '../../clients/connection-limit.js';
import { loadConfig } from '../../config/load.js';
import type { MailbridgeConfig } from '../../config/types.js';
import { ConfigurationError } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import { displayText } from '../../util/display-text.js';
import {
  DEFAULT_MIGRATE_CONNECTIONS,
  type MigrateProgressEvent,
  type MigrateResult,
  migrateMailbox,
  pairStateDir,
} from '../migrate/index.js';
import { appSettingsFor, type WorkerAppSettings } from './app-settings.js';
import type { MigrateJobData, MigrateJobResult } from './job-data.js';

/** What the worker gives every migrate job. */
export interface MigrateJobContext {
  /** The worker's app settings, or why it has none (only `m365:` sides need them). */
  config: WorkerAppSettings;
  /** The worker's passwords for `imaps://` sources and destinations. */
  passwords: { from?: string; to?: string };
  connectionSlots: ConnectionSlots;
  connectionsPerMailbox: number;
  tokenProviders: Map<MailbridgeConfig, TokenProvider>;
  logger: Logger;
  signal: AbortSignal;
  env: Readonly<Record<string, string | undefined>>;
}

export async function runMigrateJob(
  data: MigrateJobData,
  context: MigrateJobContext,
  onProgress: (event: MigrateProgressEvent) => void,
): Promise<MigrateResult> {
  const passwords: { fromPassword?: string; toPassword?: string } = {};
  for (const side of ['from', 'to'] as const) {
    if (!/^imaps?:/i.test(data[side])) continue;
    const password = context.passwords[side];
    if (password === undefined) throw passwordMissing(side, data[side]);
    passwords[side === 'from' ? 'fromPassword' : 'toPassword'] = password;
  }
  const configOf = async (side: 'from' | 'to', file: string | undefined) => {
    if (file) return loadConfig({ file, env: context.env, fileIsIdentity: true });
    if (!/^m365:/i.test(data[side].trim())) return undefined;
    return appSettingsFor(context.config, `Migrating ${displayText(data[side])}`);
  };
  return migrateMailbox({
    from: data.from,
    to: data.to,
    fromConfig: await configOf('from', data.fromConfig),
    toConfig: await configOf('to', data.toConfig),
    ...passwords,
    folders: data.folders,
    exclude: data.exclude,
    map: data.map,
    ...(data.since ? { since: new Date(`${data.since}T00:00:00Z`) } : {}),
    // More than the budget would wait for leases this job itself holds.
    connections: Math.min(
      data.connections ?? DEFAULT_MIGRATE_CONNECTIONS,
      context.connectionsPerMailbox,
    ),
    syncFlags: data.syncFlags,
    stateDir: pairStateDir(data, data.stateRoot, context.env),
    connectionSlots: context.connectionSlots,
    maxConnections: context.connectionsPerMailbox,
    tokenProviders: context.tokenProviders,
    logger: context.logger,
    signal: context.signal,
    onProgress,
    env: context.env,
  });
}

export function migrateJobResult(worker: string, result: MigrateResult, durationMs: number) {
  return {
    worker,
    copied: result.copied,
    alreadyPresent: result.alreadyPresent,
    skipped: result.skipped,
    bytes: result.bytes,
    folders: result.folders.length,
    durationMs,
    refused: result.folders.flatMap((f) =>
      f.skipped.map((s) => ({ folder: f.source, uid: s.uid, reason: s.reason })),
    ),
  } satisfies MigrateJobResult;
}

function passwordMissing(side: 'from' | 'to', endpoint: string): ConfigurationError {
  const variable = side === 'from' ? 'MAILBRIDGE_FROM_PASSWORD' : 'MAILBRIDGE_TO_PASSWORD';
  const setting = side === 'from' ? 'migrate.fromPasswordFile' : 'migrate.toPasswordFile';
  return new ConfigurationError({
    code: 'QUEUE_WORKER_PASSWORD_MISSING',
    message: `This worker has no password for the ${side === 'from' ? 'source' : 'destination'} ${displayText(endpoint)}: passwords never travel through the queue`,
    remedy: `Start the worker with ${variable} in its environment (or ${setting} in its --config file), then \`mailbridge jobs retry --run ID --failed\`.`,
  });
}
