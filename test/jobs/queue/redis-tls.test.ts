/**
 * `rediss://` with the certificate of a private CA, verification on: a real
 * Redis 7 (Debian's, `tls-port`) whose certificate is signed by a CA of its
 * own, which the test CA of NODE_EXTRA_CA_CERTS is not. `queue.caFile` names
 * it (relative to the config file); NODE_EXTRA_CA_CERTS naming it works as
 * well; without either, the command and the worker stop with
 * TLS_CERTIFICATE_UNTRUSTED (exit 4) instead of connecting or retrying for ever.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestCa, issueServerCertificate } from '../../helpers/pki.js';
import { type RedisServer, startRedisServer } from '../../helpers/redis-server.js';
import { CLI_PATH, type CliResult, cliEnv, runCli } from '../../helpers/run-cli.js';

const PASSWORD = 'tls-queue-secret';

let redis: RedisServer;
let dir: string;
let queueUrl: string;
let env: Record<string, string>;
let withCaFile: string;
let withoutCaFile: string;
let caPath: string;

beforeAll(async () => {
  const ca = createTestCa('mailbridge Redis private CA');
  const server = issueServerCertificate(ca);
  redis = await startRedisServer({
    password: PASSWORD,
    tls: {
      certificatePem: server.certificatePem,
      privateKeyPem: server.keys.privateKeyPem,
      caPem: ca.certificatePem,
    },
  });
  dir = await mkdtemp(join(tmpdir(), 'mailbridge-redis-tls-'));
  caPath = join(dir, 'redis-ca.pem');
  await writeFile(caPath, ca.certificatePem);
  queueUrl = redis.tlsUrl as string;
  env = { MAILBRIDGE_REDIS_URL: queueUrl.replace('rediss://', `rediss://:${PASSWORD}@`) };
  withCaFile = join(dir, 'with-ca.json');
  await writeFile(withCaFile, JSON.stringify({ queue: { caFile: 'redis-ca.pem' } }));
  withoutCaFile = join(dir, 'without-ca.json');
  await writeFile(withoutCaFile, JSON.stringify({ queue: { lockDuration: '5s' } }));
}, 60_000);

afterAll(async () => {
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** `mailbridge worker …` until its output matches `until` (then SIGTERM) or it exits by itself. */
function workerUntil(args: string[], until: RegExp): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_PATH, 'worker', ...args], {
      env: cliEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the worker did not get there in time:\n${stderr}`));
    }, 60_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (until.test(stderr)) child.kill('SIGTERM');
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('a rediss:// queue behind a private CA', () => {
  it('queue.caFile: enqueue, a worker takes the job over TLS, `jobs status` shows it', async () => {
    const list = join(dir, 'mailboxes.txt');
    await writeFile(list, 'tls@contoso.example\n');
    const queued = await runCli(
      [
        'archive',
        '--mailboxes',
        list,
        '--out',
        join(dir, 'out'),
        '--queue',
        queueUrl,
        '--config',
        withCaFile,
        '--json',
      ],
      env,
    );
    expect(queued.code, queued.stderr).toBe(0);
    const { runId } = JSON.parse(queued.stdout) as { runId: string };
    // A worker without app settings takes the job and fails it at once: proof it reached Redis.
    const worker = await workerUntil(['--queue', queueUrl, '--config', withCaFile], /job failed/);
    expect(worker.stderr).toMatch(/QUEUE_WORKER_SETTINGS_MISSING/);
    expect(worker.code, worker.stderr).toBe(0);
    const status = await runCli(
      ['jobs', 'status', '--queue', queueUrl, '--config', withCaFile, '--run', runId],
      env,
    );
    expect(status.code, status.stderr).toBe(1);
    expect(status.stdout).toMatch(/failed +tls@contoso\.example .*QUEUE_WORKER_SETTINGS_MISSING/);
  }, 120_000);

  it('without the CA: the command and the worker stop with TLS_CERTIFICATE_UNTRUSTED (exit 4); NODE_EXTRA_CA_CERTS naming the CA also works', async () => {
    const [command, worker, viaNodeExtra] = await Promise.all([
      runCli(['jobs', 'status', '--queue', queueUrl, '--config', withoutCaFile], env),
      workerUntil(['--queue', queueUrl, '--config', withoutCaFile], /queue: worker started/),
      runCli(['jobs', 'status', '--queue', queueUrl, '--json'], {
        ...env,
        NODE_EXTRA_CA_CERTS: caPath,
      }),
    ]);
    for (const refused of [command, worker]) {
      expect(refused.code, refused.stderr).toBe(4);
      expect(refused.stderr).toMatch(/TLS_CERTIFICATE_UNTRUSTED/);
      expect(refused.stderr).toMatch(/could not be verified \([A-Z_]+\)/);
      expect(refused.stderr).toMatch(/queue\.caFile/);
      expect(refused.stderr).not.toContain(PASSWORD);
    }
    // Exit 1: the first test's job failed for good (no app settings), as it shows.
    expect(viaNodeExtra.code, viaNodeExtra.stderr).toBe(1);
    expect(JSON.parse(viaNodeExtra.stdout)).toMatchObject({ counts: { failed: 1 } });
  }, 120_000);
});
