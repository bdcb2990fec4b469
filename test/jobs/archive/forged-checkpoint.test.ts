/**
 * A manifest line can be forged with a path that does match its own UID
 * (INBOX/<uidvalidity>/999999.eml) though no such file exists: `archive
 * verify` cannot reject it by its path alone, and as the folder's highest UID
 * it would make every later run skip the folder's new mail. The checkpoint
 * must come only from lines whose file is there. Against the real Dovecot.
 */
import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { folderDirName, mailboxDirName, messagePath } from '../../../src/jobs/archive/paths.js';
import { archiveMailbox } from '../../../src/jobs/archive/runner.js';
import {
  type ArchiveTestEnv,
  manifestRecords,
  plainMessage,
  startArchiveTestEnv,
} from './support.js';

const MAILBOX = 'forged@contoso.example';

let env: ArchiveTestEnv;
let out: string;

beforeAll(async () => {
  env = await startArchiveTestEnv([MAILBOX]);
  out = await mkdtemp(join(tmpdir(), 'mailbridge-archive-forged-uid-'));
  const seeder = await env.direct(MAILBOX);
  for (let i = 1; i <= 3; i++) await seeder.append('INBOX', plainMessage(i, 'INBOX', MAILBOX));
  await seeder.logout();
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
    const warnings: string[] = [];
    const second = await archiveMailbox(env.config, {
      mailbox: MAILBOX,
      outDir: out,
      logger: {
        log(level, message, fields) {
          if (level === 'warn') warnings.push(`${message} ${JSON.stringify(fields)}`);
        },
      },
    });
    expect(second.folders.find((f) => f.folder === 'INBOX')).toMatchObject({
      status: 'archived',
      messagesNew: 1,
    });
    expect(second).toMatchObject({ ok: true, messagesNew: 1 });
    expect(warnings.join('\n')).toMatch(/no file.*"folder":"INBOX".*999999/);
    // The next run has nothing to do, and takes the same care again.
    const third = await archiveMailbox(env.config, { mailbox: MAILBOX, outDir: out });
    expect(third).toMatchObject({ ok: true, messagesNew: 0 });
  });
});
