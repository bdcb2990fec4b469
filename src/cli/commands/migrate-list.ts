/**
 * `migrate --mailboxes FILE` run here (not `--queue`): the pairs `concurrency`
 * at a time, a line per pair on stdout as it ends (JSON with --json), then
 * the totals; on a terminal a live count on stderr.
 */
import {
  type MigrateListResult,
  type MigrateMailboxListOptions,
  migrateMailboxList,
  type PairOutcome,
} from '../../jobs/migrate/index.js';
import { displayText } from '../../util/display-text.js';
import { formatBytes } from '../../util/format.js';
import { type CliIo, writeLine } from '../output.js';

const REDRAW_INTERVAL_MS = 250;

export async function runMigrateList(
  io: CliIo,
  options: Omit<MigrateMailboxListOptions, 'signal' | 'onPairDone' | 'onProgress'>,
  json: boolean,
): Promise<number> {
  const controller = new AbortController();
  const onSignal = () => controller.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const live = liveCount(io, json, options.pairs.length);
  let run: MigrateListResult;
  try {
    run = await migrateMailboxList({
      ...options,
      signal: controller.signal,
      onProgress: (_pair, event) => live.event(event.type),
      onPairDone: (outcome) => {
        live.clear();
        if (json) writeLine(io.stdout, JSON.stringify({ type: 'pair', ...pairRecord(outcome) }));
        else for (const line of pairLines(outcome)) writeLine(io.stdout, line);
        live.pairDone();
      },
    });
  } finally {
    live.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const { pairs, ...totals } = run;
  if (json) {
    writeLine(
      io.stdout,
      JSON.stringify({ ...totals, pairs: pairs.length, results: pairs.map(pairRecord) }),
    );
  } else {
    const verb = options.dryRun ? 'would copy' : 'copied';
    writeLine(
      io.stdout,
      `${pairs.length} pair(s): ${pairs.length - run.failed} done, ${run.failed} failed; ${verb} ${run.copied} message(s) (${formatBytes(run.bytes)}), ${run.alreadyPresent} already there, ${run.skipped} skipped, in ${(run.durationMs / 1000).toFixed(1)} s.`,
    );
  }
  return run.exitCode;
}

/** A pair as --json shows it: the counts, or the error. */
export function pairRecord(outcome: PairOutcome): Record<string, unknown> {
  const base = { from: outcome.from, to: outcome.to, ok: outcome.ok, stateDir: outcome.stateDir };
  if ('error' in outcome) return { ...base, error: outcome.error.toJSON() };
  const r = outcome.result;
  return {
    ...base,
    copied: r.copied,
    alreadyPresent: r.alreadyPresent,
    skipped: r.skipped,
    bytes: r.bytes,
    flagsUpdated: r.flagsUpdated,
    folders: r.folders.length,
    refused: r.folders.flatMap((f) =>
      f.skipped.map((s) => ({ folder: f.source, uid: s.uid, reason: s.reason })),
    ),
  };
}

/** One line per pair, and one more per message the destination refused. */
export function pairLines(outcome: PairOutcome): string[] {
  const pair = `${displayText(outcome.from)} → ${displayText(outcome.to)}`;
  if ('error' in outcome) {
    return [`${pair}: FAILED ${outcome.error.code}: ${displayText(outcome.error.message, 1000)}`];
  }
  const r = outcome.result;
  const parts = [`${r.dryRun ? 'would copy' : 'copied'} ${r.copied}`];
  parts.push(`already there ${r.alreadyPresent}`, `skipped ${r.skipped}`);
  if (r.flagsUpdated > 0) parts.push(`flags updated ${r.flagsUpdated}`);
  const lines = [`${pair}: ${parts.join(', ')} (${formatBytes(r.bytes)})`];
  for (const f of r.folders) {
    for (const s of f.skipped) {
      lines.push(`  skipped ${displayText(f.source)} UID ${s.uid}: ${displayText(s.reason)}`);
    }
  }
  return lines;
}

/** `pairs 3/10 done, messages 1234` on a terminal's stderr; nothing otherwise. */
function liveCount(io: CliIo, json: boolean, total: number) {
  const stderr = io.stderr as NodeJS.WritableStream & { isTTY?: boolean };
  const tty = !json && stderr.isTTY === true;
  let done = 0;
  let messages = 0;
  let drawn = false;
  const draw = () => {
    if (!tty) return;
    stderr.write(`\r\x1b[Kpairs ${done}/${total} done, ${messages} message(s) copied`);
    drawn = true;
  };
  const clear = () => {
    if (drawn) stderr.write('\r\x1b[K');
    drawn = false;
  };
  const timer = tty ? setInterval(draw, REDRAW_INTERVAL_MS) : undefined;
  timer?.unref();
  return {
    event(type: string) {
      if (type === 'message') messages++;
    },
    pairDone() {
      done++;
    },
    clear,
    stop() {
      if (timer) clearInterval(timer);
      clear();
    },
  };
}
