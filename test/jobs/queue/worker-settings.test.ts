/**
 * A worker started without the app's settings (a machine that only runs
 * imaps:// migrations): it runs, the imaps:// pair is migrated, and each job
 * that needs the settings (an archive, a pair with an m365: side) fails at
 * once with QUEUE_WORKER_SETTINGS_MISSING instead of the worker stopping.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARCHIVE_QUEUE, MIGRATE_QUEUE } from '../../../src/jobs/queue/job-data.js';
import { KEY_PREFIX } from '../../../src/jobs/queue/redis.js';
import { seedMessages, seedWith } from '../migrate/support.js';
import { type QueueTestEnv, startQueueTestEnv, waitUntil } from './support.js';

const PASSWORD = 'the one provider password';
const SOURCE = 'old@oldhost.example';
const TARGET = 'moved@oldhost.example';
const M365 = 'new@contoso.example';
/** A blob container: the job carries the URL as given (the worker fails before using it). */
const BLOB_OUT = 'azblob://devstoreaccount1/archive/nightly';
const PASSWORDS = { MAILBRIDGE_FROM_PASSWORD: PASSWORD, MAILBRIDGE_TO_PASSWORD: PASSWORD };

let env: QueueTestEnv;
let work: string;

beforeAll(async () => {
  env = await startQueueTestEnv([M365], {
    passwordUsers: { [SOURCE]: PASSWORD, [TARGET]: PASSWORD },
  });
  work = await mkdtemp(join(tmpdir(), 'mailbridge-queue-settings-'));
  const { ImapFlow } = await import('imapflow');
  await seedWith(
    async () => {
      const client = new ImapFlow({
        host: '127.0.0.1',
        port: env.servers.imap.port,
        secure: true,
        auth: { user: SOURCE, pass: PASSWORD },
        logger: false,
      });
      await client.connect();
      return client;
    },
    seedMessages(['INBOX'], 5),
  );
}, 120_000);

afterAll(async () => {
  await env?.close();
  if (work) await rm(work, { recursive: true, force: true });
}, 60_000);

interface Status {
  outDir: string;
  counts: Record<string, number>;
  mailboxes: { mailbox: string; state: string; attempts: number; error?: { code: string } }[];
}

async function enqueued(args: string[]): Promise<string> {
  const result = await env.cli([...args, '--queue', env.queueUrl, '--json']);
  expect(result.code, result.stderr).toBe(0);
  return (JSON.parse(result.stdout) as { runId: string }).runId;
}

describe('a worker without the app settings', () => {
  it('migrates imaps:// pairs and fails each job that needs the settings with QUEUE_WORKER_SETTINGS_MISSING, still running', async () => {
    const imap = (user: string) =>
      `imaps://${encodeURIComponent(user)}@127.0.0.1:${env.servers.imap.port}`;
    const pairs = join(work, 'pairs.csv');
    await writeFile(pairs, `${imap(SOURCE)},${imap(TARGET)}\n${imap(SOURCE)},m365:${M365}\n`);
    const mailboxes = join(work, 'mailboxes.txt');
    await writeFile(mailboxes, `${M365}\n`);
    const [, archiveRun] = await Promise.all([
      enqueued(['migrate', '--mailboxes', pairs, '--state', join(work, 'state')]),
      enqueued(['archive', '--mailboxes', mailboxes, '--out', BLOB_OUT]),
    ]);

    const worker = env.startWorker(['--queue', env.queueUrl], PASSWORDS, {
      withoutAppSettings: true,
    });
    // Straight from Redis while waiting: a `jobs status` per poll is a Node start each.
    const redis = new Redis(env.env.MAILBRIDGE_REDIS_URL as string, { maxRetriesPerRequest: null });
    const queues = [ARCHIVE_QUEUE, MIGRATE_QUEUE].map(
      (name) => new Queue(name, { connection: redis, prefix: KEY_PREFIX }),
    );
    try {
      await waitUntil(
        async () => {
          let settled = 0;
          for (const queue of queues) {
            const counts = await queue.getJobCounts('completed', 'failed');
            settled += (counts.completed ?? 0) + (counts.failed ?? 0);
          }
          return settled === 3;
        },
        90_000,
        'the three jobs',
      ).catch((error: Error) => {
        throw new Error(`${error.message}\n${worker.output()}`);
      });
      const migrate = await queues[1]?.getJobs(['completed', 'failed']);
      const byTarget = (to: string) => migrate?.find((j) => j.data.to === to);
      expect(await byTarget(imap(TARGET))?.getState()).toBe('completed');
      const refused = byTarget(`m365:${M365}`);
      expect(await refused?.getState()).toBe('failed');
      expect(refused?.attemptsMade).toBe(1);
      expect(refused?.failedReason).toMatch(/^QUEUE_WORKER_SETTINGS_MISSING: /);
    } finally {
      await Promise.all(queues.map((q) => q.close()));
      redis.disconnect();
    }
    const shown = await env.cli([
      'jobs',
      'status',
      '--queue',
      env.queueUrl,
      '--run',
      archiveRun,
      '--json',
    ]);
    expect(shown.code, shown.stderr).toBe(1);
    const archive = JSON.parse(shown.stdout) as Status;
    expect(archive).toMatchObject({ outDir: BLOB_OUT });
    expect(archive.mailboxes[0]).toMatchObject({
      state: 'failed',
      attempts: 1,
      error: { code: 'QUEUE_WORKER_SETTINGS_MISSING' },
    });
    expect(JSON.stringify(archive)).toMatch(
      /needs the app's settings, and this worker started without them/,
    );

    expect(worker.child.exitCode).toBeNull();
    expect(worker.output()).toMatch(/no app settings/);
    worker.child.kill('SIGTERM');
    expect(await worker.exited, worker.output()).toBe(0);
  }, 180_000);

  it('still refuses to start when settings are given wrongly, or its --config cannot be read (exit 2)', async () => {
    const wrong = join(work, 'wrong.json');
    // No app settings, and one setting wrong: a mistake, not a password-only worker.
    await writeFile(wrong, JSON.stringify({ imap: { port: 'abc' } }));
    for (const [config, expected] of [
      [wrong, /CONFIG_INVALID[\s\S]*imap\.port/],
      [join(work, 'no-such.json'), /CONFIG_FILE_UNREADABLE/],
    ] as const) {
      const worker = env.startWorker(['--queue', env.queueUrl, '--config', config], PASSWORDS, {
        withoutAppSettings: true,
      });
      expect(await worker.exited, worker.output()).toBe(2);
      expect(worker.output()).toMatch(expected);
      expect(worker.output()).not.toMatch(/no app settings/);
    }
  }, 60_000);
});
