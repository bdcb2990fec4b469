/**
 * `migrate --mailboxes --queue`, `worker` and `jobs` end to end: the built
 * CLI against a real Redis (password only in MAILBRIDGE_REDIS_URL) and
 * Dovecot, password mailboxes of "another provider" into Microsoft 365-like
 * ones, two worker processes, one of them killed mid-run.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pairStateDir } from '../../../src/jobs/migrate/mailbox-list-run.js';
import { MigrationState } from '../../../src/jobs/migrate/state.js';
import { expected, seedMessages, seedWith, snapshotOf } from '../migrate/support.js';
import {
  type QueueTestEnv,
  REDIS_PASSWORD,
  startQueueTestEnv,
  stopWorkerHoldingJobs,
  type Worker,
  waitUntil,
} from './support.js';

const PASSWORD = 'the old provider master password';
const PAIRS = 6;
const SOURCES = Array.from({ length: PAIRS }, (_, i) => `old${i}@oldhost.example`);
const DESTS = Array.from({ length: PAIRS }, (_, i) => `new${i}@contoso.example`);
const FOLDERS = ['INBOX', 'Projects'];
const SAME = { INBOX: 'INBOX', Projects: 'Projects' };
/**
 * 60 to 110 messages a pair: long enough to be killed in the middle of one
 * (each pair takes seconds, the poll 200 ms), and more would only cost the
 * APPENDs that seed and copy them.
 */
const sizes = SOURCES.map((_, i) => 60 + 10 * i);
const WITH_PASSWORD = { MAILBRIDGE_FROM_PASSWORD: PASSWORD };

let env: QueueTestEnv;
let work: string;
const onSource = new Map<string, Map<string, string[]>>();

const sourceUrl = (user: string) =>
  `imaps://${encodeURIComponent(user)}@127.0.0.1:${env.servers.imap.port}`;
const openSource = (user: string) => async () => {
  const client = new ImapFlow({
    host: '127.0.0.1',
    port: env.servers.imap.port,
    secure: true,
    auth: { user, pass: PASSWORD },
    logger: false,
  });
  await client.connect();
  return client;
};

beforeAll(async () => {
  env = await startQueueTestEnv(DESTS, {
    passwordUsers: Object.fromEntries(SOURCES.map((u) => [u, PASSWORD])),
  });
  work = await mkdtemp(join(tmpdir(), 'mailbridge-queue-migrate-'));
  await Promise.all(
    SOURCES.map(async (user, i) => {
      await seedWith(openSource(user), seedMessages(FOLDERS, sizes[i] as number, i * 1000));
      onSource.set(user, await snapshotOf(openSource(user), FOLDERS));
    }),
  );
}, 300_000);

afterEach(async () => {
  await env?.killWorkers();
}, 60_000);

afterAll(async () => {
  await env?.close();
  if (work) await rm(work, { recursive: true, force: true });
}, 120_000);

async function listFile(name: string, indexes: number[]): Promise<string> {
  const file = join(work, name);
  const lines = indexes.map((i) => `${sourceUrl(SOURCES[i] as string)},m365:${DESTS[i]}`);
  await writeFile(file, `source,destination\n${lines.join('\n')}\n`);
  return file;
}

async function enqueue(file: string, state: string, extra: string[] = []): Promise<string> {
  const result = await env.cli([
    'migrate',
    '--mailboxes',
    file,
    '--state',
    state,
    '--queue',
    env.queueUrl,
    '--json',
    ...extra,
  ]);
  expect(result.code, result.stderr).toBe(0);
  return (JSON.parse(result.stdout) as { runId: string }).runId;
}

interface Status {
  kind: string;
  counts: Record<'waiting' | 'retrying' | 'active' | 'done' | 'failed', number>;
  mailboxes: {
    mailbox: string;
    from: string;
    to: string;
    state: string;
    attempts: number;
    worker?: string;
    progress?: { messages: number };
    result?: { copied: number; alreadyPresent: number; skipped: number; worker: string };
    error?: { code: string; message: string };
  }[];
}

async function status(runId: string): Promise<Status & { code: number | null }> {
  const result = await env.cli([
    'jobs',
    'status',
    '--queue',
    env.queueUrl,
    '--run',
    runId,
    '--json',
  ]);
  if (result.code !== 0 && result.code !== 1) throw new Error(result.stderr);
  return { ...(JSON.parse(result.stdout) as Status), code: result.code };
}

/** The same read by this process: where the command's output is not what a test asserts. */
async function statusInProcess(runId: string): Promise<Status> {
  return (await env.runStatus(runId)) as Status;
}

async function expectExactlyOnce(indexes: number[]): Promise<void> {
  for (const i of indexes) {
    const dest = await snapshotOf(() => env.direct(DESTS[i] as string), FOLDERS);
    expect(dest, DESTS[i]).toEqual(
      expected(onSource.get(SOURCES[i] as string) as Map<string, string[]>, SAME),
    );
  }
}

async function stopAll(workers: Worker[]): Promise<void> {
  for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGTERM');
  const codes = await Promise.all(workers.map((w) => w.exited));
  for (const [i, code] of codes.entries()) expect(code, workers[i]?.output()).toBe(0);
}

const workerArgs = (config: string) => [
  '--queue',
  env.queueUrl,
  '--config',
  config,
  '--concurrency',
  '2',
];

describe('migrate --mailboxes --queue with two workers', () => {
  it('SIGKILL of one worker mid-run: the other finishes its jobs, every message exactly once at each destination, `jobs status` shows the migrate jobs done', async () => {
    const all = SOURCES.map((_, i) => i);
    const config = await env.configFile({ lockDuration: '4s' });
    const runId = await enqueue(await listFile('pairs.csv', all), join(work, 'state'));
    const workers = [0, 1].map(() => env.startWorker(workerArgs(config), WITH_PASSWORD));
    const { victim, held } = await stopWorkerHoldingJobs(
      workers,
      async () => (await env.runStatus(runId)).mailboxes,
      180_000,
    );
    const victimName = `:${victim.child.pid}`;
    const survivor = workers.find((w) => w !== victim) as Worker;
    victim.child.kill('SIGKILL');
    await waitUntil(
      async () => (await env.runStatus(runId)).counts.done === PAIRS,
      300_000,
      'the run',
    );
    const final = await status(runId);
    expect(final.code).toBe(0);
    expect(final.kind).toBe('migrate');
    expect(final.counts).toEqual({ waiting: 0, retrying: 0, active: 0, done: PAIRS, failed: 0 });
    for (const m of final.mailboxes) {
      expect(m.mailbox).toBe(`${m.from} → ${m.to}`);
      expect(m.result?.skipped).toBe(0);
      const i = DESTS.indexOf(m.to.replace(/^m365:/, ''));
      // What the first attempt copied before it died is found again, not copied twice.
      expect((m.result?.copied ?? 0) + (m.result?.alreadyPresent ?? 0)).toBeLessThanOrEqual(
        sizes[i] as number,
      );
      if (held.includes(m.mailbox))
        expect(m.result?.worker).not.toMatch(new RegExp(`${victimName}$`));
    }
    await stopAll([survivor]);
    await expectExactlyOnce(all);

    // Passwords stay with the workers: no job in Redis holds one.
    const redis = new Redis(`redis://:${REDIS_PASSWORD}@127.0.0.1:${env.redis.port}/0`);
    try {
      const keys = await redis.keys('mailbridge:migrate:*');
      let seen = 0;
      for (const key of keys) {
        if ((await redis.type(key)) !== 'hash') continue;
        const text = JSON.stringify(await redis.hgetall(key));
        seen++;
        expect(text).not.toContain(PASSWORD);
      }
      expect(seen).toBeGreaterThanOrEqual(PAIRS);
    } finally {
      redis.disconnect();
    }
  }, 600_000);

  it('a worker without the password fails the job at once with QUEUE_WORKER_PASSWORD_MISSING; `jobs retry --failed` on a worker with it finishes the pair', async () => {
    const config = await env.configFile({ lockDuration: '4s' });
    const runId = await enqueue(await listFile('one.csv', [0]), join(work, 'state-retry'));
    const bare = env.startWorker(workerArgs(config));
    await waitUntil(
      async () => (await env.runStatus(runId)).counts.failed === 1,
      60_000,
      'the refusal',
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n${bare.output()}`);
    });
    const failed = await status(runId);
    expect(failed.code).toBe(1);
    expect(failed.mailboxes[0]).toMatchObject({
      state: 'failed',
      attempts: 1,
      error: { code: 'QUEUE_WORKER_PASSWORD_MISSING' },
    });
    expect(failed.mailboxes[0]?.error?.message).toMatch(/never travel through the queue/);
    const text = await env.cli(['jobs', 'status', '--queue', env.queueUrl, '--run', runId]);
    expect(text.stdout).toMatch(/failed +.* QUEUE_WORKER_PASSWORD_MISSING /);
    await stopAll([bare]);

    const retried = await env.cli([
      'jobs',
      'retry',
      '--queue',
      env.queueUrl,
      '--run',
      runId,
      '--failed',
    ]);
    expect(retried.code, retried.stderr).toBe(0);
    expect(retried.stdout).toMatch(/1 job\(s\) of run/);
    const worker = env.startWorker(workerArgs(config), WITH_PASSWORD);
    await waitUntil(
      async () => (await env.runStatus(runId)).counts.done === 1,
      120_000,
      'the retry',
    );
    const done = await statusInProcess(runId);
    // After the first test the messages are there already: found by identity, not copied again.
    const result = done.mailboxes[0]?.result;
    expect(result?.skipped).toBe(0);
    expect((result?.copied ?? 0) + (result?.alreadyPresent ?? 0)).toBe(sizes[0]);
    const text2 = await env.cli(['jobs', 'status', '--queue', env.queueUrl, '--run', runId]);
    expect(text2.stdout).toMatch(
      /done +imaps:\/\/.* → m365:new0@contoso\.example +\d+ copied \(.*\), \d+ already there, 0 skipped/,
    );
    await stopAll([worker]);
    await expectExactlyOnce([0]);
  }, 300_000);

  it('SIGTERM: the running pairs stop between two messages and go back to the queue; another worker finishes them exactly', async () => {
    const config = await env.configFile({ lockDuration: '4s' });
    const runId = await enqueue(await listFile('term.csv', [4, 5]), join(work, 'state-term'));
    const first = env.startWorker(workerArgs(config), WITH_PASSWORD);
    // Both pairs were copied by the first test, so a job's work here is finding
    // its messages at the destination: progress counts no copies, and a quiet
    // machine may finish it between two polls. A job taken is the signal.
    await waitUntil(
      async () => {
        const now = await env.runStatus(runId);
        return now.counts.active > 0 || now.counts.done > 0;
      },
      180_000,
      'a job taken by the worker',
    );
    first.child.kill('SIGTERM');
    expect(await first.exited, first.output()).toBe(0);
    const after = await statusInProcess(runId);
    expect(after.counts.active).toBe(0);
    expect(after.counts.failed).toBe(0);
    if (after.counts.done < 2) expect(first.output()).toMatch(/[1-9]\d* returned to the queue/);
    const second = env.startWorker(workerArgs(config), WITH_PASSWORD);
    await waitUntil(async () => (await env.runStatus(runId)).counts.done === 2, 180_000, 'the run');
    await stopAll([second]);
    await expectExactlyOnce([4, 5]);
  }, 420_000);

  it('a pair whose state another run still holds is retried later, not failed: it completes once that run lets go, exactly once', async () => {
    // One attempt: a refusal that used one up would fail the pair for good at once.
    const config = await env.configFile({ lockDuration: '2s', attempts: 1 });
    const stateRoot = join(work, 'state-held');
    const runId = await enqueue(await listFile('held.csv', [3]), stateRoot, ['--config', config]);
    const [job] = (await env.runStatus(runId)).mailboxes;
    const pair = { from: job?.from as string, to: job?.to as string };
    // The run that lost its queue lock but still works on the pair: it holds the pair's state.
    const holder = await MigrationState.open(pairStateDir(pair, stateRoot), pair);
    const worker = env.startWorker(workerArgs(config), WITH_PASSWORD);
    let released = false;
    try {
      await waitUntil(
        async () =>
          ['retrying', 'failed'].includes((await env.runStatus(runId)).mailboxes[0]?.state ?? ''),
        60_000,
        'the worker to meet the held state',
      );
      // Not now rather than never: it waits its turn, its attempts untouched, and does nothing meanwhile.
      const refused = await statusInProcess(runId);
      expect(refused.mailboxes[0]?.state, worker.output()).toBe('retrying');
      expect(refused.mailboxes[0]?.attempts).toBe(0);
      await new Promise((r) => setTimeout(r, 3_000));
      expect((await env.runStatus(runId)).counts).toMatchObject({ failed: 0, done: 0 });
      await holder.close();
      released = true;
    } finally {
      if (!released) await holder.close();
    }
    await waitUntil(async () => (await env.runStatus(runId)).counts.done === 1, 60_000, 'the pair');
    const done = await statusInProcess(runId);
    expect(done.counts).toEqual({ waiting: 0, retrying: 0, active: 0, done: 1, failed: 0 });
    expect(done.mailboxes[0]?.result?.skipped).toBe(0);
    await stopAll([worker]);
    await expectExactlyOnce([3]);
  }, 180_000);

  it('a bad line in the list: exit 2 naming it, nothing enqueued', async () => {
    const file = join(work, 'bad.csv');
    await writeFile(
      file,
      `${sourceUrl(SOURCES[0] as string)},m365:${DESTS[0]}\nm365:only-one@contoso.example\n`,
    );
    const result = await env.cli(['migrate', '--mailboxes', file, '--queue', env.queueUrl]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/MIGRATE_MAILBOX_LIST_INVALID/);
    expect(result.stderr).toMatch(/bad\.csv line 2: /);
    expect(result.stdout).toBe('');
  }, 60_000);
});
