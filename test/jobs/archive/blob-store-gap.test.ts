/**
 * Commits into a blob container run several at once, so a crash can leave a
 * message committed while an earlier one of its folder is not. The next run
 * must not record the later one as an orphan: that would move the folder's
 * checkpoint past the missing message, which would then never be archived.
 *
 * The state such a crash leaves is made by hand from a complete archive: the
 * manifest cut back to its first 3 lines, and the 6th message's blob
 * removed. The 4th and 5th are recorded (their chain reaches the manifest);
 * the 7th and later are fetched again, and nothing is missing or extra.
 */
import { createHash } from 'node:crypto';
import type { ContainerClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManifestRecord } from '../../../src/jobs/archive/manifest.js';
import { mailboxDirName } from '../../../src/jobs/archive/paths.js';
import { type Azurite, startAzurite } from '../../helpers/azurite.js';
import { runCli } from '../../helpers/run-cli.js';
import {
  type ArchiveTestEnv,
  blobManifestRecords,
  plainMessage,
  type ServerFolder,
  serverSnapshot,
  startArchiveTestEnv,
} from './support.js';

const MAILBOX = 'blob-gap@contoso.example';
const CONTAINER = 'gap-archive';
const MESSAGES = 12;
const CLI_TIMEOUT = 180_000;

let env: ArchiveTestEnv;
let azurite: Azurite;
let container: ContainerClient;
let inbox: ServerFolder;

beforeAll(async () => {
  [env, azurite] = await Promise.all([startArchiveTestEnv([MAILBOX]), startAzurite()]);
  container = await azurite.createContainer(CONTAINER);
  const seeder = await env.direct(MAILBOX);
  for (let i = 1; i <= MESSAGES; i++) {
    await seeder.append('INBOX', plainMessage(i, 'INBOX', MAILBOX));
  }
  await seeder.logout();
  inbox = (await serverSnapshot(env, MAILBOX)).get('INBOX') as ServerFolder;
}, 180_000);

afterAll(async () => {
  await env?.close();
  await azurite?.stop();
});

const root = () => `${mailboxDirName(MAILBOX)}/`;
const cliEnv = () => ({ ...env.env, AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString });

const manifest = () => blobManifestRecords(container, root());

async function archive(): Promise<void> {
  const run = await runCli(
    ['archive', '--mailbox', MAILBOX, '--out', azurite.url(CONTAINER), '--json'],
    cliEnv(),
    { timeoutMs: CLI_TIMEOUT },
  );
  expect(run.code, run.stderr).toBe(0);
}

describe('blob commits in flight at a crash', () => {
  it('records only blobs whose chain reaches the manifest, and fetches the rest again', async () => {
    await archive();
    const first = await manifest();
    expect(first).toHaveLength(MESSAGES);
    const byUid = [...first].sort((a, b) => a.uid - b.uid);
    const [third, fifth, sixth, seventh] = [byUid[2], byUid[4], byUid[5], byUid[6]] as [
      ManifestRecord,
      ManifestRecord,
      ManifestRecord,
      ManifestRecord,
    ];
    // The crash: three lines made it into the manifest; the 6th commit never landed.
    const manifestBlob = container.getAppendBlobClient(`${root()}manifest.jsonl`);
    const text = (await manifestBlob.downloadToBuffer()).toString('utf8');
    const kept = `${text.split('\n').slice(0, 3).join('\n')}\n`;
    await manifestBlob.delete();
    await manifestBlob.create();
    await manifestBlob.appendBlock(kept, Buffer.byteLength(kept));
    await container.getBlobClient(`${root()}${sixth.path}`).delete();

    await archive();
    const records = await manifest();
    expect(records.map((r) => r.uid).sort((a, b) => a - b)).toEqual(
      [...inbox.messages.keys()].sort((a, b) => a - b),
    );
    for (const record of records) {
      expect(record.sha256, record.path).toBe(inbox.messages.get(record.uid)?.sha256);
      const bytes = await container.getBlobClient(`${root()}${record.path}`).downloadToBuffer();
      expect(createHash('sha256').update(bytes).digest('hex'), record.path).toBe(record.sha256);
    }
    // The 4th and 5th were recorded from their blobs; the 6th and later fetched again.
    const recovered = records.filter((r) => r.recovered).map((r) => r.uid);
    expect(recovered.sort((a, b) => a - b)).toEqual(
      byUid.filter((r) => r.uid > third.uid && r.uid <= fifth.uid).map((r) => r.uid),
    );

    // Each blob names the message committed before it: the chain the next run follows.
    const seventhBlob = container.getBlobClient(`${root()}${seventh.path}`);
    expect((await seventhBlob.getProperties()).metadata?.afteruid).toBe(String(sixth.uid));

    const verify = await runCli(['archive', 'verify', azurite.url(CONTAINER)], cliEnv(), {
      timeoutMs: CLI_TIMEOUT,
    });
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  }, 600_000);
});
