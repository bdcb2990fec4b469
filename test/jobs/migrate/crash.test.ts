/**
 * `mailbridge migrate` killed with SIGKILL at random points of one run, in a
 * child process running the CLI as a user would, then run again: every
 * message is at the destination exactly once (SHA-256 multiset per folder,
 * with dates and flags). Then the same with the state folder deleted before
 * every rerun, so only the identity check stands between a rerun and a
 * duplicate.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  expected,
  killAtRandomPoints,
  type MigrateTestEnv,
  seedMessages,
  seedSource,
  snapshotOf,
  startCliRun,
  startMigrateTestEnv,
} from './support.js';

const KEPT_STATE = 'erin@contoso.example';
const LOST_STATE = 'frank@contoso.example';
const FOLDERS = ['INBOX', 'Sent', 'Lists.dev', 'Kunden/Müller', 'Ünïcödé'];
const MAPPED: Record<string, string> = {
  INBOX: 'INBOX',
  Sent: 'Sent Items',
  'Lists.dev': 'Lists.dev',
  'Kunden/Müller': 'Kunden/Müller',
  Ünïcödé: 'Ünïcödé',
};
const MESSAGES = 450;
const KILLS = 5;

function startMigrate(env: MigrateTestEnv, mailbox: string, stateDir: string) {
  return startCliRun(
    ['migrate', '--from', env.sourceUrl, '--to', `m365:${mailbox}`, '--state', stateDir, '--json'],
    env.env,
  );
}

describe('migrate killed at random points', { tags: ['soak'] }, () => {
  let env: MigrateTestEnv;
  let work: string;
  let source: Map<string, string[]>;

  beforeAll(async () => {
    env = await startMigrateTestEnv([KEPT_STATE, LOST_STATE]);
    work = await mkdtemp(join(tmpdir(), 'mailbridge-migrate-crash-'));
    await seedSource(env, seedMessages(FOLDERS, MESSAGES, 40_000));
    source = await snapshotOf(env.source, FOLDERS);
  }, 300_000);

  afterAll(async () => {
    await env?.close();
    await rm(work, { recursive: true, force: true });
  });

  /** `KILLS` runs killed at random points, then a run to the end. */
  async function killAndRerun(mailbox: string, loseState: boolean): Promise<string[]> {
    const stateDir = join(work, mailbox);
    const { kills, log } = await killAtRandomPoints({
      start: () => startMigrate(env, mailbox, stateDir),
      stateDir,
      messages: MESSAGES,
      kills: KILLS,
      loseState,
    });
    expect(kills, log.join('\n')).toBe(KILLS);

    const final = startMigrate(env, mailbox, stateDir);
    const ended = await final.done;
    expect(ended.code, `${log.join('\n')}\n${ended.stderr}`).toBe(0);
    const summary = JSON.parse(ended.stdout.trim().split('\n').at(-1) as string) as {
      copied: number;
      alreadyPresent: number;
      skipped: number;
    };
    log.push(`final: copied ${summary.copied}, already there ${summary.alreadyPresent}`);
    expect(summary.skipped).toBe(0);
    if (loseState) expect(summary.copied + summary.alreadyPresent).toBe(MESSAGES);

    expect(
      await snapshotOf(() => env.m365(mailbox), Object.values(MAPPED)),
      log.join('\n'),
    ).toEqual(expected(source, MAPPED));
    return log;
  }

  it(`copies every message exactly once after ${KILLS} SIGKILLs and a rerun`, async () => {
    const log = await killAndRerun(KEPT_STATE, false);
    process.stdout.write(`migrate kills, state kept:\n${log.join('\n')}\n`);
  }, 600_000);

  it(`copies every message exactly once after ${KILLS} SIGKILLs with the state folder deleted before each rerun`, async () => {
    const log = await killAndRerun(LOST_STATE, true);
    process.stdout.write(`migrate kills, state lost:\n${log.join('\n')}\n`);
  }, 600_000);
});
