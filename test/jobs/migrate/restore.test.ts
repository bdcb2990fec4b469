/**
 * `mailbridge migrate --from archive:DIR`: a mailbox archived with
 * `mailbridge archive` (XOAUTH2, the real Dovecot harness), restored into
 * another mailbox and archived again: per folder the same multiset of
 * (SHA-256, INTERNALDATE, flags). A rerun copies nothing; SIGKILLs at random
 * points and a rerun leave every message exactly once, with the state kept
 * and with it deleted before each rerun. Damaged archives and folders that
 * are not archives are reported, not guessed at.
 */
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MailbridgeError } from '../../../src/errors.js';
import { readManifest } from '../../../src/jobs/archive/manifest.js';
import { migrateMailbox } from '../../../src/jobs/migrate/index.js';
import { runCli } from '../../helpers/run-cli.js';
import {
  expected,
  killAtRandomPoints,
  type MigrateTestEnv,
  seedMessages,
  seedWith,
  snapshotOf,
  startCliRun,
  startMigrateTestEnv,
} from './support.js';

const ORIGINAL = 'anna@contoso.example';
const RESTORED = 'bert@contoso.example';
const DAMAGED = 'carl@contoso.example';
const PLANNED = 'dora@contoso.example';
const KILLED = 'emil@contoso.example';
const KILLED_NO_STATE = 'fritz@contoso.example';
// As Exchange names them: the archive's special-use folders come back under the same names.
const FOLDERS = ['INBOX', 'Sent Items', 'Junk Email', 'Lists.dev', 'Kunden/Müller', 'Ünïcödé'];
const IDENTITY = Object.fromEntries(FOLDERS.map((f) => [f, f]));
const MESSAGES = 150;
const KILLS = 3;
const TIMEOUT = 120_000;

interface Summary {
  copied: number;
  alreadyPresent: number;
  skipped: number;
  folders: { source: string; destination: string; skipped: { uid: number; reason: string }[] }[];
}

function summaryOf(stdout: string): Summary {
  return JSON.parse(stdout.trim().split('\n').at(-1) as string) as Summary;
}

/** Per folder of an archived mailbox: sorted `sha256 internalDate flags` (never \Deleted or \Recent). */
async function archived(mailboxDir: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  await readManifest(join(mailboxDir, 'manifest.jsonl'), (r) => {
    const flags = (r.flags ?? []).filter((f) => f !== '\\Deleted' && f !== '\\Recent').sort();
    const lines = out.get(r.folder) ?? [];
    lines.push([r.sha256, r.internalDate, ...flags].join(' '));
    out.set(r.folder, lines);
  });
  for (const lines of out.values()) lines.sort();
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : 1)));
}

describe('migrate --from archive:DIR (restore)', () => {
  let env: MigrateTestEnv;
  let work: string;
  let archiveA: string;

  const archive = async (mailbox: string, out: string) => {
    const result = await runCli(['archive', '--mailbox', mailbox, '--out', out], env.env, {
      timeoutMs: TIMEOUT,
    });
    expect(result.code, result.stderr).toBe(0);
    return join(out, mailbox);
  };
  const restore = (dir: string, mailbox: string, ...more: string[]) =>
    runCli(
      ['migrate', '--from', `archive:${dir}`, '--to', `m365:${mailbox}`, '--json', ...more],
      env.env,
      { timeoutMs: TIMEOUT },
    );

  beforeAll(async () => {
    env = await startMigrateTestEnv([
      ORIGINAL,
      RESTORED,
      DAMAGED,
      PLANNED,
      KILLED,
      KILLED_NO_STATE,
    ]);
    work = await mkdtemp(join(tmpdir(), 'mailbridge-restore-'));
    await seedWith(() => env.m365(ORIGINAL), seedMessages(FOLDERS, MESSAGES, 70_000));
    archiveA = await archive(ORIGINAL, join(work, 'a'));
  }, 300_000);

  afterAll(async () => {
    await env?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('restores every folder with its bytes, dates and flags; archived again, the same; a rerun copies nothing', async () => {
    const first = await restore(archiveA, RESTORED, '--state', join(work, 'state-b'));
    expect(first.code, first.stderr).toBe(0);
    expect(summaryOf(first.stdout)).toMatchObject({ copied: MESSAGES, skipped: 0 });

    const original = await archived(archiveA);
    expect([...original.keys()].sort()).toEqual([...FOLDERS].sort());
    expect(await archived(await archive(RESTORED, join(work, 'b')))).toEqual(original);

    // The rerun in-process: what it copies is the job's; the CLI's exit 0 is seen just above.
    const again = await migrateMailbox({
      from: `archive:${archiveA}`,
      to: `m365:${RESTORED}`,
      toConfig: env.config,
      stateDir: join(work, 'state-b'),
    });
    expect(again).toMatchObject({ ok: true, copied: 0, alreadyPresent: 0, skipped: 0 });
  }, 300_000);

  it('reports a missing and an altered file per message (exit 1) and restores the rest', async () => {
    const copy = join(work, 'damaged');
    await cp(archiveA, copy, { recursive: true });
    const lines: { path: string; folder: string; uid: number }[] = [];
    await readManifest(join(copy, 'manifest.jsonl'), (r) => lines.push(r));
    const [gone, altered] = [lines[3], lines[17]] as [(typeof lines)[0], (typeof lines)[0]];
    await rm(join(copy, gone.path));
    const bytes = await readFile(join(copy, altered.path));
    await writeFile(join(copy, altered.path), Buffer.concat([bytes, Buffer.from('tampered\r\n')]));

    const first = await restore(copy, DAMAGED, '--state', join(work, 'state-c'));
    expect(first.code, first.stderr).toBe(1);
    // The rerun in-process: it skips the same two again (ok false, the CLI's exit 1 above).
    const rerun = await migrateMailbox({
      from: `archive:${copy}`,
      to: `m365:${DAMAGED}`,
      toConfig: env.config,
      stateDir: join(work, 'state-c'),
    });
    expect(rerun.ok).toBe(false);
    for (const [round, summary] of [
      [1, summaryOf(first.stdout)],
      [2, rerun],
    ] as const) {
      expect(summary).toMatchObject({ copied: round === 1 ? MESSAGES - 2 : 0, skipped: 2 });
      const skipped = summary.folders.flatMap((f) =>
        f.skipped.map((s) => ({ folder: f.source, uid: s.uid, reason: s.reason })),
      );
      expect(skipped).toEqual(
        expect.arrayContaining([
          { folder: gone.folder, uid: gone.uid, reason: expect.stringContaining('missing') },
          { folder: altered.folder, uid: altered.uid, reason: expect.stringContaining('altered') },
        ]),
      );
    }
    const restored = await snapshotOf(() => env.m365(DAMAGED), FOLDERS);
    expect([...restored.values()].flat()).toHaveLength(MESSAGES - 2);
  }, 300_000);

  it('plans with --dry-run, and keeps to --folder, --exclude and --map', async () => {
    const options = {
      to: `m365:${PLANNED}`,
      toConfig: env.config,
      stateDir: join(work, 'state-d'),
    };
    const planned = await migrateMailbox({ ...options, from: `archive:${archiveA}`, dryRun: true });
    expect(planned).toMatchObject({ ok: true, copied: MESSAGES, skipped: 0 });
    const untouched = await snapshotOf(() => env.m365(PLANNED));
    expect([...untouched.keys()]).toEqual(['INBOX']);
    expect(untouched.get('INBOX')).toEqual([]);

    const picked = await migrateMailbox({
      ...options,
      from: `archive:${archiveA}`,
      folders: ['Lists.dev', 'Kunden*'],
      exclude: ['Kunden/Müller'],
      map: ['Lists.dev=Listen/dev'],
    });
    expect(picked.folders.map((f) => [f.source, f.destination])).toEqual([
      ['Lists.dev', 'Listen/dev'],
    ]);
    const original = await archived(archiveA);
    const after = await snapshotOf(() => env.m365(PLANNED), ['Listen/dev']);
    expect(after.get('Listen/dev')).toHaveLength(original.get('Lists.dev')?.length ?? -1);
  }, 120_000);

  it('says what to give for a folder that is not one mailbox archive (exit 2), and refuses archive:DIR as destination', async () => {
    const refusal = (from: string, to = `m365:${PLANNED}`) =>
      migrateMailbox({ from, to, toConfig: env.config, fromConfig: env.config }).then(
        () => expect.unreachable('migrated'),
        (error: MailbridgeError) => error,
      );
    const empty = join(work, 'empty');
    await mkdir(empty);
    const none = await refusal(`archive:${empty}`);
    expect(none).toMatchObject({ code: 'MIGRATE_ARCHIVE_INVALID', exitCode: 2 });
    expect(none.message).toContain('manifest.jsonl');

    const root = await refusal(`archive:${join(work, 'a')}`);
    expect(root).toMatchObject({ code: 'MIGRATE_ARCHIVE_INVALID', exitCode: 2 });
    expect(root.remedy).toContain(`archive:${archiveA}`);

    const missing = await refusal(`archive:${join(work, 'no-such-folder')}`);
    expect(missing).toMatchObject({ code: 'MIGRATE_ARCHIVE_INVALID', exitCode: 2 });

    const backwards = await refusal(`m365:${ORIGINAL}`, `archive:${join(work, 'x')}`);
    expect(backwards).toMatchObject({ code: 'MIGRATE_ENDPOINT_UNSUPPORTED', exitCode: 2 });
    expect(backwards.remedy).toContain('mailbridge archive');
  }, 120_000);

  describe('killed at random points', () => {
    async function killAndRerun(mailbox: string, loseState: boolean): Promise<string> {
      const stateDir = join(work, `state-${mailbox}`);
      const { kills, log } = await killAtRandomPoints({
        start: () =>
          startCliRun(
            [
              'migrate',
              '--from',
              `archive:${archiveA}`,
              '--to',
              `m365:${mailbox}`,
              '--state',
              stateDir,
            ],
            env.env,
          ),
        stateDir,
        messages: MESSAGES,
        kills: KILLS,
        loseState,
      });
      expect(kills, log.join('\n')).toBe(KILLS);
      const final = await restore(archiveA, mailbox, '--state', stateDir);
      expect(final.code, `${log.join('\n')}\n${final.stderr}`).toBe(0);
      const summary = summaryOf(final.stdout);
      if (loseState) expect(summary.copied + summary.alreadyPresent).toBe(MESSAGES);
      log.push(`final: copied ${summary.copied}, already there ${summary.alreadyPresent}`);
      expect(await snapshotOf(() => env.m365(mailbox), FOLDERS), log.join('\n')).toEqual(
        expected(await snapshotOf(() => env.m365(ORIGINAL), FOLDERS), IDENTITY),
      );
      return log.join('\n');
    }

    it(`restores every message exactly once after ${KILLS} SIGKILLs and a rerun`, async () => {
      process.stdout.write(`restore kills, state kept:\n${await killAndRerun(KILLED, false)}\n`);
    }, 300_000);

    it(`restores every message exactly once after ${KILLS} SIGKILLs, the state deleted before each rerun`, async () => {
      process.stdout.write(
        `restore kills, state lost:\n${await killAndRerun(KILLED_NO_STATE, true)}\n`,
      );
    }, 300_000);
  });
});
