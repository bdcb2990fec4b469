/**
 * The archive under attack and under faults, against the real Dovecot.
 *
 * A manifest line can be forged with a path that does match its own UID
 * (INBOX/<uidvalidity>/999999.eml) though no such file exists: `archive
 * verify` cannot reject it by its path alone, and as the folder's highest UID
 * it would make every later run skip the folder's new mail. The checkpoint
 * must come only from lines whose file is there.
 *
 * A disk that fills up during a run: the run fails with what it archived,
 * and once there is space the next run completes the archive, nothing
 * missing, doubled or partial.
 */
import { execFileSync } from 'node:child_process';
import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { folderDirName, mailboxDirName, messagePath } from '../../../src/jobs/archive/paths.js';
import { archiveMailbox } from '../../../src/jobs/archive/runner.js';
import { verifyArchive } from '../../../src/jobs/archive/verify.js';
import {
  type ArchiveTestEnv,
  manifestRecords,
  messageWithAttachment,
  plainMessage,
  serverSnapshot,
  sha256File,
  startArchiveTestEnv,
  warningCollector,
} from './support.js';

const MAILBOX = 'forged@contoso.example';
/** Archived onto a small filesystem that fills up, then grows. */
const FULL = 'filling@contoso.example';
const FULL_MESSAGES = 60;
const isRoot = process.getuid?.() === 0;

let env: ArchiveTestEnv;
let out: string;

beforeAll(async () => {
  env = await startArchiveTestEnv([MAILBOX, FULL]);
  out = await mkdtemp(join(tmpdir(), 'mailbridge-archive-forged-uid-'));
  const seeder = await env.direct(MAILBOX);
  for (let i = 1; i <= 3; i++) await seeder.append('INBOX', plainMessage(i, 'INBOX', MAILBOX));
  await seeder.logout();
  const full = await env.direct(FULL);
  for (let i = 0; i < FULL_MESSAGES; i++)
    await full.append('INBOX', messageWithAttachment(2000 + i, FULL, 2500));
  await full.logout();
}, 60_000);

afterAll(async () => {
  await env?.close();
  if (out) await rm(out, { recursive: true, force: true });
});

describe('a forged manifest line naming its own path', () => {
  it('does not move the checkpoint when its file is not there: new mail is still archived, with a warning', async () => {
    const first = await archiveMailbox(env.config, { mailbox: MAILBOX, outDir: out });
    expect(first).toMatchObject({ ok: true, messagesNew: 3 });
    const dir = join(out, mailboxDirName(MAILBOX));
    const inbox = (await manifestRecords(dir)).find((r) => r.folder === 'INBOX');
    if (!inbox) throw new Error('no INBOX line');
    const path = messagePath(folderDirName('INBOX'), inbox.uidValidity, 999999);
    await appendFile(
      join(dir, 'manifest.jsonl'),
      `${JSON.stringify({ ...inbox, uid: 999999, path })}\n`,
    );

    const client = await env.direct(MAILBOX);
    await client.append('INBOX', plainMessage(4, 'INBOX', MAILBOX));
    await client.logout();
    const warnings = warningCollector();
    const second = await archiveMailbox(env.config, {
      mailbox: MAILBOX,
      outDir: out,
      logger: warnings.logger,
    });
    expect(second.folders.find((f) => f.folder === 'INBOX')).toMatchObject({
      status: 'archived',
      messagesNew: 1,
    });
    expect(second).toMatchObject({ ok: true, messagesNew: 1 });
    expect(warnings.text()).toMatch(/no file.*"folder":"INBOX".*999999/);
    // The next run has nothing to do, and takes the same care again.
    const third = await archiveMailbox(env.config, { mailbox: MAILBOX, outDir: out });
    expect(third).toMatchObject({ ok: true, messagesNew: 0 });
  });
});

describe.skipIf(!isRoot)('a disk that fills up during a run', () => {
  it('fails the run with what it archived, and the next run after space came back completes the archive', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailbridge-archive-filling-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=96k', 'tmpfs', dir]);
    try {
      const failed = await archiveMailbox(env.config, { mailbox: FULL, outDir: dir }).catch(
        (e: unknown) => e as { code?: string },
      );
      expect((failed as { code?: string }).code).toMatch(
        /^ARCHIVE_(ENOSPC|MANIFEST_WRITE_FAILED)$/,
      );
      const mailboxDir = join(dir, mailboxDirName(FULL));
      const partial = (await manifestRecords(mailboxDir)).length;
      expect(partial).toBeLessThan(FULL_MESSAGES);

      execFileSync('mount', ['-o', 'remount,size=4m', dir]);
      const second = await archiveMailbox(env.config, { mailbox: FULL, outDir: dir });
      expect(second).toMatchObject({ ok: true, messagesTotal: FULL_MESSAGES });
      const server = (await serverSnapshot(env, FULL)).get('INBOX');
      const records = await manifestRecords(mailboxDir);
      expect(
        records.map((r) => [r.uid, r.size, r.sha256]).sort((a, b) => Number(a[0]) - Number(b[0])),
      ).toEqual([...(server?.messages ?? [])].map(([uid, m]) => [uid, m.size, m.sha256]));
      for (const r of records) {
        expect(await sha256File(join(mailboxDir, ...r.path.split('/'))), r.path).toBe(r.sha256);
      }
      expect((await verifyArchive(dir)).ok).toBe(true);
      console.log(
        `archive full-disk figures: ${JSON.stringify({ messages: FULL_MESSAGES, beforeFull: partial, recovered: second.recovered, fetchedAfter: second.messagesNew })}`,
      );
    } finally {
      execFileSync('umount', [dir]);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
