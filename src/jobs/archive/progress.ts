/**
 * Pure: progress state, rates, ETA and the text the CLI prints. The CLI owns
 * the timer and the terminal; the library only emits events.
 */
import { displayText } from '../../util/display-text.js';
import { formatBytes, formatClock } from '../../util/format.js';
import type {
  ArchiveMailboxFailure,
  ArchiveMailboxResult,
  ArchiveProgressEvent,
  ArchiveRunResult,
} from './run-types.js';

export interface MailboxProgress {
  mailbox: string;
  phase: 'waiting' | 'listing' | 'archiving' | 'done' | 'failed';
  folder?: string;
  messages: number;
  bytes: number;
  estimatedMessages: number;
  startedAt?: number;
  endedAt?: number;
}

export function initialProgress(mailbox: string): MailboxProgress {
  return { mailbox, phase: 'waiting', messages: 0, bytes: 0, estimatedMessages: 0 };
}

export function applyProgressEvent(
  state: MailboxProgress,
  event: ArchiveProgressEvent,
  now: number,
): MailboxProgress {
  const next: MailboxProgress = {
    ...state,
    messages: event.counts.messages,
    bytes: event.counts.bytes,
    estimatedMessages: event.counts.estimatedMessages,
    startedAt: state.startedAt ?? now,
  };
  switch (event.type) {
    case 'mailbox-start':
      next.phase = 'archiving';
      break;
    case 'folder-start':
    case 'message':
      next.phase = 'archiving';
      next.folder = event.folder;
      break;
    case 'folder-done':
      break;
    case 'mailbox-done':
      next.phase = event.result.ok ? 'done' : 'failed';
      next.folder = undefined;
      next.endedAt = now;
      break;
  }
  return next;
}

export function markFailed(state: MailboxProgress, now: number): MailboxProgress {
  return {
    ...state,
    phase: 'failed',
    folder: undefined,
    endedAt: now,
    startedAt: state.startedAt ?? now,
  };
}

export interface Rates {
  messagesPerSecond: number;
  bytesPerSecond: number;
  /** Seconds left at the current rate; undefined until there is a rate and an estimate. */
  etaSeconds?: number;
}

export function progressRates(state: MailboxProgress, now: number): Rates {
  const elapsed = ((state.endedAt ?? now) - (state.startedAt ?? now)) / 1000;
  const messagesPerSecond = elapsed > 0 ? state.messages / elapsed : 0;
  const bytesPerSecond = elapsed > 0 ? state.bytes / elapsed : 0;
  const left = Math.max(0, state.estimatedMessages - state.messages);
  const rates: Rates = { messagesPerSecond, bytesPerSecond };
  if (state.phase === 'archiving' && messagesPerSecond > 0)
    rates.etaSeconds = left / messagesPerSecond;
  return rates;
}

/** One line per mailbox for a terminal, cut to `width` columns. */
export function renderProgressLines(
  states: readonly MailboxProgress[],
  now: number,
  width = 100,
): string[] {
  const names = states.map((s) => displayText(s.mailbox, 32));
  const nameWidth = Math.max(8, ...names.map((name) => name.length));
  return states.map((s, i) => {
    const r = progressRates(s, now);
    const name = names[i] as string;
    const count =
      s.estimatedMessages > s.messages ? `${s.messages}/${s.estimatedMessages}` : `${s.messages}`;
    const parts = [
      name.padEnd(nameWidth),
      s.phase.padEnd(9),
      `${count} msgs`.padStart(16),
      formatBytes(s.bytes).padStart(10),
      `${r.messagesPerSecond.toFixed(1)} msg/s`.padStart(12),
      `${formatBytes(r.bytesPerSecond)}/s`.padStart(12),
      r.etaSeconds !== undefined ? `ETA ${formatClock(r.etaSeconds * 1000)}` : '',
      s.phase === 'archiving' && s.folder ? displayText(s.folder) : '',
    ];
    const line = parts.filter((p) => p !== '').join('  ');
    return line.length > width ? `${line.slice(0, width - 1)}…` : line;
  });
}

/** The periodic log line when stderr is not a terminal. */
export function progressLogRecord(state: MailboxProgress, now: number): Record<string, unknown> {
  const r = progressRates(state, now);
  return {
    event: 'archive-progress',
    time: new Date(now).toISOString(),
    mailbox: state.mailbox,
    phase: state.phase,
    folder: state.folder === undefined ? null : displayText(state.folder),
    messages: state.messages,
    estimatedMessages: state.estimatedMessages,
    bytes: state.bytes,
    messagesPerSecond: round(r.messagesPerSecond),
    bytesPerSecond: Math.round(r.bytesPerSecond),
    etaSeconds: r.etaSeconds === undefined ? null : Math.round(r.etaSeconds),
  };
}

export interface ArchiveSummary {
  ok: boolean;
  mailboxes: number;
  mailboxesFailed: number;
  folders: number;
  foldersFailed: number;
  messagesNew: number;
  messagesTotal: number;
  bytesNew: number;
  bytesTotal: number;
  parseErrors: number;
  recovered: number;
  /** Damaged files fetched again, and those the server could not give again (`--repair`). */
  repaired: number;
  unrepairable: number;
  durationMs: number;
  messagesPerSecond: number;
  bytesPerSecond: number;
}

export function summarizeRun(run: ArchiveRunResult): ArchiveSummary {
  const done = run.mailboxes.filter((m): m is ArchiveMailboxResult => 'folders' in m);
  const sum = (pick: (m: ArchiveMailboxResult) => number) =>
    done.reduce((total, m) => total + pick(m), 0);
  const seconds = run.durationMs / 1000;
  // A mailbox that failed keeps what it archived before: those count as new too.
  const messagesNew = run.mailboxes.reduce((total, m) => total + m.messagesNew, 0);
  const bytesNew = run.mailboxes.reduce((total, m) => total + m.bytesNew, 0);
  return {
    ok: run.ok,
    mailboxes: run.mailboxes.length,
    mailboxesFailed: run.mailboxes.filter((m) => !m.ok).length,
    folders: sum((m) => m.folders.length),
    foldersFailed: sum((m) => m.folders.filter((f) => f.status === 'failed').length),
    messagesNew,
    messagesTotal: sum((m) => m.messagesTotal),
    bytesNew,
    bytesTotal: sum((m) => m.bytesTotal),
    parseErrors: sum((m) => m.parseErrors),
    recovered: sum((m) => m.recovered),
    repaired: sum((m) => m.repaired),
    unrepairable: sum((m) => m.unrepairable.length),
    durationMs: run.durationMs,
    messagesPerSecond: seconds > 0 ? round(messagesNew / seconds) : 0,
    bytesPerSecond: seconds > 0 ? Math.round(bytesNew / seconds) : 0,
  };
}

export function formatSummary(
  summary: ArchiveSummary,
  mailboxes: readonly (ArchiveMailboxResult | ArchiveMailboxFailure)[],
): string[] {
  const lines: string[] = [];
  for (const m of mailboxes) {
    if (!('folders' in m)) {
      const before = m.messagesNew > 0 ? ` (${m.messagesNew} new message(s) archived before)` : '';
      lines.push(
        `${m.mailbox}: FAILED${before} ${m.error.code}: ${displayText(m.error.message, 1000)}`,
      );
      continue;
    }
    const status = m.interrupted ? 'interrupted' : m.ok ? 'ok' : 'incomplete';
    lines.push(
      `${m.mailbox}: ${status}, ${m.messagesNew} new (${formatBytes(m.bytesNew)}), ${m.messagesTotal} archived, ${m.folders.length} folders -> ${m.directory}`,
    );
    for (const f of m.folders) {
      if (f.status === 'failed') {
        lines.push(
          `  folder ${displayText(f.folder)}: FAILED ${f.error?.code}: ${displayText(f.error?.message ?? '', 1000)}`,
        );
      }
    }
    if (m.parseErrors > 0)
      lines.push(
        `  ${m.parseErrors} message(s) archived but not parsed (parseError in the manifest)`,
      );
    for (const p of m.unmatchedPatterns)
      lines.push(`  --folder ${displayText(p)} matched no folder`);
    if (m.repaired > 0) lines.push(`  ${m.repaired} missing or altered file(s) fetched again`);
    for (const u of m.unrepairable) {
      lines.push(`  not repaired: ${u.path} (folder ${displayText(u.folder)}): ${u.reason}`);
    }
  }
  lines.push(
    `Archived ${summary.messagesNew} new messages (${formatBytes(summary.bytesNew)}) from ${summary.mailboxes} mailbox(es), ${summary.folders} folders, in ${formatClock(summary.durationMs)}` +
      ` (${summary.messagesPerSecond} msg/s, ${formatBytes(summary.bytesPerSecond)}/s); ${summary.messagesTotal} messages (${formatBytes(summary.bytesTotal)}) in the archive.`,
  );
  if (summary.recovered > 0)
    lines.push(`Recorded ${summary.recovered} file(s) left by an interrupted run.`);
  if (summary.unrepairable > 0) {
    lines.push(
      `${summary.unrepairable} missing or altered file(s) could not be fetched again: restore them from a backup of the archive (their manifest lines give the SHA-256 to check a copy against); \`mailbridge archive verify DIR\` lists them until then.`,
    );
  }
  if (summary.mailboxesFailed > 0 || summary.foldersFailed > 0) {
    // A folder fails for a reason of its own (the server refused it): running again is no cure.
    const rerunIsEnough = mailboxes.every((m) =>
      'folders' in m
        ? m.folders.every((f) => f.status !== 'failed') && m.unrepairable.length === 0
        : rerunHelps(m.error),
    );
    lines.push(
      `${summary.mailboxesFailed} mailbox(es) and ${summary.foldersFailed} folder(s) failed; ${
        rerunIsEnough ? 'run again to continue.' : 'see above for what to do, then run again.'
      }`,
    );
  }
  return lines;
}

/** Whether running again, with nothing else done first, can get further. */
export function rerunHelps(error: { name: string; code: string }): boolean {
  return error.name === 'NetworkError' || error.code === 'ARCHIVE_INTERRUPTED';
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
