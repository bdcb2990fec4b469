/**
 * `--sync-flags`: on a rerun, flag changes at the source on messages copied
 * before come across with the new messages; \Deleted never does.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../helpers/run-cli.js';
import {
  expected,
  type MigrateTestEnv,
  seedMessages,
  seedSource,
  snapshotOf,
  startMigrateTestEnv,
} from './support.js';

const DEST = 'ivy@contoso.example';
const FOLDERS = ['INBOX', 'Projekte/Ä', 'x.y'];
const IDENTITY = Object.fromEntries(FOLDERS.map((f) => [f, f]));
/** Copied by the first run: 30 in INBOX, whose UIDs 1 to 25 get their flags changed. */
const COPIED_FIRST = 90;

describe('migrate --sync-flags', () => {
  let env: MigrateTestEnv;
  let work: string;
  const run = async (extra: string[] = []) => {
    const result = await runCli(
      [
        'migrate',
        '--from',
        env.sourceUrl,
        '--to',
        `m365:${DEST}`,
        '--state',
        join(work, 'state'),
        '--json',
        ...extra,
      ],
      env.env,
      { timeoutMs: 120_000 },
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    return JSON.parse(result.stdout.trim().split('\n').at(-1) as string) as {
      copied: number;
      flagsUpdated: number;
    };
  };

  beforeAll(async () => {
    env = await startMigrateTestEnv([DEST]);
    work = await mkdtemp(join(tmpdir(), 'mailbridge-migrate-sync-flags-'));
    await seedSource(env, seedMessages(FOLDERS, COPIED_FIRST, 70_000));
  }, 120_000);

  afterAll(async () => {
    await env?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('brings flag changes on copied messages across with 50 new ones, never \\Deleted', async () => {
    expect(await run()).toMatchObject({ copied: COPIED_FIRST, flagsUpdated: 0 });

    const source = await env.source();
    try {
      await source.mailboxOpen('INBOX');
      await source.messageFlagsAdd('1:10', ['\\Seen', '$Label1'], { uid: true });
      await source.messageFlagsRemove('11:20', ['\\Seen', '\\Flagged', '\\Answered'], {
        uid: true,
      });
      // Marked for deletion at the source: the copy must stay as it is.
      await source.messageFlagsAdd('21:25', ['\\Deleted'], { uid: true });
      await source.mailboxOpen('x.y');
      await source.messageFlagsSet('1:5', ['\\Flagged', '\\Draft'], { uid: true });
    } finally {
      await source.logout();
    }
    await seedSource(env, seedMessages(FOLDERS, 50, 71_000));

    // Without the flag, only the new messages come.
    const plain = await run(['--dry-run']);
    expect(plain).toMatchObject({ copied: 50, flagsUpdated: 0 });
    const planned = await run(['--dry-run', '--sync-flags']);
    expect(planned.copied).toBe(50);
    expect(planned.flagsUpdated).toBeGreaterThan(10);

    const synced = await run(['--sync-flags']);
    expect(synced).toMatchObject({ copied: 50, flagsUpdated: planned.flagsUpdated });
    expect(await snapshotOf(() => env.m365(DEST), FOLDERS)).toEqual(
      expected(await snapshotOf(env.source, FOLDERS), IDENTITY),
    );
    expect(await run(['--sync-flags'])).toMatchObject({ copied: 0, flagsUpdated: 0 });
  }, 300_000);
});
