/**
 * Crash safety and memory, in child processes: `archiveMailbox` is killed
 * with SIGKILL at random points and started again until it completes; and a
 * 50 MB message is archived with the process's peak RSS measured.
 */
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mailboxDirName } from '../../../src/jobs/archive/paths.js';
import type { ArchiveMailboxResult } from '../../../src/jobs/archive/runner.js';
import { verifyArchive } from '../../../src/jobs/archive/verify.js';
import { seededRandom } from '../../helpers/seeded-random.js';
import {
  type ArchiveTestEnv,
  manifestRecords,
  messageWithAttachment,
  plainMessage,
  projectBuild,
  type ServerFolder,
  serverSnapshot,
  sha256File,
  startArchiveChild,
  startArchiveTestEnv,
} from './support.js';

const MAILBOX = 'crash@contoso.example';
const BIG = 'big@contoso.example';
const FOLDERS = ['INBOX', 'Projects/Alpha', 'Ünïcödé'];
const PER_FOLDER = 40;
/** INBOX's extra messages: parts of it go to other connections once theirs are done. */
const INBOX_EXTRA = 50;
const LARGE = 2;
const KILLS = 4;

let env: ArchiveTestEnv;
let out: string;
let server: Map<string, ServerFolder>;
const build = projectBuild();

beforeAll(async () => {
  env = await startArchiveTestEnv([MAILBOX, BIG]);
  out = await mkdtemp(join(tmpdir(), 'mailbridge-archive-crash-'));
  const seeder = await env.direct(MAILBOX);
  let n = 0;
  for (const folder of FOLDERS) {
    if (folder !== 'INBOX') await seeder.mailboxCreate(folder);
    for (let i = 0; i < PER_FOLDER + (folder === 'INBOX' ? INBOX_EXTRA : 0); i++) {
      await seeder.append(folder, plainMessage(++n, folder, MAILBOX));
      // Large messages between small ones: kills land inside partial-FETCH streams too.
      if (folder === 'INBOX' && (i === 10 || i === 70))
        await seeder.append(folder, messageWithAttachment(n, MAILBOX, 1_200_000));
    }
  }
  await seeder.logout();
  server = await serverSnapshot(env, MAILBOX);
}, 60_000);

afterAll(async () => {
  await env?.close();
  if (out) await rm(out, { recursive: true, force: true });
});

/** Folder directory name → IMAP folder, from each folder.json. */
async function folderNames(mailboxDir: string): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  // A kill during start-up can come before the directory exists.
  const entries = await readdir(mailboxDir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    const info = await readFile(join(mailboxDir, entry.name, 'folder.json'), 'utf8').catch(
      () => undefined,
    );
    if (info) names.set(entry.name, (JSON.parse(info) as { folder: string }).folder);
  }
  return names;
}

/**
 * What must hold at every moment, even right after a kill: each file in place
 * is complete (the server's exact bytes), each manifest line's file exists
 * with its hash, and no message has two lines.
 */
async function checkInvariants(mailboxDir: string): Promise<{ files: number; lines: number }> {
  const records = await manifestRecords(mailboxDir);
  const keys = records.map((r) => `${r.folder}/${r.uidValidity}/${r.uid}`);
  expect(new Set(keys).size, 'duplicate manifest lines').toBe(keys.length);
  for (const r of records) {
    expect(await sha256File(join(mailboxDir, ...r.path.split('/'))), r.path).toBe(r.sha256);
  }
  let files = 0;
  for (const [dir, folder] of await folderNames(mailboxDir)) {
    const expected = server.get(folder);
    for (const uv of await readdir(join(mailboxDir, dir))) {
      if (uv === 'folder.json') continue;
      expect(Number(uv)).toBe(expected?.uidValidity);
      for (const file of await readdir(join(mailboxDir, dir, uv))) {
        const uid = Number(file.replace(/\.eml$/, ''));
        const want = expected?.messages.get(uid);
        expect(want, `${dir}/${uv}/${file} is not a server message`).toBeDefined();
        expect(await sha256File(join(mailboxDir, dir, uv, file)), `${dir}/${uv}/${file}`).toBe(
          want?.sha256,
        );
        files++;
      }
    }
  }
  return { files, lines: records.length };
}

describe('archive crash safety', { tags: ['soak'] }, () => {
  it('completes with nothing missing, doubled or partial after SIGKILLs at random points, on 1 or 3 connections', async () => {
    env.service.setTokenLifetime(5);
    const seed = Number(process.env.ARCHIVE_KILL_SEED ?? Date.now() % 1_000_000);
    const next = seededRandom(seed);
    const mailboxDir = join(out, mailboxDirName(MAILBOX));
    // Small partial FETCHes: a large message takes many commands, and kills fall inside it.
    const options = {
      session: { baseDelayMs: 20 },
      fetch: { streamAboveBytes: 512 * 1024, chunkBytes: 128 * 1024 },
    };
    const total = PER_FOLDER * FOLDERS.length + INBOX_EXTRA + LARGE;
    const log: string[] = [`seed ${seed}`];
    let kills = 0;
    // Four kills are what is asserted; each more costs a child process and a full check.
    for (let round = 0; round < 12 && kills < KILLS; round++) {
      // Round 0 is killed by time (start-up: lock, manifest, listing); later rounds after a
      // random number of stored messages plus a random few milliseconds.
      const afterMessages = 1 + Math.floor(next() * 30);
      const extraMs = Math.floor(next() * 25);
      let killed = false;
      const kill = () => {
        if (killed) return;
        killed = true;
        setTimeout(() => child.kill(), extraMs);
      };
      // Mostly three connections, whose parts leave gaps below other parts' files; every
      // third round one, which must take over what three left.
      const connections = round % 3 === 2 ? 1 : 3;
      const child = startArchiveChild(
        build.dir,
        env.env,
        MAILBOX,
        out,
        { ...options, connections },
        (count) => {
          if (round > 0 && count >= afterMessages) kill();
        },
      );
      if (round === 0) setTimeout(kill, 300 + Math.floor(next() * 900));
      const ended = await child.done;
      const state = await checkInvariants(mailboxDir).catch((error: Error) => {
        error.message += `\n${log.join('\n')}\n${ended.stderr}`;
        throw error;
      });
      log.push(
        `round ${round} (${connections} connections): ${ended.signal ?? `exit ${ended.code}`} ${round === 0 ? 'by time' : `after ${afterMessages} msgs + ${extraMs} ms`}; files ${state.files}, lines ${state.lines}`,
      );
      if (ended.signal === 'SIGKILL') kills++;
      else {
        expect(ended.code, ended.stderr).toBe(0);
        break;
      }
    }
    expect(kills, log.join('\n')).toBeGreaterThanOrEqual(KILLS);

    // And a run to the end.
    const final = startArchiveChild(build.dir, env.env, MAILBOX, out, {
      ...options,
      connections: 3,
    });
    const ended = await final.done;
    expect(ended.code, ended.stderr).toBe(0);
    const { result } = JSON.parse(ended.stdout.trim().split('\n').at(-1) as string) as {
      result: ArchiveMailboxResult;
    };
    log.push(`final: ${result.messagesNew} new, ${result.recovered} recovered`);
    expect(result.ok).toBe(true);
    const records = await manifestRecords(mailboxDir);
    const archived = new Set(records.map((r) => `${r.folder}/${r.uid}`));
    const missing = [...server].flatMap(([folder, { messages }]) =>
      [...messages.keys()].map((uid) => `${folder}/${uid}`).filter((key) => !archived.has(key)),
    );
    log.push(
      `lines ${records.length}, messages ${archived.size}, missing: ${missing.join(', ') || 'none'}`,
    );
    expect(result.messagesTotal, log.join('\n')).toBe(total);

    expect(records).toHaveLength(total);
    for (const [folder, { uidValidity, messages }] of server) {
      const archived = records.filter((r) => r.folder === folder);
      expect(archived.every((r) => r.uidValidity === uidValidity)).toBe(true);
      expect(
        archived.map((r) => [r.uid, r.sha256, r.size]).sort((a, b) => Number(a[0]) - Number(b[0])),
      ).toEqual([...messages].map(([uid, m]) => [uid, m.sha256, m.size]));
    }
    // Recovered lines still carry the server's flags and INTERNALDATE (the folder was there).
    for (const r of records) expect(typeof r.internalDate, r.path).toBe('string');
    const entries = await readdir(mailboxDir);
    expect(entries).not.toContain('.tmp');
    expect(entries).not.toContain('.lock');
    expect((await checkInvariants(mailboxDir)).files).toBe(total);
    const report = await verifyArchive(out);
    expect(report.ok, JSON.stringify(report)).toBe(true);
    expect(report.checked).toBe(total);
    process.stdout.write(`${log.join('\n')}\n`);
    // 15 s alone; over 120 s when four files share two loaded cores, as in CI.
  }, 300_000);
});

describe('archive memory', { tags: ['soak'] }, () => {
  it('archives a 50 MB message with the peak RSS under 150 MB', async () => {
    env.service.setTokenLifetime(3599);
    const seeder = await env.direct(BIG);
    // 38 MiB of attachment, base64 with line breaks: a message of about 51 MiB.
    await seeder.append('INBOX', messageWithAttachment(50, BIG, 38 * 1024 * 1024));
    await seeder.logout();
    env.service.setTokenLifetime(5);
    const dir = await mkdtemp(join(tmpdir(), 'mailbridge-archive-big-'));
    try {
      const child = startArchiveChild(build.dir, env.env, BIG, dir, {
        session: { baseDelayMs: 20 },
      });
      const ended = await child.done;
      expect(ended.code, ended.stderr).toBe(0);
      const { result, maxRssBytes } = JSON.parse(
        ended.stdout.trim().split('\n').at(-1) as string,
      ) as { result: ArchiveMailboxResult; maxRssBytes: number };
      expect(result.messagesNew).toBe(1);
      const [record] = await manifestRecords(join(dir, mailboxDirName(BIG)));
      expect(record?.size).toBeGreaterThan(50 * 1024 * 1024);
      expect(record?.attachments).toEqual([
        {
          filename: 'report-50.bin',
          contentType: 'application/octet-stream',
          size: 38 * 1024 * 1024,
        },
      ]);
      const onServer = (await serverSnapshot(env, BIG))
        .get('INBOX')
        ?.messages.get(record?.uid ?? 0);
      expect(record?.sha256).toBe(onServer?.sha256);
      const file = join(dir, mailboxDirName(BIG), ...(record?.path ?? '').split('/'));
      expect((await stat(file)).size).toBe(onServer?.size);
      expect(maxRssBytes / 1024 / 1024).toBeLessThan(150);
      process.stdout.write(
        `archive of a ${(record?.size ?? 0) >> 20} MiB message: peak RSS ${(maxRssBytes / 1024 / 1024).toFixed(0)} MiB\n`,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
