/**
 * `archive --out` an Azure Blob container (Azurite), two behaviours that share
 * one Azurite and one set of mail servers, each with a mailbox of its own:
 *
 * Managed identity: with no connection string, DefaultAzureCredential (the
 * real @azure/identity) finds the managed identity of an App Service
 * (IDENTITY_ENDPOINT, IDENTITY_HEADER; test/helpers/identity-endpoint.ts),
 * which gets its token from the token service standing in for Entra, and
 * Azurite (`--oauth basic`) accepts it. The same identity signs in to IMAP
 * (MAILBRIDGE_CREDENTIAL=managed-identity): one machine identity for both.
 *
 * Commits in flight at a crash: commits into a container run several at
 * once, so a crash can leave a message committed while an earlier one of its
 * folder is not. The next run must not record the later one as an orphan:
 * that would move the folder's checkpoint past the missing message, which
 * would then never be archived. The state such a crash leaves is made by hand
 * from a complete archive: the manifest cut back to its first 3 lines, and the
 * 6th message's blob removed. The 4th and 5th are recorded (their chain
 * reaches the manifest); the 7th and later are fetched again, and nothing is
 * missing or extra. This one signs in with the connection string's shared key,
 * which Azurite accepts beside bearer tokens, and its runs go through the
 * CLI's entry in this process (runCliInProcess): the managed-identity runs
 * are the child processes.
 */
import { createHash } from 'node:crypto';
import type { ContainerClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManifestRecord } from '../../../src/jobs/archive/manifest.js';
import { mailboxDirName } from '../../../src/jobs/archive/paths.js';
import { type Azurite, startAzurite } from '../../helpers/azurite.js';
import { type IdentityEndpoint, startIdentityEndpoint } from '../../helpers/identity-endpoint.js';
import { EXCHANGE_AUDIENCE, IMAP_ROLE } from '../../helpers/mail-servers.js';
import { runCli } from '../../helpers/run-cli.js';
import { runCliInProcess } from '../../helpers/run-cli-in-process.js';
import {
  type ArchiveTestEnv,
  blobManifestRecords,
  plainMessage,
  type ServerFolder,
  serverSnapshot,
  startArchiveTestEnv,
} from './support.js';

const MAILBOX = 'identity@contoso.example';
const STORAGE = 'https://storage.azure.com';
const CONTAINER = 'by-identity';
const MESSAGES = 5;
const GAP_MAILBOX = 'blob-gap@contoso.example';
const GAP_CONTAINER = 'gap-archive';
const GAP_MESSAGES = 12;
const CLI_TIMEOUT = 180_000;

let env: ArchiveTestEnv;
let azurite: Azurite;
let endpoint: IdentityEndpoint;
let without: IdentityEndpoint;
let gapContainer: ContainerClient;
let gapInbox: ServerFolder;

async function seed(mailbox: string, messages: number): Promise<void> {
  const seeder = await env.direct(mailbox);
  for (let i = 1; i <= messages; i++)
    await seeder.append('INBOX', plainMessage(i, 'INBOX', mailbox));
  await seeder.logout();
}

beforeAll(async () => {
  [env, azurite] = await Promise.all([
    startArchiveTestEnv([MAILBOX, GAP_MAILBOX]),
    startAzurite({ oauth: true, inMemory: true }),
  ]);
  env.service.addResource(STORAGE);
  const identity = env.service.registerApp({
    displayName: 'app-service-system-identity',
    roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE] },
  });
  await env.servers.grantMailbox(identity.clientId, MAILBOX);
  endpoint = await startIdentityEndpoint({ tokenService: env.service, systemAssigned: identity });
  without = await startIdentityEndpoint({ tokenService: env.service });
  await azurite.createContainer(CONTAINER);
  gapContainer = await azurite.createContainer(GAP_CONTAINER);
  await Promise.all([seed(MAILBOX, MESSAGES), seed(GAP_MAILBOX, GAP_MESSAGES)]);
  gapInbox = (await serverSnapshot(env, GAP_MAILBOX)).get('INBOX') as ServerFolder;
}, 180_000);

afterAll(async () => {
  await endpoint?.close();
  await without?.close();
  await env?.close();
  await azurite?.stop();
});

/** What a process on the App Service sees; no storage connection string. */
function resourceEnv(identity: IdentityEndpoint): Record<string, string> {
  return {
    ...identity.environment(),
    AZURE_TENANT_ID: env.service.tenantId,
    MAILBRIDGE_CREDENTIAL: 'managed-identity',
    MAILBRIDGE_IMAP_HOST: env.servers.imap.host,
    MAILBRIDGE_IMAP_PORT: String(env.servers.imap.port),
  };
}

describe('archive into a container with a managed identity (DefaultAzureCredential)', () => {
  it('archives with a token for https://storage.azure.com from the identity endpoint; verify passes', async () => {
    const url = azurite.url(CONTAINER, 'nightly');
    const archived = await runCli(
      ['archive', '--mailbox', MAILBOX, '--out', url, '--json'],
      resourceEnv(endpoint),
      { timeoutMs: CLI_TIMEOUT },
    );
    expect(archived.code, archived.stderr).toBe(0);
    expect(JSON.parse(archived.stdout)).toMatchObject({ ok: true });
    expect(endpoint.requests.map((r) => r.resource)).toContain(STORAGE);
    const names: string[] = [];
    const prefix = `nightly/${mailboxDirName(MAILBOX)}/`;
    for await (const blob of azurite.container(CONTAINER).listBlobsFlat({ prefix }))
      names.push(blob.name);
    expect(names.filter((n) => n.endsWith('.eml'))).toHaveLength(MESSAGES);
    const verified = await runCli(['archive', 'verify', url], resourceEnv(endpoint), {
      timeoutMs: CLI_TIMEOUT,
    });
    expect(verified.code, verified.stderr).toBe(0);
  }, 180_000);

  it('an endpoint with no identity for the resource: ARCHIVE_STORE_AUTH_FAILED, exit 3', async () => {
    const refused = await runCli(
      ['archive', 'verify', azurite.url(CONTAINER, 'nightly')],
      resourceEnv(without),
      { timeoutMs: CLI_TIMEOUT },
    );
    expect(refused.code, refused.stderr).toBe(3);
    expect(refused.stderr).toMatch(/ARCHIVE_STORE_AUTH_FAILED/);
  }, 180_000);
});

const root = () => `${mailboxDirName(GAP_MAILBOX)}/`;
const cliEnv = () => ({ ...env.env, AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString });

const manifest = () => blobManifestRecords(gapContainer, root());

async function archive(): Promise<void> {
  const run = await runCliInProcess(
    ['archive', '--mailbox', GAP_MAILBOX, '--out', azurite.url(GAP_CONTAINER), '--json'],
    cliEnv(),
  );
  expect(run.code, run.stderr).toBe(0);
}

describe('blob commits in flight at a crash', () => {
  it('records only blobs whose chain reaches the manifest, and fetches the rest again', async () => {
    await archive();
    const first = await manifest();
    expect(first).toHaveLength(GAP_MESSAGES);
    const byUid = [...first].sort((a, b) => a.uid - b.uid);
    const [third, fifth, sixth, seventh] = [byUid[2], byUid[4], byUid[5], byUid[6]] as [
      ManifestRecord,
      ManifestRecord,
      ManifestRecord,
      ManifestRecord,
    ];
    // The crash: three lines made it into the manifest; the 6th commit never landed.
    const manifestBlob = gapContainer.getAppendBlobClient(`${root()}manifest.jsonl`);
    const text = (await manifestBlob.downloadToBuffer()).toString('utf8');
    const kept = `${text.split('\n').slice(0, 3).join('\n')}\n`;
    await manifestBlob.delete();
    await manifestBlob.create();
    await manifestBlob.appendBlock(kept, Buffer.byteLength(kept));
    await gapContainer.getBlobClient(`${root()}${sixth.path}`).delete();

    await archive();
    const records = await manifest();
    expect(records.map((r) => r.uid).sort((a, b) => a - b)).toEqual(
      [...gapInbox.messages.keys()].sort((a, b) => a - b),
    );
    for (const record of records) {
      expect(record.sha256, record.path).toBe(gapInbox.messages.get(record.uid)?.sha256);
      const bytes = await gapContainer.getBlobClient(`${root()}${record.path}`).downloadToBuffer();
      expect(createHash('sha256').update(bytes).digest('hex'), record.path).toBe(record.sha256);
    }
    // The 4th and 5th were recorded from their blobs; the 6th and later fetched again.
    const recovered = records.filter((r) => r.recovered).map((r) => r.uid);
    expect(recovered.sort((a, b) => a - b)).toEqual(
      byUid.filter((r) => r.uid > third.uid && r.uid <= fifth.uid).map((r) => r.uid),
    );

    // Each blob names the message committed before it: the chain the next run follows.
    const seventhBlob = gapContainer.getBlobClient(`${root()}${seventh.path}`);
    expect((await seventhBlob.getProperties()).metadata?.afteruid).toBe(String(sixth.uid));

    const verify = await runCliInProcess(
      ['archive', 'verify', azurite.url(GAP_CONTAINER)],
      cliEnv(),
    );
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  }, 600_000);
});
