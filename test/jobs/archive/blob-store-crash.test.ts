/**
 * A crash in the middle of a blob upload: the archiving process is killed
 * with SIGKILL while a large message's blocks are going up to Azurite. No
 * half blob may be listed, in the container or in the manifest; the next
 * run completes the archive.
 */
import { createHash } from 'node:crypto';
import type { ContainerClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { folderDirName, mailboxDirName, messagePath } from '../../../src/jobs/archive/paths.js';
import { type Azurite, startAzurite } from '../../helpers/azurite.js';
import { runCliInProcess } from '../../helpers/run-cli-in-process.js';
import {
  type ArchiveTestEnv,
  blobManifestRecords,
  messageWithAttachment,
  plainMessage,
  projectBuild,
  type ServerFolder,
  serverSnapshot,
  startArchiveChild,
  startArchiveTestEnv,
} from './support.js';

const MAILBOX = 'blob-crash@contoso.example';
const CONTAINER = 'crash-archive';
/** 24 MB of attachment: about 33 MB of message, eight or nine 4 MiB blocks. */
const BIG_BYTES = 24_000_000;

let env: ArchiveTestEnv;
let azurite: Azurite;
let container: ContainerClient;
const build = projectBuild();
let inbox: ServerFolder;
let bigUid: number;

beforeAll(async () => {
  [env, azurite] = await Promise.all([
    startArchiveTestEnv([MAILBOX]),
    startAzurite({ inMemory: true }),
  ]);
  container = await azurite.createContainer(CONTAINER);
  const seeder = await env.direct(MAILBOX);
  for (let i = 1; i <= 10; i++) await seeder.append('INBOX', plainMessage(i, 'INBOX', MAILBOX));
  await seeder.append('INBOX', messageWithAttachment(11, MAILBOX, BIG_BYTES));
  for (let i = 12; i <= 21; i++) await seeder.append('INBOX', plainMessage(i, 'INBOX', MAILBOX));
  await seeder.logout();
  inbox = (await serverSnapshot(env, MAILBOX)).get('INBOX') as ServerFolder;
  bigUid = [...inbox.messages].find(([, m]) => m.size > BIG_BYTES)?.[0] as number;
}, 300_000);

afterAll(async () => {
  await env?.close();
  await azurite?.stop();
});

const root = () => `${mailboxDirName(MAILBOX)}/`;

const manifest = () => blobManifestRecords(container, root());

/** Every listed (committed) message blob is the server's exact message; every line names one. */
async function checkInvariants(): Promise<string[]> {
  const listed: string[] = [];
  for await (const item of container.listBlobsFlat({ prefix: root() })) {
    const name = item.name.slice(root().length);
    if (!name.endsWith('.eml')) continue;
    listed.push(name);
    const uid = Number(name.split('/').at(-1)?.replace('.eml', ''));
    const bytes = await container.getBlobClient(item.name).downloadToBuffer();
    expect(createHash('sha256').update(bytes).digest('hex'), name).toBe(
      inbox.messages.get(uid)?.sha256,
    );
  }
  for (const record of await manifest()) expect(listed, record.path).toContain(record.path);
  return listed;
}

describe('a crash during a blob upload', () => {
  it('leaves no half blob, in the container or the manifest, and the next run completes', async () => {
    const url = azurite.url(CONTAINER);
    const childEnv = { ...env.env, AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString };
    const bigPath = messagePath(folderDirName('INBOX'), inbox.uidValidity, bigUid);
    const bigBlob = container.getBlockBlobClient(`${root()}${bigPath}`);

    const first = startArchiveChild(build.dir, childEnv, MAILBOX, url);
    let staged = 0;
    let exited = false;
    void first.done.then(() => {
      exited = true;
    });
    // Killed once some of the big message's blocks are up, before its commit.
    while (!exited) {
      const blocks = await bigBlob.getBlockList('uncommitted').catch(() => undefined);
      staged = blocks?.uncommittedBlocks?.length ?? 0;
      if (staged >= 2) {
        first.kill();
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const killed = await first.done;
    expect(killed.signal, `the run ended before the kill: ${killed.stderr}`).toBe('SIGKILL');
    expect(staged).toBeGreaterThanOrEqual(2);

    // The blocks that went up are not a blob: not listed, not in the manifest.
    expect(await bigBlob.exists()).toBe(false);
    const listed = await checkInvariants();
    expect(listed).not.toContain(bigPath);
    expect((await manifest()).map((r) => r.uid)).not.toContain(bigUid);

    // The next run waits out the dead run's lease, then completes.
    const second = startArchiveChild(build.dir, childEnv, MAILBOX, url);
    const done = await second.done;
    expect(done.code, done.stderr).toBe(0);
    const records = await manifest();
    expect(records.map((r) => r.uid).sort((a, b) => a - b)).toEqual(
      [...inbox.messages.keys()].sort((a, b) => a - b),
    );
    for (const record of records) {
      expect(record.sha256, record.path).toBe(inbox.messages.get(record.uid)?.sha256);
    }
    expect((await checkInvariants()).length).toBe(inbox.messages.size);
    // The archiving runs are child processes; the check needs none.
    const verify = await runCliInProcess(['archive', 'verify', url], childEnv);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  }, 600_000);
});
