import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MailbridgeError } from '../../../src/errors.js';
import { readQueueSettings } from '../../../src/jobs/queue/settings.js';
import { runCli } from '../../helpers/run-cli.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mailbridge-queue-settings-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function refusal(promise: Promise<unknown>): Promise<MailbridgeError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(MailbridgeError);
  return error as MailbridgeError;
}

describe('the queue settings', () => {
  it('take the password of the same host and port from MAILBRIDGE_REDIS_URL', async () => {
    const settings = await readQueueSettings({
      flag: 'redis://redis.internal:6379/2',
      env: { MAILBRIDGE_REDIS_URL: 'redis://app:s3cret@redis.internal:6379/0' },
    });
    expect(settings.url).toBe('redis://app:s3cret@redis.internal:6379/2');
    expect(settings.shownUrl).toBe('redis://redis.internal:6379/2');
  });

  it('do not hand a password to another host', async () => {
    const settings = await readQueueSettings({
      flag: 'redis://other.internal:6379/0',
      env: { MAILBRIDGE_REDIS_URL: 'redis://:s3cret@redis.internal:6379/0' },
    });
    expect(settings.url).toBe('redis://other.internal:6379/0');
  });

  it('use MAILBRIDGE_REDIS_URL, then queue.url, without --queue', async () => {
    const file = join(dir, 'queue.json');
    await writeFile(
      file,
      JSON.stringify({
        queue: {
          url: 'rediss://:pw@cache.internal:6380/1',
          connectionsPerMailbox: 3,
          lockDuration: '10s',
          lockWait: '20m',
        },
      }),
    );
    const fromFile = await readQueueSettings({ configFile: file, env: {} });
    expect(fromFile).toMatchObject({
      url: 'rediss://:pw@cache.internal:6380/1',
      shownUrl: 'rediss://cache.internal:6380/1',
      connectionsPerMailbox: 3,
      lockDurationMs: 10_000,
      lockWaitMs: 1_200_000,
      concurrency: 4,
      attempts: 5,
    });
    const fromEnv = await readQueueSettings({
      configFile: file,
      env: { MAILBRIDGE_REDIS_URL: 'redis://:x@env.internal:6379/0' },
    });
    expect(fromEnv.shownUrl).toBe('redis://env.internal:6379/0');
  });

  it('refuse a password in --queue without repeating it', async () => {
    const error = await refusal(
      readQueueSettings({ flag: 'redis://:hunter2@redis.internal:6379/0', env: {} }),
    );
    expect(error.code).toBe('QUEUE_PASSWORD_IN_ARGV');
    expect(error.exitCode).toBe(2);
    expect(`${error.message} ${error.remedy}`).not.toContain('hunter2');
    expect(error.remedy).toContain('MAILBRIDGE_REDIS_URL');
  });

  it('refuse what is not a Redis URL, and no URL at all', async () => {
    for (const flag of ['http://redis.internal:6379', 'redis.internal:6379', 'redis://h:1/db']) {
      expect((await refusal(readQueueSettings({ flag, env: {} }))).code).toBe('QUEUE_URL_INVALID');
    }
    expect((await refusal(readQueueSettings({ env: {} }))).code).toBe('QUEUE_URL_MISSING');
  });

  it("take examples/tenant-scale/mailbridge.yaml's queue section as it is", async () => {
    const file = new URL('../../../examples/tenant-scale/mailbridge.yaml', import.meta.url)
      .pathname;
    const settings = await readQueueSettings({
      configFile: file,
      flag: 'rediss://redis.internal:6380/0',
      env: { MAILBRIDGE_REDIS_URL: 'rediss://:pw@redis.internal:6380/0' },
    });
    expect(settings).toMatchObject({
      url: 'rediss://:pw@redis.internal:6380/0',
      concurrency: 8,
      connectionsPerMailbox: 8,
      lockDurationMs: 30_000,
      lockWaitMs: 3_600_000,
    });
  });

  it('refuse a queue section with wrong values, each named', async () => {
    const file = join(dir, 'bad.json');
    await writeFile(
      file,
      JSON.stringify({ queue: { connectionsPerMailbox: 40, lockDuraton: '5s' } }),
    );
    const error = await refusal(readQueueSettings({ configFile: file, env: {} }));
    expect(error.code).toBe('QUEUE_OPTION_INVALID');
    expect(error.message).toContain('queue.connectionsPerMailbox');
    expect(error.message).toContain('lockDuration');
  });
});

describe('the CLI', () => {
  it('refuses `archive --queue` with a password in argv, exit 2, before reading anything', async () => {
    const list = join(dir, 'list.txt');
    await writeFile(list, 'a@contoso.example\n');
    const result = await runCli([
      'archive',
      '--mailboxes',
      list,
      '--out',
      dir,
      '--queue',
      'redis://:hunter2@127.0.0.1:1/0',
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('QUEUE_PASSWORD_IN_ARGV');
    expect(result.stderr).not.toContain('hunter2');
  });

  it('says QUEUE_UNREACHABLE, exit 4, when Redis does not answer', async () => {
    const result = await runCli(['jobs', 'status', '--queue', 'redis://127.0.0.1:1/0', '--json']);
    expect(result.code).toBe(4);
    expect(JSON.parse(result.stdout).error.code).toBe('QUEUE_UNREACHABLE');
  });
});
