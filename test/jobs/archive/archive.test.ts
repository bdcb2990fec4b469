/**
 * The archive job against Dovecot behind the Exchange-like fault proxy, with
 * tokens that live 5 seconds: sessions end when a token expires, a command is
 * throttled, connections drop; the archive must still equal the server.
 */
import { execFileSync } from 'node:child_process';
import { appendFile, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  COMMON_FLAGS,
  parseCommandArgs,
  SETTING_FLAGS,
  settingsFromFlags,
} from '../../../src/cli/args.js';
import type { Command } from '../../../src/cli/command.js';
import { archiveCommand, archiveVerifyCommand } from '../../../src/cli/commands/archive.js';
import { loadConfig } from '../../../src/config/load.js';
import { readArchiveSection } from '../../../src/jobs/archive/config-section.js';
import { encodeName, mailboxDirName } from '../../../src/jobs/archive/paths.js';
import {
  type ArchiveMailboxResult,
  type ArchiveProgressEvent,
  archiveMailbox,
} from '../../../src/jobs/archive/runner.js';
import { verifyArchive } from '../../../src/jobs/archive/verify.js';
import { silentLogger } from '../../../src/log/logger.js';
import { sessionsNow } from '../queue/support.js';
import {
  type ArchiveTestEnv,
  malformedMessage,
  manifestRecords,
  messageWithAttachment,
  plainMessage,
  serverSnapshot,
  sha256File,
  startArchiveTestEnv,
  warningCollector,
} from './support.js';

const MAILBOX = 'archive@contoso.example';
const OTHER = 'reports@contoso.example';
/** Archived onto a small filesystem that fills up. */
const FULL = 'full@contoso.example';
/** Has a folder whose decoded name holds a control character. */
const NAMES = 'names@contoso.example';
/** Archived over three connections: several folders, INBOX split into parts of 50 UIDs. */
const CONNS = 'conns@contoso.example';
const CONNS_FOLDERS = {
  INBOX: 70,
  Sent: 12,
  'Archive/2023': 12,
  Projects: 10,
  Notes: 3,
} as const;
const LONG = 'L'.repeat(210);
const FOLDERS = [
  'INBOX',
  'Archive/2024',
  'Ünïcödé',
  'with space',
  LONG,
  'a\\b',
  'x%y',
  'star*',
  '日本語',
  'CON',
  'a..b',
  'v1.2',
  'Empty',
];

let env: ArchiveTestEnv;
let out: string;
let mailboxDir: string;

beforeAll(async () => {
  env = await startArchiveTestEnv([MAILBOX, OTHER, FULL, NAMES, CONNS]);
  out = await mkdtemp(join(tmpdir(), 'mailbridge-archive-'));
  mailboxDir = join(out, mailboxDirName(MAILBOX));
  const seeder = await env.direct(MAILBOX);
  for (const folder of FOLDERS) if (folder !== 'INBOX') await seeder.mailboxCreate(folder);
  let n = 0;
  for (const folder of FOLDERS) {
    const count =
      folder === 'INBOX' ? 12 : folder === 'Empty' ? 0 : folder === 'Archive/2024' ? 8 : 2;
    for (let i = 0; i < count; i++)
      await seeder.append(folder, plainMessage(++n, folder, MAILBOX), ['\\Seen']);
  }
  await seeder.append('INBOX', messageWithAttachment(1, MAILBOX, 20_000), ['\\Flagged']);
  // Above the 4 MiB streaming threshold: fetched in partial chunks.
  await seeder.append('INBOX', messageWithAttachment(2, MAILBOX, 5 * 1024 * 1024));
  await seeder.append('INBOX', malformedMessage(MAILBOX));
  // Bare LF line ends: archived as the server returns them, whatever that is.
  await seeder.append('Archive/2024', 'Subject: bare LF\nFrom: a@b.example\n\nbody\n');
  await seeder.logout();

  const other = await env.direct(OTHER);
  for (const folder of ['Sent', 'Archive/Old', 'Archive/New']) await other.mailboxCreate(folder);
  for (const folder of ['INBOX', 'Sent', 'Archive/Old', 'Archive/New']) {
    for (let i = 0; i < 3; i++) await other.append(folder, plainMessage(++n, folder, OTHER));
  }
  await other.logout();

  const conns = await env.direct(CONNS);
  for (const [folder, count] of Object.entries(CONNS_FOLDERS)) {
    if (folder !== 'INBOX') await conns.mailboxCreate(folder);
    for (let i = 0; i < count; i++) {
      await conns.append(folder, plainMessage(++n, folder, CONNS), i % 3 ? [] : ['\\Seen']);
    }
  }
  await conns.logout();

  const full = await env.direct(FULL);
  for (let i = 0; i < 60; i++)
    await full.append('INBOX', messageWithAttachment(1000 + i, FULL, 2500));
  await full.logout();
}, 60_000);

afterAll(async () => {
  await env?.close();
  if (out) await rm(out, { recursive: true, force: true });
});

beforeEach(() => {
  env.service.setTokenLifetime(5);
});

function archive(
  options: Partial<Parameters<typeof archiveMailbox>[1]> = {},
): Promise<ArchiveMailboxResult> {
  return archiveMailbox(env.config, {
    mailbox: MAILBOX,
    outDir: out,
    session: { baseDelayMs: 20 },
    ...options,
  });
}

/**
 * The archive equals the server: same folders, UIDs, sizes and SHA-256, files
 * included. `deleted` names folders where messages were deleted on the server
 * since (they stay in the archive), with how many.
 */
async function expectArchiveMatchesServer(
  mailbox = MAILBOX,
  deleted: Record<string, number> = {},
): Promise<void> {
  const dir = join(out, mailboxDirName(mailbox));
  const server = await serverSnapshot(env, mailbox);
  const records = await manifestRecords(dir);
  const keys = records.map((r) => `${r.folder}\u0000${r.uidValidity}\u0000${r.uid}`);
  expect(new Set(keys).size, 'duplicate manifest lines').toBe(keys.length);
  for (const [folder, { uidValidity, messages }] of server) {
    const archived = records.filter((r) => r.folder === folder && r.uidValidity === uidValidity);
    const onServer = archived.filter((r) => messages.has(r.uid));
    expect(
      onServer.map((r) => [r.uid, r.size, r.sha256]).sort((a, b) => Number(a[0]) - Number(b[0])),
      folder,
    ).toEqual([...messages].map(([uid, m]) => [uid, m.size, m.sha256]));
    expect(archived.length - onServer.length, `${folder}: archived, deleted on the server`).toBe(
      deleted[folder] ?? 0,
    );
  }
  for (const r of records) {
    expect(await sha256File(join(dir, ...r.path.split('/'))), r.path).toBe(r.sha256);
  }
  expect((await verifyArchive(out)).ok).toBe(true);
}

async function uidValidityOf(client: ImapFlow, folder: string): Promise<number> {
  const status = await client.status(folder, { uidValidity: true });
  if (!status) throw new Error(`no STATUS for ${folder}`);
  return Number(status.uidValidity);
}

describe('archiveMailbox', () => {
  it('archives every folder, awkward names included, exactly as the server holds them', async () => {
    // Two-second tokens: the run outlives several, so the session renews them as it goes.
    env.service.setTokenLifetime(2);
    const events: ArchiveProgressEvent[] = [];
    let dropped = false;
    const throttlesBefore = env.proxy.throttlesSent;
    env.proxy.throttleNext(1, 800, /UID SEARCH/i);
    const result = await archive({
      onProgress: (event) => {
        events.push(event);
        // Cut every connection once in the middle of the run, like a network failure.
        if (event.type === 'message' && event.counts.messages === 10 && !dropped) {
          dropped = true;
          env.proxy.dropAll();
        }
      },
    });
    expect(result.ok, JSON.stringify(result.folders.filter((f) => f.error))).toBe(true);
    const expected = 12 + 8 + 2 * 10 + 4;
    expect(result.messagesNew).toBe(expected);
    expect(result.messagesTotal).toBe(expected);
    expect(result.parseErrors).toBe(1);
    expect(env.proxy.throttlesSent - throttlesBefore).toBe(1);
    // One connection at the start, one after the drop, at least one for an expired token
    // (renewed ahead of time, or after the proxy ended the session as Exchange does).
    expect(result.session.connects, JSON.stringify(result.session)).toBeGreaterThanOrEqual(3);
    expect(result.session.retries).toBeGreaterThanOrEqual(1);
    expect(result.folders.map((f) => f.folder).sort()).toEqual([...FOLDERS].sort());
    expect(result.folders.find((f) => f.folder === 'Empty')?.status).toBe('empty');
    await expectArchiveMatchesServer();

    // Layout: one directory per folder, named injectively and safely; folder.json names it.
    const dirs = (await readdir(mailboxDir)).sort();
    expect(dirs).toContain('Archive%2F2024');
    expect(dirs).toContain('%C3%9Cn%C3%AFc%C3%B6d%C3%A9');
    expect(dirs).toContain('with%20space');
    expect(dirs).toContain('a%5Cb');
    expect(dirs).toContain('x%25y');
    expect(dirs).toContain('star%2A');
    expect(dirs).toContain('%43ON');
    // Dots are kept; only a name made of dots alone is encoded (paths.test.ts).
    expect(dirs).toContain('a..b');
    expect(dirs).toContain('v1.2');
    expect(dirs).toContain(encodeName(LONG));
    expect(encodeName(LONG)).toMatch(/~[0-9a-f]{20}$/);
    expect(dirs).not.toContain('Empty');
    expect(dirs).not.toContain('.tmp');
    expect(dirs).not.toContain('.lock');
    const longInfo = JSON.parse(
      await readFile(join(mailboxDir, encodeName(LONG), 'folder.json'), 'utf8'),
    );
    expect(longInfo).toEqual({ folder: LONG });

    // Manifest metadata, and the message mailparser gave up on archived anyway.
    const records = await manifestRecords(mailboxDir);
    const broken = records.find((r) => r.subject === 'broken MIME');
    expect(broken?.parseError).toMatch(/child nodes/);
    expect(broken?.size).toBeGreaterThan(30_000);
    const report = records.find((r) => r.messageId === '<report1@fabrikam.example>');
    expect(report).toMatchObject({
      folder: 'INBOX',
      flags: ['\\Flagged'],
      subject: 'Report 1',
      from: [{ name: '', address: 'reports@fabrikam.example' }],
      to: [{ name: '', address: MAILBOX }],
      cc: [],
      date: '2024-04-02T10:00:00.000Z',
      attachments: [
        { filename: 'report-1.bin', contentType: 'application/octet-stream', size: 20_000 },
      ],
    });
    expect(report?.path).toMatch(/^INBOX\/\d+\/\d+\.eml$/);
    expect(typeof report?.internalDate).toBe('string');
    const big = records.find((r) => r.messageId === '<report2@fabrikam.example>');
    expect(big?.attachments[0]?.size).toBe(5 * 1024 * 1024);
    const unicode = records.find((r) => r.folder === 'Ünïcödé');
    expect(unicode?.subject).toMatch(/^Nachricht \d+ über /);
    expect(unicode?.flags).toEqual(['\\Seen']);

    // Progress: a start, a line per message, an end with the same totals.
    expect(events[0]?.type).toBe('mailbox-start');
    expect(events.filter((e) => e.type === 'message')).toHaveLength(expected);
    expect(events.at(-1)).toMatchObject({ type: 'mailbox-done', counts: { messages: expected } });
  }, 60_000);

  it('fetches nothing on a second run', async () => {
    const before = await readFile(join(mailboxDir, 'manifest.jsonl'));
    const result = await archive();
    expect(result.ok).toBe(true);
    expect(result.messagesNew).toBe(0);
    expect(result.folders.every((f) => f.status === 'up-to-date' || f.status === 'empty')).toBe(
      true,
    );
    expect(Buffer.compare(await readFile(join(mailboxDir, 'manifest.jsonl')), before)).toBe(0);
  });

  it('picks up new messages, and keeps messages deleted on the server', async () => {
    const client = await env.direct(MAILBOX);
    await client.append('INBOX', plainMessage(900, 'INBOX', MAILBOX));
    await client.append('INBOX', plainMessage(901, 'INBOX', MAILBOX));
    await client.append('Archive/2024', plainMessage(902, 'Archive/2024', MAILBOX));
    await client.mailboxOpen('CON');
    await client.messageDelete('1:*');
    await client.logout();
    const result = await archive();
    expect(result.messagesNew).toBe(3);
    expect(
      result.folders
        .filter((f) => f.messagesNew > 0)
        .map((f) => f.folder)
        .sort(),
    ).toEqual(['Archive/2024', 'INBOX']);
    const records = await manifestRecords(mailboxDir);
    const con = records.filter((r) => r.folder === 'CON');
    expect(con).toHaveLength(2);
    for (const r of con)
      expect((await stat(join(mailboxDir, ...r.path.split('/')))).size).toBe(r.size);
    expect((await verifyArchive(out)).ok).toBe(true);
  });

  it('archives a folder again under its new UIDVALIDITY, keeping the old copy', async () => {
    const before = (await manifestRecords(mailboxDir)).filter((r) => r.folder === 'with space');
    expect(before).toHaveLength(2);
    const oldUv = before[0]?.uidValidity as number;
    const client = await env.direct(MAILBOX);
    await client.mailboxDelete('with space');
    await client.mailboxCreate('with space');
    for (let i = 0; i < 3; i++)
      await client.append('with space', plainMessage(950 + i, 'with space', MAILBOX));
    const status = await client.mailboxOpen('with space');
    await client.logout();
    const newUv = Number(status.uidValidity);
    expect(newUv).not.toBe(oldUv);

    const result = await archive();
    const folder = result.folders.find((f) => f.folder === 'with space');
    expect(folder).toMatchObject({
      status: 'archived',
      reason: 'uidvalidity-changed',
      messagesNew: 3,
    });
    const after = (await manifestRecords(mailboxDir)).filter((r) => r.folder === 'with space');
    expect(after.filter((r) => r.uidValidity === oldUv)).toEqual(before);
    expect(after.filter((r) => r.uidValidity === newUv)).toHaveLength(3);
    expect((await readdir(join(mailboxDir, 'with%20space'))).sort()).toEqual(
      [String(newUv), String(oldUv), 'folder.json'].sort(),
    );
    for (const r of before)
      expect(await sha256File(join(mailboxDir, ...r.path.split('/')))).toBe(r.sha256);
    await expectArchiveMatchesServer(MAILBOX, { CON: 2 });
  });

  it('counts messages deleted during the run as gone and archives all the others', async () => {
    const seeder = await env.direct(MAILBOX);
    await seeder.mailboxCreate('Volatile');
    for (let i = 0; i < 40; i++)
      await seeder.append('Volatile', plainMessage(700 + i, 'Volatile', MAILBOX));
    await seeder.mailboxOpen('Volatile');
    let deleting: Promise<unknown> | undefined;
    const result = await archive({
      fetch: { maxGroupMessages: 3 },
      onProgress: (event) => {
        // Another client deletes the folder's messages while the archive is at the first ones.
        if (event.type === 'message' && event.folder === 'Volatile' && !deleting) {
          deleting = seeder.messageDelete({ uid: '1:*', seen: false }, { uid: true });
        }
      },
    });
    await deleting;
    await seeder.logout();
    const volatile = result.folders.find((f) => f.folder === 'Volatile');
    expect(volatile?.messagesNew).toBeGreaterThan(0);
    expect(volatile?.vanished).toBeGreaterThan(0);
    expect((volatile?.messagesNew ?? 0) + (volatile?.vanished ?? 0)).toBe(40);
    await expectArchiveMatchesServer(MAILBOX, { CON: 2, Volatile: volatile?.messagesNew ?? 0 });
  });

  it('archives a folder again when it is replaced during the run', async () => {
    const other = await env.direct(MAILBOX);
    for (const [folder, count, first] of [
      ['Recreated', 30, 800],
      ['Staging', 4, 900],
    ] as const) {
      await other.mailboxCreate(folder);
      for (let i = 0; i < count; i++)
        await other.append(folder, plainMessage(first + i, folder, MAILBOX));
    }
    const oldUv = await uidValidityOf(other, 'Recreated');
    const newUv = await uidValidityOf(other, 'Staging');
    expect(newUv).not.toBe(oldUv);
    let replacing: Promise<void> | undefined;
    const result = await archive({
      folders: ['Recreated'],
      fetch: { maxGroupMessages: 3 },
      onProgress: (event) => {
        if (event.type === 'message' && event.folder === 'Recreated' && !replacing) {
          // While the archive waits out a throttling reply, another client puts a different
          // folder (another UIDVALIDITY) in its place. Renames leave no moment without the
          // folder, and no index of the old folder for Dovecot to mix up with the new one.
          env.proxy.throttleNext(1, 1500, /FETCH/);
          replacing = (async () => {
            await other.mailboxRename('Recreated', 'Replaced');
            await other.mailboxRename('Staging', 'Recreated');
            // The archive's connection has the old folder selected: it goes, and comes back.
            env.proxy.dropAll();
          })();
        }
      },
    });
    await replacing;
    await other.mailboxDelete('Replaced');
    await other.logout();

    expect(result.ok, JSON.stringify(result.folders)).toBe(true);
    expect(result.folders).toMatchObject([{ folder: 'Recreated', status: 'archived' }]);
    const all = await manifestRecords(mailboxDir);
    const records = all.filter((r) => r.folder === 'Recreated');
    const before = records.filter((r) => r.uidValidity === oldUv);
    // The change landed mid-folder: some of the old messages were archived, not all.
    expect(before.length).toBeGreaterThan(0);
    expect(before.length).toBeLessThan(30);
    expect(before.map((r) => r.uid)).toEqual(before.map((_, i) => i + 1));
    expect(records.filter((r) => r.uidValidity === newUv).map((r) => r.uid)).toEqual([1, 2, 3, 4]);
    // Volatile's messages, deleted on the server by the test before, stay in the archive.
    const volatile = all.filter((r) => r.folder === 'Volatile');
    await expectArchiveMatchesServer(MAILBOX, { CON: 2, Volatile: volatile.length });
    expect((await archive()).messagesNew).toBe(0);
  });

  it('only takes the selected folders and messages', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailbridge-archive-filter-'));
    try {
      const result = await archiveMailbox(env.config, {
        mailbox: MAILBOX,
        outDir: dir,
        folders: ['INBOX', 'Archive/*', 'Nope*'],
        exclude: ['INBOX'],
        since: new Date('2000-01-01'),
      });
      expect(result.folders.map((f) => f.folder)).toEqual(['Archive/2024']);
      expect(result.unmatchedPatterns).toEqual(['Nope*']);
      // SINCE compares INTERNALDATE, which APPEND set to now: a future day takes nothing.
      const none = await archiveMailbox(env.config, {
        mailbox: MAILBOX,
        outDir: dir,
        folders: ['INBOX'],
        since: new Date(Date.now() + 3 * 86_400_000),
      });
      expect(none.messagesNew).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('stops between two messages when aborted, and the next run completes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailbridge-archive-abort-'));
    try {
      const controller = new AbortController();
      const stopped = await archiveMailbox(env.config, {
        mailbox: OTHER,
        outDir: dir,
        signal: controller.signal,
        onProgress: (event) => {
          if (event.type === 'message' && event.counts.messages === 4) controller.abort();
        },
      });
      expect(stopped).toMatchObject({ ok: false, interrupted: true, messagesNew: 4 });
      expect(stopped.folders.at(-1)?.status).toBe('interrupted');
      const otherDir = join(dir, mailboxDirName(OTHER));
      expect(await manifestRecords(otherDir)).toHaveLength(4);
      expect(await readdir(otherDir)).not.toContain('.lock');
      const rest = await archiveMailbox(env.config, { mailbox: OTHER, outDir: dir });
      expect(rest).toMatchObject({ ok: true, messagesNew: 8, messagesTotal: 12 });
      const keys = (await manifestRecords(otherDir)).map((r) => `${r.folder}/${r.uid}`);
      expect(new Set(keys).size).toBe(12);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('takes no checkpoint from a manifest line that verify rejects, and says so', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailbridge-archive-forged-'));
    try {
      const first = await archiveMailbox(env.config, { mailbox: OTHER, outDir: dir });
      expect(first.ok).toBe(true);
      const otherDir = join(dir, mailboxDirName(OTHER));
      const inbox = (await manifestRecords(otherDir)).find((r) => r.folder === 'INBOX');
      if (!inbox) throw new Error('no INBOX line');
      await appendFile(
        join(otherDir, 'manifest.jsonl'),
        `${JSON.stringify({ ...inbox, uid: 999999, path: '/etc/passwd' })}\n`,
      );
      const client = await env.direct(OTHER);
      const added = await client.append('INBOX', plainMessage(990, 'INBOX', OTHER));
      if (!added) throw new Error('APPEND refused');
      await client.logout();
      const warnings = warningCollector();
      const second = await archiveMailbox(env.config, {
        mailbox: OTHER,
        outDir: dir,
        logger: warnings.logger,
      });
      expect(second).toMatchObject({ ok: true, messagesNew: 1 });
      expect(second.folders.find((f) => f.folder === 'INBOX')?.messagesNew).toBe(1);
      expect(warnings.text()).toMatch(/lines `archive verify` rejects; ignored.*unsafe path/);
      // The later tests count this mailbox's messages.
      const cleaner = await env.direct(OTHER);
      await cleaner.mailboxOpen('INBOX');
      await cleaner.messageDelete(String(added.uid), { uid: true });
      await cleaner.logout();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('archives a folder listed as del&AH8-x under that name, with a warning', async () => {
    const seeder = await env.direct(NAMES);
    // Through imapflow's internal exec, with the name as the server has it: imapflow's own
    // mailboxCreate would encode the `&` itself.
    const raw = seeder as unknown as {
      exec(command: string, args: unknown[]): Promise<{ next(): void }>;
    };
    (await raw.exec('CREATE', [{ type: 'ATOM', value: 'del&AH8-x' }])).next();
    for (let i = 0; i < 3; i++) {
      const message = Buffer.from(plainMessage(1200 + i, 'del', NAMES));
      (
        await raw.exec('APPEND', [
          { type: 'STRING', value: 'del&AH8-x' },
          { type: 'LITERAL', value: message },
        ])
      ).next();
    }
    const listed = (await seeder.list()).find((f) => f.pathAsListed === 'del&AH8-x');
    expect(listed?.path).toBe('del\x7fx');
    await seeder.logout();

    const dir = await mkdtemp(join(tmpdir(), 'mailbridge-archive-names-'));
    try {
      const warnings = warningCollector();
      let dropped = false;
      const result = await archiveMailbox(env.config, {
        mailbox: NAMES,
        outDir: dir,
        session: { baseDelayMs: 20 },
        fetch: { maxGroupMessages: 1 },
        logger: warnings.logger,
        onProgress: (event) => {
          // Selected again on a new connection, which has not listed the folder yet.
          if (event.type === 'message' && event.folder === 'del&AH8-x' && !dropped) {
            dropped = true;
            env.proxy.dropAll();
          }
        },
      });
      expect(result.ok, JSON.stringify(result.folders)).toBe(true);
      expect(result.folders.find((f) => f.folder === 'del&AH8-x')).toMatchObject({
        status: 'archived',
        messagesNew: 3,
        directory: 'del%26AH8-x',
      });
      expect(result.session.connects).toBeGreaterThanOrEqual(2);
      expect(warnings.text()).toContain(
        'folder name holds control characters; archived under its listed name',
      );
      expect(warnings.text()).toContain('del\\\\x7fx');
      const records = await manifestRecords(join(dir, mailboxDirName(NAMES)));
      expect(records.filter((r) => r.folder === 'del&AH8-x')).toHaveLength(3);
      expect((await archiveMailbox(env.config, { mailbox: NAMES, outDir: dir })).messagesNew).toBe(
        0,
      );
      expect((await verifyArchive(dir)).ok).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a second run on the same mailbox directory while one runs', async () => {
    const first = archive();
    await new Promise((resolve) => setTimeout(resolve, 30));
    await expect(archive()).rejects.toMatchObject({ code: 'ARCHIVE_LOCKED' });
    await first;
  });
});

/** Runs a command in this process, as `runCli` would after finding it. */
async function runCommand(
  command: Command,
  argv: string[],
  options: { tty?: boolean } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const flags = [...COMMON_FLAGS, ...(command.usesSettings ? SETTING_FLAGS : []), ...command.flags];
  const args = parseCommandArgs(argv, flags);
  let stdout = '';
  let stderr = '';
  const sink = (append: (s: string) => void) =>
    ({
      write(chunk: string | Uint8Array) {
        append(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
        return true;
      },
    }) as unknown as NodeJS.WritableStream;
  const io = {
    stdout: sink((s) => {
      stdout += s;
    }),
    stderr: Object.assign(
      sink((s) => {
        stderr += s;
      }),
      options.tty ? { isTTY: true, columns: 120 } : {},
    ),
    env: env.env,
  };
  try {
    const code = await command.run({
      args,
      io,
      logger: silentLogger,
      loadConfig: () => loadConfig({ env: env.env, overrides: settingsFromFlags(args.values) }),
    });
    return { code, stdout, stderr };
  } catch (error) {
    return { code: (error as { exitCode?: number }).exitCode ?? 1, stdout, stderr: String(error) };
  }
}

describe('mailbridge archive (command)', () => {
  it('archives several mailboxes in parallel and prints a JSON summary', async () => {
    const list = join(out, '..', `mailboxes-${process.pid}.txt`);
    await writeFile(list, `# mailboxes\n${OTHER}\n\n${MAILBOX.toUpperCase()}\n`);
    try {
      const { code, stdout, stderr } = await runCommand(archiveCommand, [
        '--mailboxes',
        list,
        '--out',
        out,
        '--exclude',
        'Archive/Old',
        '--concurrency',
        '2',
        '--json',
      ]);
      expect(stderr).toMatch(
        /"event":"archive-progress","time":"[^"]+","mailbox":"reports@contoso.example","phase":"done"/,
      );
      expect(code).toBe(0);
      const report = JSON.parse(stdout) as {
        ok: boolean;
        summary: { mailboxes: number; messagesNew: number; messagesTotal: number };
        mailboxes: ArchiveMailboxResult[];
      };
      expect(report.ok).toBe(true);
      expect(report.summary.mailboxes).toBe(2);
      // The first mailbox is new (9 messages without Archive/Old); the other was archived above.
      expect(report.summary.messagesNew).toBe(9);
      const other = report.mailboxes.find((m) => m.mailbox === OTHER);
      expect(other?.folders.map((f) => f.folder).sort()).toEqual(['Archive/New', 'INBOX', 'Sent']);
    } finally {
      await rm(list, { force: true });
    }
  });

  it('shows live progress lines on a terminal', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailbridge-archive-tty-'));
    try {
      const { code, stdout, stderr } = await runCommand(
        archiveCommand,
        ['--mailbox', OTHER, '--out', dir, '--folder', 'INBOX'],
        { tty: true },
      );
      expect(code).toBe(0);
      // The last frame of the live display (earlier ones are redrawn in place every 250 ms).
      expect(stderr).toMatch(/reports@contoso\.example +done +3 msgs +[\d.]+ KiB +[\d.]+ msg\/s/);
      expect(stderr).not.toContain('archive-progress');
      expect(stdout).toMatch(
        /^reports@contoso\.example: ok, 3 new \([^)]+\), 3 archived, 1 folders -> .*\nArchived 3 new messages/m,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses bad usage with exit 2', async () => {
    expect((await runCommand(archiveCommand, ['--out', out])).code).toBe(2);
    expect((await runCommand(archiveCommand, ['--mailbox', MAILBOX])).code).toBe(2);
    const since = await runCommand(archiveCommand, [
      '--mailbox',
      MAILBOX,
      '--out',
      out,
      '--since',
      '2024-02-30',
    ]);
    expect(since.code).toBe(2);
    expect(since.stderr).toContain('--since must be a date');
    expect(
      (await runCommand(archiveCommand, ['--mailbox', MAILBOX, '--out', out, '--concurrency', '0']))
        .code,
    ).toBe(2);
    expect((await runCommand(archiveVerifyCommand, [])).code).toBe(2);
  });
});

describe('mailbridge archive --connections', () => {
  it('archives a mailbox over 3 connections exactly, Dovecot never holding more than 3 sessions', async () => {
    // Tokens outlive the run: a renewal's new connection may overlap the old one's close.
    env.service.setTokenLifetime(3599);
    const dir = await mkdtemp(join(tmpdir(), 'mailbridge-archive-conns-'));
    let most = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        most = Math.max(most, (await sessionsNow(env.servers)).get(CONNS) ?? 0);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    const archiveOnThree = async () => {
      const argv = ['--mailbox', CONNS, '--out', dir, '--connections', '3', '--json'];
      const { code, stdout, stderr } = await runCommand(archiveCommand, argv);
      expect(code, stderr).toBe(0);
      return (JSON.parse(stdout) as { mailboxes: ArchiveMailboxResult[] }).mailboxes[0];
    };
    try {
      const result = await archiveOnThree();
      sampling = false;
      await sampler;
      const total = Object.values(CONNS_FOLDERS).reduce((sum, n) => sum + n, 0);
      expect(result?.messagesNew).toBe(total);
      // Three connections, each logged in once.
      expect(result?.session.connects).toBe(3);
      const records = await manifestRecords(join(dir, mailboxDirName(CONNS)));
      const server = await serverSnapshot(env, CONNS);
      expect(records).toHaveLength(total);
      for (const [folder, { uidValidity, messages }] of server) {
        expect(
          records
            .filter((r) => r.folder === folder && r.uidValidity === uidValidity && !r.recovered)
            .map((r) => [r.uid, r.size, r.sha256])
            .sort((a, b) => Number(a[0]) - Number(b[0])),
          folder,
        ).toEqual([...messages].map(([uid, m]) => [uid, m.size, m.sha256]));
      }
      expect((await verifyArchive(dir)).ok).toBe(true);
      expect(most, 'Dovecot sessions of the mailbox at once').toBeLessThanOrEqual(3);
      expect(most).toBeGreaterThanOrEqual(2);
      // Nothing new: the checkpoints are every folder's highest UID.
      const second = await archiveOnThree();
      expect(second?.messagesNew).toBe(0);
      expect(second?.folders.every((f) => f.status === 'up-to-date')).toBe(true);
    } finally {
      sampling = false;
      await sampler;
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('archives what is missing below files a crash left in place, as another connection leaves them', async () => {
    // Three connections, killed: one part's files in place (6-12) without lines, the part
    // below (3-5) not yet fetched. The files are recorded, and 3-5 archived all the same.
    const dir = await mkdtemp(join(tmpdir(), 'mailbridge-archive-gap-'));
    const run = () =>
      archiveMailbox(env.config, { mailbox: CONNS, outDir: dir, folders: ['Sent'] });
    try {
      expect((await run()).messagesNew).toBe(CONNS_FOLDERS.Sent);
      const mailboxPath = join(dir, mailboxDirName(CONNS));
      const records = await manifestRecords(mailboxPath);
      const kept = records.filter((r) => r.uid <= 2);
      for (const r of records.filter((r) => r.uid >= 3 && r.uid <= 5)) {
        await rm(join(mailboxPath, ...r.path.split('/')));
      }
      await writeFile(
        join(mailboxPath, 'manifest.jsonl'),
        kept.map((r) => `${JSON.stringify(r)}\n`).join(''),
      );
      const again = await run();
      expect(again).toMatchObject({ ok: true, recovered: CONNS_FOLDERS.Sent - 5, messagesNew: 3 });
      const after = await manifestRecords(mailboxPath);
      expect(after.map((r) => r.uid).sort((a, b) => a - b)).toEqual(
        Array.from({ length: CONNS_FOLDERS.Sent }, (_, i) => i + 1),
      );
      expect((await verifyArchive(dir)).ok).toBe(true);
      // The recovered lines are no checkpoint, yet nothing is fetched twice.
      expect((await run()).messagesNew).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a --connections or archive.connections out of range with exit 2, saying why', async () => {
    const run = (value: string, ...more: string[]) =>
      runCommand(archiveCommand, [
        '--mailbox',
        CONNS,
        '--out',
        out,
        '--connections',
        value,
        ...more,
      ]);
    for (const value of ['0', '9', 'x', '2.5']) {
      const refused = await run(value);
      expect(refused.code, value).toBe(2);
      expect(refused.stderr, value).toMatch(/--connections must be a whole number/);
    }
    expect((await run('9')).stderr).toContain('from 1 to 8, not 9');
    const queued = await run('2', '--queue', 'redis://127.0.0.1:1/0');
    expect(queued.code).toBe(2);
    expect(queued.stderr).toContain('not with --queue');
    expect(() => readArchiveSection({ sections: { archive: { connections: 0 } } })).toThrow(
      /archive\.connections: archive\.connections must be a whole number from 1 to 16/,
    );
    expect(() => readArchiveSection({ sections: { archive: { conections: 2 } } })).toThrow(
      /did you mean 'archive\.connections'/,
    );
    expect(readArchiveSection({ sections: { archive: { connections: 4 } } })).toEqual({
      connections: 4,
    });
  });
});

describe('mailbridge archive (command) when nothing or not everything can be archived', () => {
  it('exits 2 for a mailbox where --folder selects nothing, unless --allow-empty', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailbridge-archive-empty-'));
    try {
      const onlySent = ['--mailbox', OTHER, '--out', dir, '--folder', 'sent'];
      const none = await runCommand(archiveCommand, onlySent);
      expect(none.code).toBe(2);
      expect(none.stdout).toContain(
        `${OTHER}: FAILED ARCHIVE_NO_FOLDER_MATCHED: No folder of ${OTHER} is selected by --folder sent, so nothing would be archived. did you mean 'Sent' for 'sent'?`,
      );
      expect(none.stdout).toContain('--allow-empty');
      expect(none.stdout).not.toContain('run again to continue');

      const allowed = await runCommand(archiveCommand, [...onlySent, '--allow-empty']);
      expect(allowed.code).toBe(0);

      // Per mailbox: one without the folder fails, the other is archived.
      const both = await runCommand(archiveCommand, [
        '--mailbox',
        MAILBOX,
        '--mailbox',
        OTHER,
        '--out',
        dir,
        '--folder',
        'Sent',
        '--json',
      ]);
      expect(both.code).toBe(2);
      const report = JSON.parse(both.stdout) as {
        mailboxes: { mailbox: string; ok: boolean; error?: { code: string } }[];
      };
      expect(report.mailboxes.map((m) => [m.mailbox, m.ok, m.error?.code])).toEqual([
        [MAILBOX, false, 'ARCHIVE_NO_FOLDER_MATCHED'],
        [OTHER, true, undefined],
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('counts what it archived before the disk filled up, and says what to do', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailbridge-archive-enospc-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=96k', 'tmpfs', dir]);
    try {
      const { code, stdout } = await runCommand(archiveCommand, [
        '--mailbox',
        FULL,
        '--out',
        dir,
        '--json',
      ]);
      expect(code).toBe(1);
      const report = JSON.parse(stdout) as {
        summary: { messagesNew: number; mailboxesFailed: number };
        mailboxes: { messagesNew: number; error: { code: string; remedy: string } }[];
      };
      const files = (await readdir(join(dir, mailboxDirName(FULL)), { recursive: true })).filter(
        (f) => String(f).endsWith('.eml'),
      );
      expect(files.length).toBeGreaterThan(0);
      expect(files.length).toBeLessThan(60);
      expect(report.summary).toMatchObject({ mailboxesFailed: 1, messagesNew: files.length });
      expect(report.mailboxes[0]?.messagesNew).toBe(files.length);
      expect(report.mailboxes[0]?.error.code).toMatch(/^ARCHIVE_(ENOSPC|MANIFEST_WRITE_FAILED)$/);
      expect(report.mailboxes[0]?.error.remedy).toMatch(
        /^Free space on the disk holding the archive/,
      );
    } finally {
      execFileSync('umount', [dir]);
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('mailbridge archive --repair', () => {
  it('fetches again a deleted and an altered file; reports one the server no longer has', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailbridge-archive-repair-'));
    try {
      const args = ['--mailbox', FULL, '--out', dir];
      expect((await runCommand(archiveCommand, args)).code).toBe(0);
      const fullDir = join(dir, mailboxDirName(FULL));
      const [deleted, altered, gone] = await manifestRecords(fullDir);
      if (!deleted || !altered || !gone) throw new Error('archive too small');
      const file = (r: { path: string }) => join(fullDir, ...r.path.split('/'));
      await rm(file(deleted));
      await writeFile(file(altered), 'not what the server sent');
      expect((await runCommand(archiveVerifyCommand, [dir])).stdout).toContain('--repair');

      const repaired = await runCommand(archiveCommand, [...args, '--repair']);
      expect(repaired.stdout).toContain('2 missing or altered file(s) fetched again');
      expect(repaired.code).toBe(0);
      expect(await sha256File(file(deleted))).toBe(deleted.sha256);
      expect(await sha256File(file(altered))).toBe(altered.sha256);
      expect((await readdir(join(fullDir, 'INBOX'))).sort()).toEqual(
        [String(deleted.uidValidity), 'folder.json'].sort(),
      );
      const verified = await runCommand(archiveVerifyCommand, [dir]);
      expect(verified.stdout).toContain('all match their manifests');
      expect(verified.code).toBe(0);

      // Gone from the archive and from the server: nothing to fetch it from.
      await rm(file(gone));
      const client = await env.direct(FULL);
      await client.mailboxOpen('INBOX');
      await client.messageDelete(String(gone.uid), { uid: true });
      await client.logout();
      const partly = await runCommand(archiveCommand, [...args, '--repair']);
      expect(partly.code).toBe(1);
      expect(partly.stdout).toContain(
        `not repaired: ${gone.path} (folder INBOX): the message was deleted on the server`,
      );
      expect(partly.stdout).toContain(
        '1 missing or altered file(s) could not be fetched again: restore them from a backup of the archive',
      );
      expect(partly.stdout).not.toContain('run again to continue');
      const still = await runCommand(archiveVerifyCommand, [dir, '--json']);
      expect(JSON.parse(still.stdout).missing).toEqual([`${mailboxDirName(FULL)}/${gone.path}`]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('mailbridge archive verify', () => {
  it('passes an intact archive and reports an altered, a missing and an extra file by path', async () => {
    const ok = await runCommand(archiveVerifyCommand, [out]);
    expect(ok.stdout).toMatch(
      /Checked \d+ files .* in 2 mailbox\(es\): all match their manifests\./,
    );
    expect(ok.code).toBe(0);

    const records = await manifestRecords(mailboxDir);
    const [altered, missing] = [records[3], records[7]];
    if (!altered || !missing) throw new Error('archive too small');
    const prefix = mailboxDirName(MAILBOX);
    const alteredFile = join(mailboxDir, ...altered.path.split('/'));
    const content = await readFile(alteredFile);
    const at = content.length - 3;
    content.writeUInt8(content.readUInt8(at) ^ 1, at);
    await writeFile(alteredFile, content);
    await rm(join(mailboxDir, ...missing.path.split('/')));
    await writeFile(join(mailboxDir, 'INBOX', 'notes.txt'), 'not from the server');

    const { code, stdout } = await runCommand(archiveVerifyCommand, [out, '--json']);
    expect(code).toBe(1);
    const report = JSON.parse(stdout);
    expect(report.ok).toBe(false);
    expect(report.altered).toEqual([
      {
        path: `${prefix}/${altered.path}`,
        expectedSha256: altered.sha256,
        actualSha256: expect.stringMatching(/^[0-9a-f]{64}$/),
        expectedSize: altered.size,
        actualSize: altered.size,
      },
    ]);
    expect(report.missing).toEqual([`${prefix}/${missing.path}`]);
    expect(report.extra).toEqual([`${prefix}/INBOX/notes.txt`]);

    const text = await runCommand(archiveVerifyCommand, [out]);
    expect(text.code).toBe(1);
    expect(text.stdout).toContain(`missing  ${prefix}/${missing.path}`);
    expect(text.stdout).toContain(`altered  ${prefix}/${altered.path}`);
    expect(text.stdout).toContain(`extra    ${prefix}/INBOX/notes.txt`);
  });

  it('shows a manifest path with terminal escapes as visible text', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailbridge-archive-escapes-'));
    try {
      const line = {
        folder: 'INBOX',
        uidValidity: 1,
        uid: 1,
        size: 0,
        sha256: '0'.repeat(64),
        path: '\x1b]0;pwned\x07',
      };
      await writeFile(join(dir, 'manifest.jsonl'), `${JSON.stringify(line)}\n`);
      const { code, stdout } = await runCommand(archiveVerifyCommand, [dir]);
      expect(code).toBe(1);
      expect(stdout).toContain('manifest manifest.jsonl:1  unsafe path \\x1b]0;pwned\\x07');
      expect(stdout).not.toContain('\x1b');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
