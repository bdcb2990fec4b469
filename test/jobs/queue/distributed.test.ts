/**
 * `archive --queue`, `worker` and `jobs` end to end: the built CLI against a
 * real Redis (with a password, given only through MAILBRIDGE_REDIS_URL) and
 * Dovecot, several worker processes at once.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  archiveFolderHashes,
  type QueueTestEnv,
  seedMailbox,
  serverFolderHashes,
  startQueueTestEnv,
  type Worker,
  waitUntil,
} from './support.js';

const MAILBOXES = Number(process.env.QUEUE_TEST_MAILBOXES ?? 60);
const mailboxes = Array.from({ length: MAILBOXES }, (_, i) => `user${i}@contoso.example`);
/** 100 to 500 messages per mailbox, in INBOX and two folders. */
const sizes = mailboxes.map((_, i) => 100 + ((i * 137) % 401));

let env: QueueTestEnv;
let listFile: string;
let work: string;
const onServer = new Map<string, Map<string, { count: number; sha256: string }>>();
const total = sizes.reduce((a, b) => a + b, 0);

beforeAll(async () => {
  env = await startQueueTestEnv(mailboxes);
  work = await mkdtemp(join(tmpdir(), 'mailbridge-queue-'));
  const started = Date.now();
  await Promise.all(
    [0, 1, 2, 3].map(async (lane) => {
      for (let i = lane; i < mailboxes.length; i += 4) {
        const mailbox = mailboxes[i] as string;
        const client = await env.direct(mailbox);
        const n = sizes[i] as number;
        const third = Math.floor(n / 3);
        await seedMailbox(client, mailbox, {
          INBOX: n - 2 * third,
          'Archive/2024': third,
          Sent: third,
        });
        onServer.set(mailbox, await serverFolderHashes(client));
        await client.logout();
      }
    }),
  );
  console.log(
    `seeded ${mailboxes.length} mailboxes, ${total} messages in ${Date.now() - started} ms`,
  );
  listFile = join(work, 'mailboxes.txt');
  const { writeFile } = await import('node:fs/promises');
  await writeFile(listFile, `# the tenant\n${mailboxes.join('\n')}\n`);
}, 900_000);

afterAll(async () => {
  await env?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

async function enqueue(out: string, extra: string[] = []): Promise<string> {
  const result = await env.cli([
    'archive',
    '--mailboxes',
    listFile,
    '--out',
    out,
    '--queue',
    env.queueUrl,
    '--json',
    ...extra,
  ]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  const parsed = JSON.parse(result.stdout) as { runId: string; jobs: number };
  expect(parsed.jobs).toBe(mailboxes.length);
  return parsed.runId;
}

interface Status {
  counts: Record<string, number>;
  mailboxes: {
    mailbox: string;
    state: string;
    worker?: string;
    result?: { messagesTotal: number };
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

async function expectExact(out: string): Promise<void> {
  for (const mailbox of mailboxes) {
    expect(await archiveFolderHashes(out, mailbox), mailbox).toEqual(onServer.get(mailbox));
  }
}

async function stopAll(workers: Worker[]): Promise<void> {
  for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGTERM');
  const codes = await Promise.all(workers.map((w) => w.exited));
  for (const [i, code] of codes.entries()) expect(code, workers[i]?.output()).toBe(0);
}

describe('archive --queue with three workers', () => {
  it('archives every mailbox exactly, and `jobs status` shows all done', async () => {
    const out = join(work, 'all');
    const config = await env.configFile({ lockDuration: '5s' });
    const runId = await enqueue(out);
    const started = Date.now();
    const workers = [0, 1, 2].map(() =>
      env.startWorker(['--queue', env.queueUrl, '--config', config, '--concurrency', '4']),
    );
    await waitUntil(
      async () => (await status(runId)).counts.done === mailboxes.length,
      600_000,
      'the run',
    );
    const seconds = (Date.now() - started) / 1000;
    console.log(
      `${mailboxes.length} mailboxes, ${total} messages, 3 workers: ${seconds.toFixed(1)} s`,
    );
    const final = await status(runId);
    expect(final.counts).toEqual({
      waiting: 0,
      retrying: 0,
      active: 0,
      done: mailboxes.length,
      failed: 0,
    });
    // Every worker took part.
    if (mailboxes.length >= 12)
      expect(
        new Set(final.mailboxes.map((m) => (m as { result?: { worker: string } }).result?.worker))
          .size,
      ).toBe(3);
    await stopAll(workers);
    await expectExact(out);
  }, 900_000);
});
