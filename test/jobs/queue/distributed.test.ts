/**
 * `archive --queue`, `worker` and `jobs` end to end: the built CLI against a
 * real Redis (with a password, given only through MAILBRIDGE_REDIS_URL),
 * Dovecot and Azurite, several worker processes at once. The first test is
 * the issue's: every mailbox archived by 3 workers into a blob container,
 * SHA-256 per folder of the blobs equal to the server's.
 *
 * The mailboxes are written straight into Dovecot's Maildirs and read back
 * over IMAP once; the tests archive them each into a destination of their
 * own, and wait on `jobs status` read in this process (the CLI's only for
 * what the tests assert): both were most of the file's CPU before.
 *
 * QUEUE_TEST_MAILBOXES=60 is the figure (the suite seeds 12; six of
 * the smaller ones go into Azurite, and the SIGKILL, SIGTERM and Redis tests
 * take 6, 2 and 6 of them, in-process enqueues and status reads: the CLI's
 * `archive --queue` and `jobs status` are each run by the first test). Measured on
 * 2 shared cores at load average 10-21: seeding and reading back 60
 * mailboxes (17,113 messages) 32 s, where APPENDs took 220 s; the 3-worker
 * archive of all of them into Azurite 1,735 s (to a local directory it was
 * 134 s), of which Azurite itself used 589 s of CPU, 34 ms a blob (for the
 * 3,024 blobs of 12 mailboxes it was 18 ms a blob): its cost per blob grows
 * with the blobs it holds, and it, not the workers (35-38 s of CPU each at
 * 36 of the 60 mailboxes), sets the pace. Every folder matched; reading
 * the 17,113 blobs back took another 1,260 s, the whole test 50 min.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ContainerClient } from '@azure/storage-blob';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mailboxDirName } from '../../../src/jobs/archive/paths.js';
import { openArchiveStore } from '../../../src/jobs/archive/store/open.js';
import { type SeedMailbox, seedMailboxes } from '../../../src/sandbox/seed-mail.js';
import { AZURITE_ACCOUNT, type Azurite, startAzurite } from '../../helpers/azurite.js';
import {
  archiveFolderHashes,
  blobFolderHashes,
  bodiesFetched,
  type QueueTestEnv,
  serverFolderHashes,
  sessionsNow,
  startQueueTestEnv,
  stopWorkerHoldingJobs,
  type Worker,
  waitUntil,
} from './support.js';

const MAILBOXES = Number(process.env.QUEUE_TEST_MAILBOXES ?? 12);
const mailboxes = Array.from({ length: MAILBOXES }, (_, i) => `user${i}@contoso.example`);
/** 100 to 500 messages per mailbox, in INBOX and two folders. */
const sizes = mailboxes.map((_, i) => 100 + ((i * 137) % 401));
/** Time limits grow with the tenant. */
const SCALE = Math.max(1, MAILBOXES / 12);
const CONTAINER = 'tenant-archive';
const PREFIX = 'nightly/';

let env: QueueTestEnv;
let azurite: Azurite;
let container: ContainerClient;
let listFile: string;
let work: string;
const onServer = new Map<string, Map<string, { count: number; sha256: string }>>();
const total = sizes.reduce((a, b) => a + b, 0);
/**
 * Into Azurite: every mailbox when QUEUE_TEST_MAILBOXES names the tenant's
 * size, else the first six. Azurite spends 18 ms of CPU or more on a blob,
 * and the whole twelve's 3,000 blobs up and down again made this the
 * suite's slowest file.
 */
const intoBlobs = process.env.QUEUE_TEST_MAILBOXES ? mailboxes : pick([0, 1, 3, 4, 6, 9]);
/**
 * The tenant's mailboxes at these indexes. The suite's tests take the smaller
 * ones (100-247 messages, 944 in all; the twelve hold 3,024): each still
 * spans several FETCHes of 100, and what they show needs work in flight, not
 * thousands of messages.
 */
function pick(indexes: number[]): string[] {
  return indexes.map((i) => mailboxes[i % mailboxes.length] as string);
}
/** Small mailboxes for the tests of one job: a held archive lock. */
const small = ['held0@contoso.example', 'held1@contoso.example'];
const SMALL = { INBOX: 3, Sent: 2 };

beforeAll(async () => {
  [env, azurite] = await Promise.all([
    startQueueTestEnv([...mailboxes, ...small]),
    startAzurite({ inMemory: true }),
  ]);
  container = await azurite.createContainer(CONTAINER);
  work = await mkdtemp(join(tmpdir(), 'mailbridge-queue-'));
  const started = Date.now();
  // Straight into Dovecot's Maildirs: APPENDs of thousands of messages cost most of this file's CPU.
  seedMailboxes(
    env.servers.mailDir,
    mailboxes
      .map((address, i): SeedMailbox => {
        const n = sizes[i] as number;
        const third = Math.floor(n / 3);
        return { address, folders: { INBOX: n - 2 * third, 'Archive/2024': third, Sent: third } };
      })
      .concat(small.map((address) => ({ address, folders: SMALL }))),
  );
  // What the server serves (Dovecot gives the messages their UIDs here) is what the archives must hold.
  await Promise.all(
    [0, 1, 2, 3].map(async (lane) => {
      const all = [...mailboxes, ...small];
      for (let i = lane; i < all.length; i += 4) {
        const mailbox = all[i] as string;
        const client = await env.direct(mailbox);
        onServer.set(mailbox, await serverFolderHashes(client));
        await client.logout();
      }
    }),
  );
  console.log(
    `seeded ${mailboxes.length} mailboxes, ${total} messages in ${Date.now() - started} ms`,
  );
  listFile = join(work, 'mailboxes.txt');
  await writeFile(listFile, `# the tenant\n${mailboxes.join('\n')}\n`);
}, 900_000);

afterEach(async () => {
  await env?.killWorkers();
}, 60_000);

afterAll(async () => {
  await Promise.all([env?.close(), azurite?.stop()]);
  if (work) await rm(work, { recursive: true, force: true });
}, 120_000);

async function enqueue(out: string, list = mailboxes): Promise<string> {
  const file = list === mailboxes ? listFile : join(work, `list-${list.length}-${Date.now()}.txt`);
  if (file !== listFile) await writeFile(file, `${list.join('\n')}\n`);
  const result = await env.cli([
    'archive',
    '--mailboxes',
    file,
    '--out',
    out,
    '--queue',
    env.queueUrl,
    '--json',
  ]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  const parsed = JSON.parse(result.stdout) as { runId: string; jobs: number };
  expect(parsed.jobs).toBe(list.length);
  return parsed.runId;
}

interface Status {
  counts: Record<'waiting' | 'retrying' | 'active' | 'done' | 'failed', number>;
  mailboxes: {
    mailbox: string;
    state: string;
    attempts: number;
    worker?: string;
    progress?: { messages: number };
    result?: { messagesTotal: number; worker: string };
  }[];
}

async function status(runId: string): Promise<Status> {
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
  return JSON.parse(result.stdout) as Status;
}

async function expectExact(out: string, list = mailboxes): Promise<void> {
  for (const mailbox of list) {
    expect(await archiveFolderHashes(out, mailbox), mailbox).toEqual(onServer.get(mailbox));
  }
}

async function stopAll(workers: Worker[]): Promise<void> {
  for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGTERM');
  const codes = await Promise.all(workers.map((w) => w.exited));
  for (const [i, code] of codes.entries()) expect(code, workers[i]?.output()).toBe(0);
}

describe('archive --queue with three workers', () => {
  it(
    'archives every mailbox exactly into a blob container (Azurite), and `jobs status` shows all done',
    async () => {
      const out = `azblob://${AZURITE_ACCOUNT}/${CONTAINER}/${PREFIX}`;
      const config = await env.configFile({ lockDuration: '5s' });
      const runId = await enqueue(out, intoBlobs);
      const started = Date.now();
      const workers = [0, 1, 2].map(() =>
        env.startWorker(['--queue', env.queueUrl, '--config', config, '--concurrency', '4'], {
          AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString,
        }),
      );
      await waitUntil(
        async () => (await env.runStatus(runId)).counts.done === intoBlobs.length,
        600_000 * SCALE,
        'the run',
      ).catch((error: Error) => {
        throw new Error(`${error.message}\n${workers.map((w) => w.output()).join('\n---\n')}`);
      });
      const seconds = (Date.now() - started) / 1000;
      console.log(
        `${intoBlobs.length} mailboxes, ${messagesOf(intoBlobs)} messages, 3 workers into Azurite: ${seconds.toFixed(1)} s; Azurite's CPU ${await azuriteCpuSeconds()} s`,
      );
      const final = await status(runId);
      expect(final.counts).toEqual({
        waiting: 0,
        retrying: 0,
        active: 0,
        done: intoBlobs.length,
        failed: 0,
      });
      // Every worker took part.
      if (intoBlobs.length >= 12)
        expect(
          new Set(final.mailboxes.map((m) => (m as { result?: { worker: string } }).result?.worker))
            .size,
        ).toBe(3);
      await stopAll(workers);
      for (const mailbox of intoBlobs) {
        expect(await blobFolderHashes(container, PREFIX, mailbox), mailbox).toEqual(
          onServer.get(mailbox),
        );
      }
    },
    1_200_000 * SCALE,
  );
});

/** Azurite's CPU time so far: utime and stime of /proc/PID/stat, in ticks of 1/100 s. */
async function azuriteCpuSeconds(): Promise<string> {
  const stat = await readFile(`/proc/${azurite.pid}/stat`, 'utf8').catch(() => '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / 100).toFixed(1);
}

/** The size of `list`'s mailboxes together. */
function messagesOf(list: readonly string[]): number {
  return list.reduce((sum, m) => sum + (sizes[mailboxes.indexOf(m)] as number), 0);
}

function workerArgs(config: string, concurrency = 4): string[] {
  return ['--queue', env.queueUrl, '--config', config, '--concurrency', String(concurrency)];
}

describe('workers that stop', () => {
  it('SIGKILL of a worker holding jobs: the others finish them, nothing missing, refetches bounded by what was in flight', async () => {
    const list = pick([0, 1, 3, 4, 6, 9]);
    const out = join(work, 'killed');
    const config = await env.configFile({ lockDuration: '4s' });
    const before = await bodiesFetched(env.servers);
    const runId = await env.enqueueArchive(out, list, 5);
    const workers = [0, 1, 2].map(() => env.startWorker(workerArgs(config)));
    const { victim, held } = await stopWorkerHoldingJobs(
      workers,
      async () => (await env.runStatus(runId)).mailboxes,
      120_000,
    );
    const victimName = `:${victim.child.pid}`;
    const others = workers.filter((w) => w !== victim);
    victim.child.kill('SIGKILL');
    await waitUntil(
      async () => (await env.runStatus(runId)).counts.done === list.length,
      300_000,
      'the run',
    );
    const final = await env.runStatus(runId);
    expect(final.counts.failed).toBe(0);
    // What it held when it died was finished by the others (it may have finished others before).
    for (const m of final.mailboxes.filter((m) => held.includes(m.mailbox)))
      expect(m.result?.worker).not.toMatch(new RegExp(`${victimName}$`));
    await stopAll(others);
    await expectExact(out, list);
    const fetched = (await bodiesFetched(env.servers)) - before;
    const refetched = fetched - messagesOf(list);
    console.log(
      `SIGKILL: victim held ${held.length} job(s); ${fetched} bodies fetched for ${messagesOf(list)} messages (${refetched} again)`,
    );
    // In flight at most: 4 jobs × one FETCH of up to 100 messages each.
    expect(refetched).toBeGreaterThanOrEqual(0);
    expect(refetched).toBeLessThanOrEqual(4 * 100);
  }, 600_000);

  it('SIGTERM: current messages recorded, jobs back in the queue unharmed, finished by another worker', async () => {
    // The two largest but one (374 and 384 messages): the job seen with progress is still running.
    const list = pick([2, 5]);
    const out = join(work, 'terminated');
    const config = await env.configFile({ lockDuration: '4s' });
    const runId = await env.enqueueArchive(out, list, 5);
    const first = env.startWorker(workerArgs(config, 4));
    // Its own job with progress: then its SIGTERM handler is in place, and it has messages to record.
    await waitUntil(
      async () =>
        (await env.runStatus(runId)).mailboxes.some(
          (m) => m.worker?.endsWith(`:${first.child.pid}`) && (m.progress?.messages ?? 0) > 0,
        ),
      120_000,
      'a job with progress',
    );
    first.child.kill('SIGTERM');
    expect(await first.exited, first.output()).toBe(0);
    expect(first.output()).toMatch(/\d+ returned to the queue/);
    const after = await env.runStatus(runId);
    expect(after.counts.active).toBe(0);
    expect(after.counts.failed).toBe(0);
    expect(after.counts.retrying).toBe(0);
    expect(after.counts.waiting).toBeGreaterThan(0);
    const second = env.startWorker(workerArgs(config, 4));
    await waitUntil(
      async () => (await env.runStatus(runId)).counts.done === list.length,
      300_000,
      'the run',
    );
    await stopAll([second]);
    await expectExact(out, list);
  }, 600_000);
});

describe('Redis restarted mid-run', () => {
  it('loses no job: the run completes, every mailbox exact', async () => {
    const list = pick([0, 1, 3, 4, 6, 9]);
    const out = join(work, 'redis-restart');
    const config = await env.configFile({ lockDuration: '10s' });
    const runId = await env.enqueueArchive(out, list, 5);
    // One worker, three at a time: when Redis goes, jobs are active, waiting and done.
    const workers = [env.startWorker(workerArgs(config, 3))];
    await waitUntil(
      async () => (await env.runStatus(runId)).counts.done >= 2,
      300_000,
      'two mailboxes done',
    );
    await env.redis.restart({ kill: true, downMs: 2_000 });
    await waitUntil(
      async () => (await env.runStatus(runId)).counts.done === list.length,
      300_000,
      'the run',
    );
    expect((await env.runStatus(runId)).counts.failed).toBe(0);
    await stopAll(workers);
    await expectExact(out, list);
  }, 600_000);
});

describe('the per-mailbox connection budget', () => {
  it('holds across 3 workers × concurrency 4 on one mailbox: Dovecot never sees more sessions', async () => {
    const budget = 2;
    const mailbox = mailboxes[0] as string;
    const config = await env.configFile({ lockDuration: '5s', connectionsPerMailbox: budget });
    // Six runs of the same mailbox into six archives: six jobs that want it at once.
    const runs: string[] = [];
    for (let i = 0; i < 6; i++)
      runs.push(await env.enqueueArchive(join(work, `budget-${i}`), [mailbox], 5));
    let most = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const n = (await sessionsNow(env.servers)).get(mailbox) ?? 0;
        most = Math.max(most, n);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const workers = [0, 1, 2].map(() => env.startWorker(workerArgs(config, 4)));
    for (const runId of runs) {
      await waitUntil(
        async () => (await env.runStatus(runId)).counts.done === 1,
        300_000,
        `run ${runId}`,
      );
    }
    sampling = false;
    await sampler;
    await stopAll(workers);
    console.log(`budget ${budget}: at most ${most} Dovecot sessions for ${mailbox}`);
    expect(most).toBeLessThanOrEqual(budget);
    expect(most).toBeGreaterThan(0);
    for (let i = 0; i < 6; i++) await expectExact(join(work, `budget-${i}`), [mailbox]);
  }, 600_000);
});

describe('an archive job whose output another run holds (ARCHIVE_LOCKED)', () => {
  it('is deferred, not failed, while that run writes, and completes once it lets go, every message fetched once', async () => {
    const mailbox = small[0] as string;
    const out = join(work, 'held');
    // One attempt: a refusal that used one up would fail the job for good at once.
    const config = await env.configFile({ lockDuration: '1s', attempts: 1, concurrency: 1 });
    // The run that lost its queue lock but still writes: this live process holds the archive's lock.
    const holder = await openArchiveStore(out, mailbox);
    let released = false;
    const before = await bodiesFetched(env.servers);
    try {
      const runId = await env.enqueueArchive(out, [mailbox], 1);
      const worker = await env.startInProcessWorker(config);
      const deferrals = () => worker.logged.filter((l) => l.message === 'queue: job deferred');
      // Deferred again and again while the lock is held: waiting, not failing.
      await waitUntil(() => deferrals().length >= 2, 30_000, 'two deferrals');
      const waiting = await env.runStatus(runId);
      expect(waiting.counts).toMatchObject({ retrying: 1, failed: 0, done: 0 });
      expect(waiting.mailboxes[0]?.attempts).toBe(0);
      expect(deferrals()[0]?.fields).toMatchObject({ code: 'ARCHIVE_LOCKED', retryInMs: 1_000 });
      await holder.close();
      released = true;
      await waitUntil(
        async () => (await env.runStatus(runId)).counts.done === 1,
        30_000,
        'the job',
      );
      expect((await env.runStatus(runId)).counts).toEqual({
        waiting: 0,
        retrying: 0,
        active: 0,
        done: 1,
        failed: 0,
      });
      const summary = await worker.stop();
      expect(summary).toMatchObject({ completed: 1, failed: 0 });
    } finally {
      if (!released) await holder.close();
    }
    await expectExact(out, [mailbox]);
    expect((await bodiesFetched(env.servers)) - before).toBe(SMALL.INBOX + SMALL.Sent);
  }, 120_000);

  it('fails with ARCHIVE_LOCKED and its remedy once it has waited queue.lockWait (a lock left on another machine)', async () => {
    const mailbox = small[1] as string;
    const out = join(work, 'held-elsewhere');
    const config = await env.configFile({
      lockDuration: '1s',
      lockWait: '3s',
      attempts: 3,
      concurrency: 1,
    });
    // A run on a machine that is gone: its pid cannot be checked, so its lock is never taken over.
    const dir = join(out, mailboxDirName(mailbox));
    await mkdir(dir, { recursive: true });
    const startedAt = new Date().toISOString();
    await writeFile(
      join(dir, '.lock'),
      `${JSON.stringify({ pid: 4242, hostname: 'gone.example', startedAt })}\n`,
    );
    const before = await bodiesFetched(env.servers);
    const runId = await env.enqueueArchive(out, [mailbox], 3);
    const worker = await env.startInProcessWorker(config);
    await waitUntil(
      async () => (await env.runStatus(runId)).counts.failed === 1,
      30_000,
      'the failure',
    );
    const failed = await env.runStatus(runId);
    const deferred = worker.logged.filter((l) => l.message === 'queue: job deferred').length;
    expect(deferred).toBeGreaterThanOrEqual(2);
    // For good, at once: another attempt would only wait again.
    expect(failed.mailboxes[0]).toMatchObject({ state: 'failed', attempts: 1 });
    const error = failed.mailboxes[0]?.error;
    expect(error?.code).toBe('ARCHIVE_LOCKED');
    expect(error?.message).toContain('pid 4242 on gone.example');
    expect(error?.message).toMatch(/delete the \.lock file/);
    expect(error?.message).toMatch(/Still held after [3-9] s of waiting: queue\.lockWait is 3 s/);
    expect(await worker.stop()).toMatchObject({ completed: 0, failed: 1 });
    expect((await bodiesFetched(env.servers)) - before).toBe(0);
  }, 120_000);
});
