/**
 * `mailbridge migrate` from a password IMAP mailbox to a Microsoft 365-like
 * one (XOAUTH2), against the real Dovecot of test/helpers.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MigrateMailboxOptions, migrateMailbox } from '../../../src/jobs/migrate/migrate.js';
import { runCli } from '../../helpers/run-cli.js';
import {
  deliverTooBig,
  expected,
  type MigrateTestEnv,
  SOURCE_PASSWORD,
  seed,
  seedMessages,
  snapshot,
  startMigrateTestEnv,
} from './support.js';

const DEST = 'bob@contoso.example';
const FOLDERS = [
  'INBOX',
  'Sent',
  'Drafts',
  'Trash',
  'Junk',
  'Archive',
  'v1.2',
  'Projects/2024',
  'Ünïcödé ✓',
  'a&b',
];
/** Destination of the interrupted run. */
const INTERRUPTED = 'dave@contoso.example';
const SUBSCRIBED = ['v1.2', 'Projects/2024', 'Ünïcödé ✓', 'Sent Items'];
/** Where each source folder must arrive: Exchange's names, or the destination's own folder of that use. */
const MAPPED: Record<string, string> = {
  INBOX: 'INBOX',
  Sent: 'Sent Items',
  Drafts: 'Drafts',
  Trash: 'Gelöschte Elemente',
  Junk: 'Junk Email',
  Archive: 'Archive',
  'v1.2': 'v1.2',
  'Projects/2024': 'Projects/2024',
  'Ünïcödé ✓': 'Ünïcödé ✓',
  'a&b': 'a&b',
};

interface Summary {
  dryRun: boolean;
  copied: number;
  alreadyPresent: number;
  skipped: number;
  folders: {
    source: string;
    destination: string;
    created: boolean;
    skipped: { reason: string }[];
  }[];
}

function lastJson(stdout: string): Summary {
  const lines = stdout.trim().split('\n');
  try {
    return JSON.parse(lines[lines.length - 1] as string) as Summary;
  } catch {
    throw new Error(`the last line of stdout is not one JSON object:\n${stdout}`);
  }
}

describe('migrate: password IMAP → Microsoft 365', () => {
  let env: MigrateTestEnv;
  let work: string;
  let state: string;
  const run = (extra: string[] = [], overrides: Record<string, string> = {}) =>
    runCli(
      [
        'migrate',
        '--from',
        env.sourceUrl,
        '--to',
        `m365:${DEST}`,
        '--state',
        state,
        '--json',
        // The oversized message has its own test.
        ...(extra.includes('--folder') ? [] : ['--exclude', 'Big']),
        ...extra,
      ],
      { ...env.env, ...overrides },
      { timeoutMs: 120_000 },
    );
  /**
   * The same job in this process, where the test is about what it copies, its state and its
   * mapping: a CLI start costs more than the work. The CLI's summary, exit codes and log lines
   * are seen by the runs of `run`. `logged` collects the log messages.
   */
  const migrate = (options: Partial<MigrateMailboxOptions> = {}, logged: string[] = []) =>
    migrateMailbox({
      from: env.sourceUrl,
      to: `m365:${DEST}`,
      toConfig: env.config,
      fromPassword: SOURCE_PASSWORD,
      stateDir: state,
      ...(options.folders ? {} : { exclude: ['Big'] }),
      logger: { log: (_level, message) => logged.push(message) },
      ...options,
    });
  const destSnapshot = async () => {
    const client = await env.m365(DEST);
    try {
      return await snapshot(client, Object.values(MAPPED));
    } finally {
      await client.logout();
    }
  };
  const sourceSnapshot = async () => {
    const client = await env.source();
    try {
      return await snapshot(client, FOLDERS);
    } finally {
      await client.logout();
    }
  };

  beforeAll(async () => {
    env = await startMigrateTestEnv([DEST, INTERRUPTED]);
    work = await mkdtemp(join(tmpdir(), 'mailbridge-migrate-'));
    state = join(work, 'state');
    const source = await env.source();
    try {
      await seed(source, seedMessages(FOLDERS, 300));
      // imapflow subscribes the folders it creates; one stays unsubscribed.
      await source.mailboxUnsubscribe('a&b');
      await source.mailboxCreate('Big');
      await source.append('Big', seedMessages(['Big'], 1, 5000)[0]?.raw as string);
    } finally {
      await source.logout();
    }
    // The destination already has its own Deleted Items folder, under another name.
    const dest = await env.m365(DEST);
    try {
      await dest.mailboxCreate('Gelöschte Elemente');
    } finally {
      await dest.logout();
    }
  }, 120_000);

  afterAll(async () => {
    await env?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('plans with --dry-run and changes nothing', async () => {
    const result = await run(['--dry-run']);
    expect(result.code).toBe(0);
    const summary = lastJson(result.stdout);
    expect(summary).toMatchObject({ dryRun: true, copied: 300, alreadyPresent: 0, skipped: 0 });
    expect(summary.folders.find((f) => f.source === 'Sent')).toMatchObject({
      destination: 'Sent Items',
      created: true,
    });
    const dest = await env.m365(DEST);
    try {
      expect((await dest.list()).map((f) => f.path).sort()).toEqual([
        'Gelöschte Elemente',
        'INBOX',
      ]);
    } finally {
      await dest.logout();
    }
    await expect(stat(state)).rejects.toMatchObject({ code: 'ENOENT' });

    const recent = await run(['--dry-run', '--since', '2020-01-01']);
    const fromSeeds = seedMessages(FOLDERS, 300).filter(
      (m) => m.date >= new Date('2020-01-01T00:00:00Z'),
    );
    expect(lastJson(recent.stdout).copied).toBe(fromSeeds.length);

    const misspelt = await run(['--dry-run', '--folder', 'Inbx']);
    expect(misspelt.code).toBe(2);
    expect(lastJson(misspelt.stdout)).toMatchObject({
      ok: false,
      error: {
        code: 'MIGRATE_NO_FOLDER_MATCHED',
        message: expect.stringContaining("did you mean 'INBOX' for 'Inbx'?"),
      },
    });
  }, 120_000);

  it('copies every message once into its mapped folder, bytes, dates and flags equal', async () => {
    const before = await sourceSnapshot();
    const result = await run();
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const summary = lastJson(result.stdout);
    expect(summary).toMatchObject({ copied: 300, alreadyPresent: 0, skipped: 0 });
    expect(Object.fromEntries(summary.folders.map((f) => [f.source, f.destination]))).toEqual(
      MAPPED,
    );
    expect(await destSnapshot()).toEqual(expected(before, MAPPED));
    // The source is read with BODY.PEEK[]: nothing became \Seen there.
    expect(await sourceSnapshot()).toEqual(before);
    const dest = await env.m365(DEST);
    try {
      const subscribed = (await dest.list()).filter((f) => f.subscribed).map((f) => f.path);
      expect(subscribed).toEqual(expect.arrayContaining(SUBSCRIBED));
      expect(subscribed).not.toContain('a&b');
    } finally {
      await dest.logout();
    }
  }, 120_000);

  it('copies nothing on a rerun, and only the new messages after more arrive', async () => {
    expect(await migrate()).toMatchObject({ ok: true, copied: 0, alreadyPresent: 0, skipped: 0 });

    const source = await env.source();
    try {
      await seed(source, seedMessages(['INBOX', 'Projects/2024', 'Ünïcödé ✓'], 50, 1000));
    } finally {
      await source.logout();
    }
    expect(await migrate({ dryRun: true })).toMatchObject({
      dryRun: true,
      copied: 50,
      alreadyPresent: 0,
    });
    expect(await migrate()).toMatchObject({ ok: true, copied: 50, alreadyPresent: 0, skipped: 0 });
    expect(await destSnapshot()).toEqual(expected(await sourceSnapshot(), MAPPED));
  }, 120_000);

  it('duplicates nothing when the journal lost its last lines or the state folder is gone', async () => {
    const journal = join(state, 'journal.jsonl');
    const lines = (await readFile(journal, 'utf8')).trim().split('\n');
    // A crash between APPEND and the journal line: the destination is ahead of the state.
    await writeFile(journal, `${lines.slice(0, -7).join('\n')}\n{"f":"INBOX","v"`);
    expect(await migrate()).toMatchObject({ ok: true, copied: 0, alreadyPresent: 7, skipped: 0 });

    await rm(state, { recursive: true });
    expect(await migrate()).toMatchObject({
      ok: true,
      copied: 0,
      alreadyPresent: 350,
      skipped: 0,
    });
    expect(await destSnapshot()).toEqual(expected(await sourceSnapshot(), MAPPED));
  }, 120_000);

  it('re-plans a source folder whose UIDVALIDITY changed, copying nothing twice', async () => {
    const source = await env.source();
    let before: number;
    try {
      // The folder deleted and made again with the same messages: new UIDVALIDITY, new UIDs.
      const old = await source.mailboxOpen('v1.2');
      const messages = await source.fetchAll('1:*', {
        source: true,
        flags: true,
        internalDate: true,
      });
      before = messages.length;
      await source.mailboxClose();
      await source.mailboxDelete('v1.2');
      await source.mailboxCreate('v1.2');
      for (const m of messages) {
        await source.append(
          'v1.2',
          m.source as Buffer,
          [...(m.flags ?? [])],
          m.internalDate as Date,
        );
      }
      const renewed = await source.mailboxOpen('v1.2');
      expect(renewed.uidValidity).not.toBe(old.uidValidity);
    } finally {
      await source.logout();
    }
    expect(await migrate({ folders: ['v1.2'] })).toMatchObject({
      ok: true,
      copied: 0,
      alreadyPresent: before,
      skipped: 0,
    });
    expect(await destSnapshot()).toEqual(expected(await sourceSnapshot(), MAPPED));
  }, 120_000);

  it('stops between messages when interrupted, and the next run copies the rest once', async () => {
    const controller = new AbortController();
    let copied = 0;
    const options = {
      from: env.sourceUrl,
      to: `m365:${INTERRUPTED}`,
      toConfig: env.config,
      fromPassword: SOURCE_PASSWORD,
      folders: ['INBOX'],
      stateDir: join(work, 'interrupted'),
    };
    await expect(
      migrateMailbox({
        ...options,
        signal: controller.signal,
        onProgress(event) {
          // Pipelined APPENDs already sent when it stops are answered and journalled too.
          if (event.type === 'message' && ++copied >= 20) controller.abort();
        },
      }),
    ).rejects.toMatchObject({ code: 'MIGRATE_INTERRUPTED', exitCode: 1 });
    const rest = await migrateMailbox(options);
    const client = await env.m365(INTERRUPTED);
    try {
      const inbox = (await snapshot(client, ['INBOX'])).get('INBOX') ?? [];
      expect(copied).toBeGreaterThanOrEqual(20);
      expect(rest.copied).toBe(inbox.length - copied);
      expect(new Map([['INBOX', inbox]])).toEqual(
        expected(new Map([['INBOX', (await sourceSnapshot()).get('INBOX') ?? []]]), {
          INBOX: 'INBOX',
        }),
      );
    } finally {
      await client.logout();
    }
  }, 120_000);

  it('reports a message the destination refuses, copies the rest and exits 1', async () => {
    const source = await env.source();
    try {
      expect((await source.mailboxOpen('Big')).exists).toBe(1);
    } finally {
      await source.logout();
    }
    await deliverTooBig(env, 'Big', () => 'Big');
    const result = await run(['--folder', 'Big'], {});
    const summary = lastJson(result.stdout);
    expect(result.code).toBe(1);
    expect(summary).toMatchObject({ copied: 1, skipped: 1 });
    const reason = summary.folders[0]?.skipped[0]?.reason ?? '';
    expect(reason).toMatch(/^NO /);
    expect(reason.toLowerCase()).toContain('size');
  }, 120_000);

  it('warns of a refused message with the folder and server words escaped once, in full', async () => {
    const long = 'R'.repeat(210);
    const folder = `${long}\u202eevil`;
    const source = await env.source();
    try {
      await source.mailboxCreate(folder);
    } finally {
      await source.logout();
    }
    await deliverTooBig(env, folder, (names) => names.find((n) => n.startsWith(long)) ?? '');
    const result = await run(['--folder', folder], {});
    expect(result.code).toBe(1);
    const warning = result.stderr.split('\n').find((l) => l.includes('refused a message')) ?? '';
    // Escaped by the logger alone: the whole name (longer than the engine's cut), each escape once.
    expect(warning).toContain(`folder=${long}\\u202eevil uid=`);
    expect(warning).toMatch(/ reply="NO [^"]*size/i);
    expect(warning).not.toContain('\u202e');
    expect(warning).not.toContain('\\\\');
  }, 120_000);

  it('refuses bad endpoints and missing passwords with exit 2, a wrong password with exit 3', async () => {
    const bad = await runCli(
      ['migrate', '--from', 'alice@oldhost.example', '--to', `m365:${DEST}`],
      env.env,
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('MIGRATE_ENDPOINT_INVALID');
    expect(bad.stderr).toContain('imaps://USER@HOST:993');

    const inUrl = await runCli(
      [
        'migrate',
        '--from',
        `imaps://alice:secret@127.0.0.1:${env.servers.imap.port}`,
        '--to',
        `m365:${DEST}`,
      ],
      env.env,
    );
    expect(inUrl.code).toBe(2);
    expect(inUrl.stderr).not.toContain('secret');

    const notANumber = await runCli(
      ['migrate', '--from', env.sourceUrl, '--to', `m365:${DEST}`, '--connections', 'x'],
      env.env,
    );
    expect(notANumber.code).toBe(2);
    expect(notANumber.stderr).toMatch(/--connections must be a whole number/);
    // Numbers out of range are the job's to refuse (the CLI passes them on): checked in-process;
    // a ConfigurationError's exit 2 on the command line is seen by the other runs here.
    for (const connections of [0, 9]) {
      await expect(
        migrateMailbox({
          from: env.sourceUrl,
          to: `m365:${DEST}`,
          toConfig: env.config,
          fromPassword: SOURCE_PASSWORD,
          stateDir: join(work, 'never'),
          connections,
        }),
      ).rejects.toMatchObject({
        exitCode: 2,
        message: expect.stringMatching(/--connections must be a whole number/),
      });
    }

    const { MAILBRIDGE_FROM_PASSWORD: _, ...withoutPassword } = env.env;
    const missing = await runCli(
      ['migrate', '--from', env.sourceUrl, '--to', `m365:${DEST}`],
      withoutPassword,
    );
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('MIGRATE_PASSWORD_MISSING');

    const passwordFile = join(work, 'wrong-password');
    await writeFile(passwordFile, 'not the password\n');
    const wrong = await runCli(
      [
        'migrate',
        '--from',
        env.sourceUrl,
        '--to',
        `m365:${DEST}`,
        '--from-password-file',
        passwordFile,
        '--state',
        join(work, 'never'),
      ],
      withoutPassword,
    );
    expect(wrong.code).toBe(3);
    expect(wrong.stderr).toContain('MIGRATE_LOGIN_REFUSED');
    expect(wrong.stderr).not.toContain('not the password');
  }, 60_000);
  it('copies a folder into its new destination when --map changed since an earlier run, with a warning', async () => {
    // The file's own state: this test comes last, the remapping stays in it.
    const own = { folders: ['v1.2'] };
    expect(await migrate(own)).toMatchObject({ ok: true });
    const source = await env.source();
    let inFolder: number;
    try {
      inFolder = (await source.mailboxOpen('v1.2', { readOnly: true })).exists;
    } finally {
      await source.logout();
    }
    expect(inFolder).toBeGreaterThan(0);

    const warned: string[] = [];
    const remapped = await migrate({ ...own, map: ['v1.2=v1.2 moved'] }, warned);
    expect(remapped).toMatchObject({ ok: true, copied: inFolder, skipped: 0 });
    expect(warned.join('\n')).toContain('copied into this one, as the mapping now says');
    const dest = await env.m365(DEST);
    try {
      expect((await dest.mailboxOpen('v1.2 moved', { readOnly: true })).exists).toBe(inFolder);
    } finally {
      await dest.logout();
    }

    const quiet: string[] = [];
    const again = await migrate({ ...own, map: ['v1.2=v1.2 moved'] }, quiet);
    expect(again).toMatchObject({ copied: 0, alreadyPresent: 0 });
    expect(quiet.join('\n')).not.toContain('as the mapping now says');
  }, 120_000);
});
