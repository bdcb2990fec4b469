import { describe, expect, it } from 'vitest';
import { NetworkError } from '../../../src/errors.js';
import {
  applyProgressEvent,
  formatSummary,
  initialProgress,
  progressLogRecord,
  progressRates,
  renderProgressLines,
  summarizeRun,
} from '../../../src/jobs/archive/progress.js';
import {
  type ArchiveMailboxResult,
  type ArchiveRunResult,
  archiveError,
} from '../../../src/jobs/archive/runner.js';

const counts = (messages: number, bytes: number, estimatedMessages: number) => ({
  messages,
  bytes,
  estimatedMessages,
});

describe('progress', () => {
  it('follows events and computes rate and ETA', () => {
    let state = initialProgress('archive@contoso.example');
    state = applyProgressEvent(
      state,
      {
        type: 'mailbox-start',
        mailbox: state.mailbox,
        directory: '/x',
        folders: 3,
        counts: counts(0, 0, 100),
      },
      1_000,
    );
    state = applyProgressEvent(
      state,
      {
        type: 'message',
        mailbox: state.mailbox,
        folder: 'Archive/2024',
        uid: 7,
        size: 2048,
        counts: counts(25, 25 * 2048, 100),
      },
      6_000,
    );
    expect(state).toMatchObject({ phase: 'archiving', folder: 'Archive/2024', messages: 25 });
    const rates = progressRates(state, 6_000);
    expect(rates.messagesPerSecond).toBe(5);
    expect(rates.bytesPerSecond).toBe(10_240);
    expect(rates.etaSeconds).toBe(15);
    const [line] = renderProgressLines([state], 6_000, 120);
    expect(line).toContain('archive@contoso.example');
    expect(line).toContain('25/100 msgs');
    expect(line).toContain('5.0 msg/s');
    expect(line).toContain('10 KiB/s');
    expect(line).toContain('ETA 15s');
    expect(line).toContain('Archive/2024');
    expect(renderProgressLines([state], 6_000, 30)[0]).toHaveLength(30);
    expect(progressLogRecord(state, 6_000)).toMatchObject({
      event: 'archive-progress',
      mailbox: 'archive@contoso.example',
      messages: 25,
      estimatedMessages: 100,
      messagesPerSecond: 5,
      etaSeconds: 15,
    });
  });

  it('shows a mailbox name escaped and cut to its column', () => {
    const [line] = renderProgressLines([initialProgress('a\u001b[2J@contoso.example')], 0);
    expect(line?.startsWith('a\\x1b[2J@contoso.example ')).toBe(true);
    const long = `${'m'.repeat(40)}@contoso.example`;
    const [cut] = renderProgressLines([initialProgress(long)], 0);
    expect(cut?.startsWith(`${'m'.repeat(31)}… `)).toBe(true);
  });

  it('summarizes a run, failures included', () => {
    const ok: ArchiveMailboxResult = {
      mailbox: 'a@contoso.example',
      directory: '/out/a@contoso.example',
      ok: true,
      interrupted: false,
      folders: [
        {
          folder: 'INBOX',
          status: 'archived',
          messagesNew: 10,
          bytesNew: 10_000,
          vanished: 0,
          parseErrors: 1,
          recovered: 0,
        },
      ],
      messagesNew: 10,
      bytesNew: 10_000,
      messagesTotal: 30,
      bytesTotal: 30_000,
      parseErrors: 1,
      recovered: 0,
      vanished: 0,
      unmatchedPatterns: ['Nope'],
      repaired: 0,
      unrepairable: [],
      durationMs: 2_000,
      session: { connects: 1, tokenRenewals: 0, retries: 0, throttledMs: 0 },
    };
    const run: ArchiveRunResult = {
      ok: false,
      durationMs: 4_000,
      mailboxes: [
        ok,
        {
          mailbox: 'b@contoso.example',
          ok: false,
          interrupted: false,
          error: new NetworkError({ code: 'IMAP_UNREACHABLE', message: 'down', remedy: 'fix it' }),
          messagesNew: 0,
          bytesNew: 0,
        },
      ],
    };
    const summary = summarizeRun(run);
    expect(summary).toMatchObject({
      ok: false,
      mailboxes: 2,
      mailboxesFailed: 1,
      folders: 1,
      messagesNew: 10,
      messagesTotal: 30,
      bytesNew: 10_000,
      parseErrors: 1,
      messagesPerSecond: 2.5,
    });
    const text = formatSummary(summary, run.mailboxes).join('\n');
    expect(text).toContain('a@contoso.example: ok, 10 new (9.8 KiB), 30 archived, 1 folders');
    expect(text).toContain('1 message(s) archived but not parsed');
    expect(text).toContain('--folder Nope matched no folder');
    expect(text).toContain('b@contoso.example: FAILED IMAP_UNREACHABLE: down. fix it');
    expect(text).toContain('1 mailbox(es) and 0 folder(s) failed; run again to continue.');
  });

  it('counts what a failed mailbox archived, and says to run again only when that is enough', () => {
    const denied = Object.assign(
      new Error("EACCES: permission denied, open '/srv/a/.tmp/1.part'"),
      {
        code: 'EACCES',
      },
    );
    const full = Object.assign(new Error('ENOSPC: no space left on device, write'), {
      code: 'ENOSPC',
    });
    const failed = (mailbox: string, error: Error, messagesNew: number) => ({
      mailbox,
      ok: false as const,
      interrupted: false as const,
      error: archiveError(error, mailbox),
      messagesNew,
      bytesNew: messagesNew * 1000,
    });
    const run: ArchiveRunResult = {
      ok: false,
      durationMs: 1_000,
      mailboxes: [failed('a@contoso.example', denied, 0), failed('b@contoso.example', full, 15)],
    };
    const summary = summarizeRun(run);
    expect(summary).toMatchObject({ mailboxesFailed: 2, messagesNew: 15, bytesNew: 15_000 });
    const text = formatSummary(summary, run.mailboxes).join('\n');
    expect(text).not.toContain('run again to continue');
    expect(text).toContain(
      'a@contoso.example: FAILED ARCHIVE_EACCES: Archiving a@contoso.example failed: EACCES: permission denied',
    );
    expect(text).toContain(
      'Give the user running mailbridge write access to the archive directory',
    );
    expect(text).toContain(
      'b@contoso.example: FAILED (15 new message(s) archived before) ARCHIVE_ENOSPC',
    );
    expect(text).toContain('Free space on the disk holding the archive');
    expect(text).toContain(
      '2 mailbox(es) and 0 folder(s) failed; see above for what to do, then run again.',
    );
    expect(text).toMatch(/^Archived 15 new messages/m);
  });
});
