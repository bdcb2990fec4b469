/**
 * Microsoft 365 → Microsoft 365 across two tenants: each side through its own
 * configuration file (`--from-config`, `--to-config`), each an app of its
 * own tenant granted on its own mailbox only, as after a merger.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createImapClient } from '../../../src/clients/imap-client.js';
import { loadConfig } from '../../../src/config/load.js';
import type { MailbridgeConfig } from '../../../src/config/types.js';
import { appEnvironment } from '../../helpers/app-env.js';
import { EXCHANGE_AUDIENCE, IMAP_ROLE } from '../../helpers/mail-servers.js';
import { runCli } from '../../helpers/run-cli.js';
import type { RegisteredApp } from '../../helpers/token-service.js';
import {
  expected,
  type MigrateTestEnv,
  seedMessages,
  seedWith,
  snapshotOf,
  startMigrateTestEnv,
} from './support.js';

/** In the environment's own tenant, reached with its app. */
const SOURCE = 'henry@fabrikam.example';
/** In a second tenant with an app of its own. */
const DEST = 'henry@contoso.example';
/** A second mailbox of that tenant, for the run with the source's app in the environment. */
const DEST_FROM_ENV_RUN = 'henry.env@contoso.example';
const FOLDERS = ['INBOX', 'Sent Items', 'Projekte/Ä', 'x.y'];
const IDENTITY = Object.fromEntries(FOLDERS.map((f) => [f, f]));
/** Spread evenly over FOLDERS: a quarter of them in INBOX. */
const MESSAGES = 100;

describe('migrate: Microsoft 365 → Microsoft 365 across tenants', () => {
  let env: MigrateTestEnv;
  let work: string;
  let destApp: RegisteredApp;
  let destConfig: MailbridgeConfig;

  const configFile = async (
    name: string,
    app: Pick<RegisteredApp, 'tenantId' | 'clientId' | 'secret'>,
  ): Promise<string> => {
    const path = join(work, name);
    const settings = {
      tenantId: app.tenantId,
      clientId: app.clientId,
      clientSecret: app.secret,
      authorityHost: env.service.url,
      imap: { host: env.servers.imap.host, port: env.servers.imap.port },
    };
    await writeFile(path, JSON.stringify(settings), { mode: 0o600 });
    return path;
  };
  /** The environment's app, in the default tenant. */
  const sourceApp = () => ({
    tenantId: env.env.AZURE_TENANT_ID as string,
    clientId: env.env.AZURE_CLIENT_ID as string,
    secret: env.env.AZURE_CLIENT_SECRET,
  });

  beforeAll(async () => {
    env = await startMigrateTestEnv([SOURCE]);
    work = await mkdtemp(join(tmpdir(), 'mailbridge-migrate-tenants-'));
    destApp = env.service.registerApp({
      tenantId: randomUUID(),
      roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE] },
    });
    await env.servers.grantMailbox(destApp.clientId, DEST);
    await env.servers.grantMailbox(destApp.clientId, DEST_FROM_ENV_RUN);
    destConfig = await loadConfig({
      env: appEnvironment(env.service, destApp, { imap: env.servers.imap }),
    });
    await seedWith(() => env.m365(SOURCE), seedMessages(FOLDERS, MESSAGES, 60_000));
  }, 120_000);

  afterAll(async () => {
    await env?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('copies every message once with each side through its own tenant, bytes equal', async () => {
    expect(destApp.tenantId).not.toBe(env.service.tenantId);
    const args = [
      'migrate',
      '--from',
      `m365:${SOURCE}`,
      '--from-config',
      await configFile('fabrikam.json', sourceApp()),
      '--to',
      `m365:${DEST}`,
      '--to-config',
      await configFile('contoso.json', destApp),
      '--state',
      join(work, 'state'),
      '--json',
    ];
    // Nothing from the environment: each side's app, tenant and server come from its file.
    const first = await runCli(args, {}, { timeoutMs: 120_000 });
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout.trim().split('\n').at(-1) as string)).toMatchObject({
      copied: MESSAGES,
      alreadyPresent: 0,
      skipped: 0,
    });
    const again = await runCli(args, {}, { timeoutMs: 120_000 });
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout.trim().split('\n').at(-1) as string)).toMatchObject({
      copied: 0,
      skipped: 0,
    });

    expect(
      await snapshotOf(() => createImapClient(destConfig, { mailbox: DEST }), FOLDERS),
    ).toEqual(expected(await snapshotOf(() => env.m365(SOURCE), FOLDERS), IDENTITY));
  }, 180_000);

  it("stops with exit 3 when the destination refuses the source tenant's app", async () => {
    const result = await runCli(
      [
        'migrate',
        '--from',
        `m365:${SOURCE}`,
        '--to',
        `m365:${DEST}`,
        '--config',
        await configFile('only-fabrikam.json', sourceApp()),
        '--state',
        join(work, 'wrong'),
      ],
      {},
      // It used to print the error and then hang: the source's login, still on its way, kept
      // its connection open after the destination's was refused.
      { timeoutMs: 30_000 },
    );
    expect(result.code).toBe(3);
    expect(result.stderr).toContain('IMAP_AUTH_FAILED');
    expect(result.stderr).toContain(DEST);
  }, 60_000);
  it("takes the destination's whole identity from --to-config while the environment holds the source's app", async () => {
    // As after `eval "$(mailbridge sandbox start)"` or in a pipeline set up for one tenant:
    // the AZURE_* variables name the source's app, the file names the other tenant's.
    const environment = appEnvironment(env.service, sourceApp(), { imap: env.servers.imap });
    const run = (toConfig: string) =>
      runCli(
        [
          'migrate',
          '--from',
          `m365:${SOURCE}`,
          '--to',
          `m365:${DEST_FROM_ENV_RUN}`,
          '--to-config',
          toConfig,
          '--folder',
          'INBOX',
          '--state',
          join(work, `state-env-${randomUUID()}`),
          '--json',
        ],
        environment,
        { timeoutMs: 120_000 },
      );
    const copied = await run(await configFile('contoso-with-env.json', destApp));
    expect(copied.stderr).toBe('');
    expect(copied.code).toBe(0);
    expect(JSON.parse(copied.stdout.trim().split('\n').at(-1) as string)).toMatchObject({
      copied: MESSAGES / FOLDERS.length,
      skipped: 0,
    });

    // A file without a credential does not borrow the environment's (the other tenant's) secret.
    const noSecret = join(work, 'contoso-no-secret.json');
    await writeFile(
      noSecret,
      JSON.stringify({ tenantId: destApp.tenantId, clientId: destApp.clientId }),
      { mode: 0o600 },
    );
    const refused = await run(noSecret);
    expect(refused.code).toBe(2);
    // With --json the error is the last line of stdout.
    const said = refused.stdout + refused.stderr;
    expect(said).toContain('CONFIG_INVALID');
    expect(said).toContain('credential');
    expect(said).not.toContain(env.env.AZURE_CLIENT_SECRET as string);
  }, 180_000);
});
