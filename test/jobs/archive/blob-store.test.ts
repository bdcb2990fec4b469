/**
 * `archive --out` a blob container: a mailbox on the Dovecot harness
 * archived through the CLI into Azurite (HTTPS, test CA), compared with the
 * server folder by folder; a rerun; `archive verify` against the container;
 * and the failures a user meets first (key, endpoint, URL). The first archive
 * runs as a child process, as a user runs it; the other runs go through the
 * CLI's entry in this process (runCliInProcess), each sparing a Node start and
 * the storage SDK's loading.
 */
import { createHash } from 'node:crypto';
import type { ContainerClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ManifestRecord, readManifestChunks } from '../../../src/jobs/archive/manifest.js';
import { folderDirName, mailboxDirName } from '../../../src/jobs/archive/paths.js';
import { AZURITE_KEY, type Azurite, startAzurite } from '../../helpers/azurite.js';
import { runCli } from '../../helpers/run-cli.js';
import { runCliInProcess } from '../../helpers/run-cli-in-process.js';
import {
  type ArchiveTestEnv,
  messageWithAttachment,
  plainMessage,
  type ServerFolder,
  serverSnapshot,
  startArchiveTestEnv,
} from './support.js';

const MAILBOX = 'blob@contoso.example';
const FOLDERS = ['INBOX', 'Projects/Alpha', 'Ünïcödé'];
const PER_FOLDER = 20;
const CONTAINER = 'mail-archive';
const PREFIX = 'nightly/2026';
const CLI_TIMEOUT = 180_000;

let env: ArchiveTestEnv;
let azurite: Azurite;
let container: ContainerClient;
let server: Map<string, ServerFolder>;

beforeAll(async () => {
  [env, azurite] = await Promise.all([
    startArchiveTestEnv([MAILBOX]),
    startAzurite({ inMemory: true }),
  ]);
  container = await azurite.createContainer(CONTAINER);
  const seeder = await env.direct(MAILBOX);
  let n = 0;
  for (const folder of FOLDERS) {
    if (folder !== 'INBOX') await seeder.mailboxCreate(folder);
    for (let i = 0; i < PER_FOLDER; i++)
      await seeder.append(folder, plainMessage(++n, folder, MAILBOX));
  }
  // 6 MB: streamed in pieces, uploaded as two blocks.
  await seeder.append('INBOX', messageWithAttachment(++n, MAILBOX, 4_500_000));
  await seeder.logout();
  server = await serverSnapshot(env, MAILBOX);
}, 180_000);

afterAll(async () => {
  await env?.close();
  await azurite?.stop();
});

function cliEnv(connectionString = azurite.connectionString): Record<string, string> {
  return { ...env.env, AZURE_STORAGE_CONNECTION_STRING: connectionString };
}

const mailboxRoot = () => `${PREFIX}/${mailboxDirName(MAILBOX)}/`;

async function manifest(): Promise<ManifestRecord[]> {
  const records: ManifestRecord[] = [];
  const download = await container.getBlobClient(`${mailboxRoot()}manifest.jsonl`).download();
  await readManifestChunks(download.readableStreamBody as AsyncIterable<Buffer>, (r) =>
    records.push(r),
  );
  return records;
}

/** One digest per folder over its messages' UIDs and SHA-256s, in UID order. */
function folderDigest(messages: Iterable<[number, string]>): string {
  const hash = createHash('sha256');
  for (const [uid, sha] of [...messages].sort((a, b) => a[0] - b[0]))
    hash.update(`${uid} ${sha}\n`);
  return hash.digest('hex');
}

describe('archive --out a blob container (Azurite)', () => {
  it('stores every message as a blob, SHA-256 per folder equal to the server', async () => {
    const run = await runCli(
      ['archive', '--mailbox', MAILBOX, '--out', azurite.url(CONTAINER, PREFIX), '--json'],
      cliEnv(),
      { timeoutMs: CLI_TIMEOUT },
    );
    expect(run.code, run.stderr).toBe(0);
    // The key never reaches the output.
    expect(run.stdout + run.stderr).not.toContain(AZURITE_KEY);
    const summary = JSON.parse(run.stdout) as {
      mailboxes: { messagesNew: number; directory: string }[];
    };
    const total = [...server.values()].reduce((t, f) => t + f.messages.size, 0);
    expect(summary.mailboxes[0]?.messagesNew).toBe(total);
    expect(summary.mailboxes[0]?.directory).toBe(
      `${azurite.endpoint}/${CONTAINER}/${PREFIX}/${mailboxDirName(MAILBOX)}`,
    );

    const records = await manifest();
    expect(records).toHaveLength(total);
    for (const [folder, expected] of server) {
      const archived = new Map<number, string>();
      for (const record of records.filter((r) => r.folder === folder)) {
        expect(record.uidValidity).toBe(expected.uidValidity);
        expect(record.path.startsWith(`${folderDirName(folder)}/`)).toBe(true);
        const blob = container.getBlobClient(`${mailboxRoot()}${record.path}`);
        const bytes = await blob.downloadToBuffer();
        const sha256 = createHash('sha256').update(bytes).digest('hex');
        expect(sha256, record.path).toBe(record.sha256);
        const properties = await blob.getProperties();
        expect(properties.metadata?.sha256).toBe(sha256);
        expect(Buffer.from(properties.contentMD5 ?? []).toString('hex')).toBe(
          createHash('md5').update(bytes).digest('hex'),
        );
        archived.set(record.uid, sha256);
      }
      const want = [...expected.messages].map(([uid, m]) => [uid, m.sha256] as [number, string]);
      expect(folderDigest(archived), folder).toBe(folderDigest(want));
    }
  }, 300_000);

  it('fetches nothing on a rerun', async () => {
    const run = await runCliInProcess(
      ['archive', '--mailbox', MAILBOX, '--out', azurite.url(CONTAINER, PREFIX), '--json'],
      cliEnv(),
    );
    expect(run.code, run.stderr).toBe(0);
    const summary = JSON.parse(run.stdout) as { mailboxes: { messagesNew: number }[] };
    expect(summary.mailboxes[0]?.messagesNew).toBe(0);
    const total = [...server.values()].reduce((t, f) => t + f.messages.size, 0);
    expect(await manifest()).toHaveLength(total);
  }, 300_000);

  it('`archive verify` checks the container and catches an altered blob', async () => {
    const url = azurite.url(CONTAINER, PREFIX);
    const clean = await runCliInProcess(['archive', 'verify', url], cliEnv());
    expect(clean.code, clean.stdout + clean.stderr).toBe(0);
    expect(clean.stdout).toMatch(/all match their manifests/);

    const victim = (await manifest())[3] as ManifestRecord;
    const altered = Buffer.from('Subject: not what was archived\r\n\r\nchanged\r\n');
    await container
      .getBlockBlobClient(`${mailboxRoot()}${victim.path}`)
      .upload(altered, altered.length);
    const extra = Buffer.from('stray');
    await container.getBlockBlobClient(`${mailboxRoot()}stray.txt`).upload(extra, extra.length);
    const report = await runCliInProcess(['archive', 'verify', url, '--json'], cliEnv());
    expect(report.code, report.stderr).toBe(1);
    const json = JSON.parse(report.stdout) as {
      altered: { path: string; actualSha256: string }[];
      extra: string[];
      missing: string[];
    };
    expect(json.altered.map((a) => a.path)).toEqual([`${mailboxDirName(MAILBOX)}/${victim.path}`]);
    expect(json.altered[0]?.actualSha256).toBe(createHash('sha256').update(altered).digest('hex'));
    expect(json.extra).toEqual([`${mailboxDirName(MAILBOX)}/stray.txt`]);
    expect(json.missing).toEqual([]);
    await container.getBlobClient(`${mailboxRoot()}stray.txt`).delete();
  }, 300_000);

  it('a wrong account key: ARCHIVE_STORE_AUTH_FAILED, exit 3, the key not shown', async () => {
    const wrongKey = Buffer.alloc(64, 7).toString('base64');
    const run = await runCliInProcess(
      ['archive', '--mailbox', MAILBOX, '--out', azurite.url(CONTAINER, 'other')],
      cliEnv(azurite.connectionString.replace(AZURITE_KEY, wrongKey)),
    );
    expect(run.code, run.stdout + run.stderr).toBe(3);
    expect(run.stdout + run.stderr).toMatch(/ARCHIVE_STORE_AUTH_FAILED/);
    expect(run.stdout + run.stderr).not.toContain(wrongKey);
  }, 300_000);

  it('an endpoint that does not answer: ARCHIVE_STORE_UNREACHABLE, exit 4', async () => {
    const closed = azurite.connectionString.replace(`:${azurite.port}/`, ':1/');
    const run = await runCliInProcess(
      [
        'archive',
        '--mailbox',
        MAILBOX,
        '--out',
        azurite.url(CONTAINER).replace(`:${azurite.port}/`, ':1/'),
      ],
      cliEnv(closed),
    );
    expect(run.code, run.stdout + run.stderr).toBe(4);
    expect(run.stdout + run.stderr).toMatch(/ARCHIVE_STORE_UNREACHABLE/);
  }, 300_000);

  it('a container that does not exist: ARCHIVE_STORE_NOT_FOUND, exit 2', async () => {
    const run = await runCliInProcess(
      ['archive', '--mailbox', MAILBOX, '--out', azurite.url('no-such-container')],
      cliEnv(),
    );
    expect(run.code, run.stdout + run.stderr).toBe(2);
    expect(run.stdout + run.stderr).toMatch(/ARCHIVE_STORE_NOT_FOUND/);
  }, 300_000);

  it.each([
    ['azblob://devstoreaccount1/Bad_Name', /container name/],
    [`https://127.0.0.1:1/devstoreaccount1/c0ntainer?sv=2024&sig=SECRET`, /query \(a SAS\?\)/],
    ['http://archive.example/devstoreaccount1/container', /plain http/],
  ])(
    'a bad URL (%s): ARCHIVE_STORE_URL_INVALID, exit 2, nothing shown of a SAS',
    async (url, why) => {
      const run = await runCliInProcess(['archive', '--mailbox', MAILBOX, '--out', url], cliEnv());
      expect(run.code, run.stdout + run.stderr).toBe(2);
      expect(run.stderr).toMatch(/ARCHIVE_STORE_URL_INVALID/);
      expect(run.stderr).toMatch(why);
      expect(run.stderr).not.toContain('SECRET');
    },
  );

  it('a connection string for another endpoint: ARCHIVE_STORE_CREDENTIALS_INVALID, exit 2', async () => {
    const other = azurite.connectionString.replace('127.0.0.1', 'localhost');
    const run = await runCliInProcess(
      ['archive', '--mailbox', MAILBOX, '--out', azurite.url(CONTAINER, PREFIX)],
      cliEnv(other),
    );
    expect(run.code, run.stdout + run.stderr).toBe(2);
    expect(run.stdout + run.stderr).toMatch(/ARCHIVE_STORE_CREDENTIALS_INVALID/);
    expect(run.stdout + run.stderr).not.toContain(AZURITE_KEY);
  }, 300_000);
});
