import { describe, expect, it } from 'vitest';
import { AuthenticationError, NetworkError, ProtocolError } from '../../../src/errors.js';
import { workOnFolder } from '../../../src/jobs/mailbox-read/folder-retry.js';
import {
  FolderChangedError,
  InterruptedError,
} from '../../../src/jobs/mailbox-read/read-errors.js';
import type { LogLevel } from '../../../src/log/logger.js';

const changed = () =>
  new FolderChangedError({
    code: 'ARCHIVE_UIDVALIDITY_CHANGED',
    message: 'The UIDVALIDITY of INBOX changed',
    remedy: 'Again.',
  });

function options(extra: Partial<Parameters<typeof workOnFolder>[1]> = {}) {
  const lines: string[] = [];
  return {
    lines,
    options: {
      mailbox: 'a@example.org',
      folder: 'INBOX',
      job: 'migrate',
      logger: { log: (level: LogLevel, message: string) => lines.push(`${level} ${message}`) },
      ...extra,
    },
  };
}

describe('one folder of a job that reads a mailbox', () => {
  it('works on a folder re-created meanwhile again, twice at most, then fails only that folder', async () => {
    let attempts = 0;
    let told = 0;
    const { lines, options: o } = options({ onFolderChanged: () => told++ });
    const failed = await workOnFolder(async () => {
      attempts++;
      throw changed();
    }, o);
    expect(attempts).toBe(3);
    expect(told).toBe(2);
    expect(failed?.code).toBe('ARCHIVE_UIDVALIDITY_CHANGED');
    expect(lines).toEqual(['warn migrate: folder failed']);
  });

  it('completes when the folder holds still on the next attempt', async () => {
    let attempts = 0;
    const failed = await workOnFolder(async () => {
      if (++attempts === 1) throw changed();
    }, options().options);
    expect([attempts, failed]).toEqual([2, undefined]);
  });

  it("fails only the folder for the server's refusal, after the job's own clean-up", async () => {
    const seen: unknown[] = [];
    const refusal = new ProtocolError({
      code: 'IMAP_SEARCH_REFUSED',
      message: 'No.',
      remedy: 'Later.',
    });
    const failed = await workOnFolder(
      async () => {
        throw refusal;
      },
      options({ afterFailure: async (error) => void seen.push(error) }).options,
    );
    expect(failed).toBe(refusal);
    expect(seen).toEqual([refusal]);
  });

  it('ends the run for a stop, the login, the network, a plain error and what the job says', async () => {
    class StoreFull extends Error {}
    const fatal = [
      new InterruptedError({ code: 'ARCHIVE_INTERRUPTED', message: 'Stopped.', remedy: 'Again.' }),
      new AuthenticationError({ code: 'IMAP_AUTH_FAILED', message: 'No.', remedy: 'Grant.' }),
      new NetworkError({ code: 'IMAP_SESSION_LOST', message: 'Gone.', remedy: 'Again.' }),
      new Error('a bug'),
      new ProtocolError({ code: 'IMAP_SEARCH_REFUSED', message: 'No.', remedy: 'Later.' }),
    ];
    for (const error of fatal) {
      const run = workOnFolder(
        async () => {
          throw error;
        },
        options({ endsRun: (e) => e === fatal[4] || e instanceof StoreFull }).options,
      );
      await expect(run).rejects.toBe(error);
    }
  });
});
