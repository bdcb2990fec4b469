/**
 * `migrateMailboxList`: many mailbox pairs (mailbox-list.ts), `concurrency`
 * at a time, each the crash-safe `migrateMailbox` run with a state folder of
 * its own under one root, named for the pair so the next run finds it again.
 * A pair that fails does not stop the others.
 *
 * Two pairs that share a mailbox (two old accounts merged into one, one
 * account split) never run at once: both appending to one destination folder
 * could each miss the other's fresh copy in their identity check, and their
 * sessions would compete for the mailbox's connection cap.
 */
import { join } from 'node:path';
import type { TokenProvider } from '../../auth/token-provider.js';
import type { MailbridgeConfig } from '../../config/types.js';
import { ExitCode, MailbridgeError } from '../../errors.js';
import { displayText } from '../../util/display-text.js';
import type { MigrateProgressEvent } from './copy-folder.js';
import { describeEndpoint } from './endpoint.js';
import type { MailboxPair } from './mailbox-list.js';
import { type MigrateMailboxOptions, type MigrateResult, migrateMailbox } from './migrate.js';
import { defaultStateDir, pairFolderName } from './state.js';

export const DEFAULT_PAIR_CONCURRENCY = 4;

export interface MigrateMailboxListOptions
  extends Omit<MigrateMailboxOptions, 'from' | 'to' | 'stateDir' | 'onProgress'> {
  /** A pair's own `fromPassword` / `toPassword` replaces the run's password or token command for that side. */
  pairs: readonly Pick<MailboxPair, 'from' | 'to' | 'fromPassword' | 'toPassword'>[];
  /** Folder holding one state folder per pair. @default each pair's default state folder */
  stateRoot?: string;
  /** Pairs at once. @default 4 */
  concurrency?: number;
  onProgress?: (pair: PairName, event: MigrateProgressEvent) => void;
  /** Called as each pair ends, in the order they end. */
  onPairDone?: (result: PairOutcome) => void;
}

export interface PairName {
  from: string;
  to: string;
}

export type PairOutcome =
  | (PairName & { ok: boolean; stateDir: string; result: MigrateResult })
  | (PairName & { ok: false; stateDir: string; error: MailbridgeError });

export interface MigrateListResult {
  ok: boolean;
  /** 0 all done; the shared exit code when every pair failed alike (3 all refused logins); else 1. */
  exitCode: number;
  /** In the list's order. */
  pairs: PairOutcome[];
  copied: number;
  alreadyPresent: number;
  skipped: number;
  bytes: number;
  failed: number;
  durationMs: number;
}

/** The state folder of a pair: under `root` when given, else the pair's default one. */
export function pairStateDir(
  pair: PairName,
  root: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): string {
  return root
    ? join(root, pairFolderName(pair.from, pair.to))
    : defaultStateDir(pair.from, pair.to, env);
}

export async function migrateMailboxList(
  options: MigrateMailboxListOptions,
): Promise<MigrateListResult> {
  const started = Date.now();
  const {
    pairs,
    stateRoot,
    concurrency = DEFAULT_PAIR_CONCURRENCY,
    onPairDone,
    onProgress,
    ...shared
  } = options;
  const env = shared.env ?? process.env;
  const tokenProviders = shared.tokenProviders ?? new Map<MailbridgeConfig, TokenProvider>();
  const names = pairs.map((p) => ({ from: describeEndpoint(p.from), to: describeEndpoint(p.to) }));
  const keys = names.map((n) => [n.from.toLowerCase(), n.to.toLowerCase()]);
  const outcomes: PairOutcome[] = new Array(pairs.length);
  const claim = exclusiveClaims(keys);

  const runOne = async (index: number): Promise<PairOutcome> => {
    const name = names[index] as PairName;
    const pair = pairs[index] as MailboxPair;
    const stateDir = pairStateDir(name, stateRoot, env);
    try {
      if (shared.signal?.aborted) throw interrupted(shared.signal);
      const run: MigrateMailboxOptions = {
        ...shared,
        from: pair.from,
        to: pair.to,
        stateDir,
        tokenProviders,
        ...(onProgress ? { onProgress: (event) => onProgress(name, event) } : {}),
      };
      for (const side of ['from', 'to'] as const) {
        const password = pair[`${side}Password`];
        if (password === undefined) continue;
        run[`${side}Password`] = password;
        delete run[`${side}TokenCommand`];
      }
      const result = await migrateMailbox(run);
      return { ...name, ok: result.ok, stateDir, result };
    } catch (error) {
      return { ...name, ok: false, stateDir, error: asError(error, name) };
    }
  };
  const worker = async () => {
    for (let index = await claim.next(); index !== undefined; index = await claim.next()) {
      try {
        const outcome = await runOne(index);
        outcomes[index] = outcome;
        onPairDone?.(outcome);
      } finally {
        claim.release(index);
      }
    }
  };
  const workers = Math.max(1, Math.min(concurrency, pairs.length));
  await Promise.all(Array.from({ length: workers }, worker));

  const results = outcomes.flatMap((o) => ('result' in o ? [o.result] : []));
  const sum = (pick: (r: MigrateResult) => number) => results.reduce((t, r) => t + pick(r), 0);
  const failed = outcomes.filter((o) => !o.ok).length;
  return {
    ok: failed === 0,
    exitCode: listExitCode(outcomes),
    pairs: outcomes,
    copied: sum((r) => r.copied),
    alreadyPresent: sum((r) => r.alreadyPresent),
    skipped: sum((r) => r.skipped),
    bytes: sum((r) => r.bytes),
    failed,
    durationMs: Date.now() - started,
  };
}

/**
 * 0 when every pair is done; when every pair failed with errors of one exit
 * code (all logins refused: 3, nothing reachable: 4), that code, since the
 * remedy is the same for all; otherwise 1.
 */
export function listExitCode(outcomes: readonly PairOutcome[]): number {
  if (outcomes.every((o) => o.ok)) return ExitCode.ok;
  const codes = new Set(outcomes.map((o) => ('error' in o ? o.error.exitCode : ExitCode.failure)));
  return codes.size === 1 ? ([...codes][0] as number) : ExitCode.failure;
}

/** Hands out indexes in list order, skipping those whose keys a running one holds until it is released. */
function exclusiveClaims(keys: readonly string[][]): {
  next(): Promise<number | undefined>;
  release(index: number): void;
} {
  const pending = keys.map((_, i) => i);
  const busy = new Set<string>();
  let waiting: (() => void)[] = [];
  return {
    async next() {
      for (;;) {
        if (pending.length === 0) return undefined;
        const at = pending.findIndex((i) => (keys[i] as string[]).every((k) => !busy.has(k)));
        if (at >= 0) {
          const index = pending.splice(at, 1)[0] as number;
          for (const k of keys[index] as string[]) busy.add(k);
          return index;
        }
        // Some pair holds the keys, so a release will come.
        await new Promise<void>((resolve) => waiting.push(resolve));
      }
    },
    release(index) {
      for (const k of keys[index] as string[]) busy.delete(k);
      const woken = waiting;
      waiting = [];
      for (const wake of woken) wake();
    },
  };
}

function interrupted(signal: AbortSignal): MailbridgeError {
  return new MailbridgeError({
    code: 'MIGRATE_INTERRUPTED',
    message: 'The migration was stopped before this pair started',
    remedy: 'Run the list again: each pair continues where it stopped, copying nothing twice.',
    cause: signal.reason,
  });
}

function asError(error: unknown, pair: PairName): MailbridgeError {
  if (error instanceof MailbridgeError) return error;
  return new MailbridgeError({
    code: 'MIGRATE_COMMAND_FAILED',
    message: `Migrating ${displayText(pair.from)} → ${displayText(pair.to)} failed: ${displayText(error instanceof Error ? error.message : String(error))}`,
    remedy: 'Run again with --debug and report the output if it keeps failing.',
    cause: error,
  });
}
