/**
 * `mailbridge migrate` killed with SIGKILL at random points of one run, in a
 * child process running the CLI as a user would, then run again: every
 * message is at the destination exactly once (SHA-256 multiset per folder,
 * with dates and flags). Then the same with the state folder deleted before
 * every rerun, so only the identity check stands between a rerun and a
 * duplicate.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH, cliEnv } from '../../helpers/run-cli.js';
import { seededRandom } from '../../helpers/seeded-random.js';
import {
  expected,
  type MigrateTestEnv,
  seedMessages,
  seedSource,
  snapshotOf,
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
const MESSAGES = 1_000;
const KILLS = 5;

async function journalLines(stateDir: string): Promise<number> {
  const text = await readFile(join(stateDir, 'journal.jsonl'), 'utf8').catch(() => '');
  return text.split('\n').length - 1;
}

interface Ended {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function startMigrate(env: MigrateTestEnv, mailbox: string, stateDir: string) {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      CLI_PATH,
      'migrate',
      '--from',
      env.sourceUrl,
      '--to',
      `m365:${mailbox}`,
      '--state',
      stateDir,
      '--json',
    ],
    { env: cliEnv(env.env), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const done = new Promise<Ended>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
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

  /**
   * Kills one run after a random number of journal lines plus a few random
   * milliseconds (so the kill lands between an APPEND and its line too),
   * then the next run continues; after `KILLS` kills a run goes to its end.
   */
  async function killAndRerun(mailbox: string, loseState: boolean): Promise<string[]> {
    const seed = Number(process.env.MIGRATE_KILL_SEED ?? Date.now() % 1_000_000);
    const next = seededRandom(seed);
    const stateDir = join(work, mailbox);
    const log = [`seed ${seed}`];
    let kills = 0;
    let done = 0;
    for (let round = 0; round < KILLS * 3 && kills < KILLS; round++) {
      // Spread over the run: each kill comes after up to a further sixth of the messages (with the
      // state deleted, the rerun first writes again the lines of what it finds already there).
      const target = done + 1 + Math.floor(next() * (MESSAGES / (KILLS + 1)));
      const extraMs = Math.floor(next() * 30);
      const run = startMigrate(env, mailbox, stateDir);
      let killed = false;
      const poll = setInterval(async () => {
        if (killed || (await journalLines(stateDir)) < target) return;
        killed = true;
        setTimeout(() => run.child.kill('SIGKILL'), extraMs);
      }, 15);
      const ended = await run.done;
      clearInterval(poll);
      done = await journalLines(stateDir);
      log.push(
        `round ${round}: ${ended.signal ?? `exit ${ended.code}`} at ${target} lines + ${extraMs} ms; journal ${done}`,
      );
      if (ended.signal === 'SIGKILL') kills++;
      else {
        expect(ended.code, `${log.join('\n')}\n${ended.stderr}`).toBe(0);
        break;
      }
      if (loseState) await rm(stateDir, { recursive: true, force: true });
    }
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
