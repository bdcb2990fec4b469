/**
 * `migrate --mailboxes` with a password per pair (a hosting provider has no
 * master login): the list's third and fourth fields name a file holding the
 * source's and the destination's password. Two source users with different
 * passwords go across in one list run, with no shared password set; a file
 * that cannot give a password stops the list before anything runs, naming
 * the line but never the field (it might be a password written there by
 * mistake). A token command serving many pairs learns whose token it is
 * from MAILBRIDGE_USER.
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenProvider } from '../../../src/auth/token-provider.js';
import type { MailbridgeError } from '../../../src/errors.js';
import { migrateMailboxList, readMailboxPairs } from '../../../src/jobs/migrate/index.js';
import { runCli } from '../../helpers/run-cli.js';
import {
  expected,
  type MigrateTestEnv,
  SOURCE_PASSWORD,
  SOURCE_USER,
  seedMessages,
  seedSource,
  seedWith,
  snapshotOf,
  startMigrateTestEnv,
} from './support.js';

const BOB = 'bob@oldhost.example';
const BOB_PASSWORD = 'bobs very own password';
const DEST_ALICE = 'alice@contoso.example';
const DEST_BOB = 'bob@contoso.example';
const TOKEN_SOURCES = ['karl@contoso.example', 'lena@contoso.example'];
const TOKEN_DESTS = ['karl.new@contoso.example', 'lena.new@contoso.example'];
const FOLDERS = ['INBOX', 'Work'];
const IDENTITY = Object.fromEntries(FOLDERS.map((f) => [f, f]));

describe('migrate --mailboxes with credentials per pair', () => {
  let env: MigrateTestEnv;
  let work: string;
  let port: number;
  const url = (user: string) => `imaps://${encodeURIComponent(user)}@127.0.0.1:${port}`;

  beforeAll(async () => {
    env = await startMigrateTestEnv([DEST_ALICE, DEST_BOB, ...TOKEN_SOURCES, ...TOKEN_DESTS], {
      passwordUsers: { [BOB]: BOB_PASSWORD },
    });
    port = env.servers.imap.port;
    work = await mkdtemp(join(tmpdir(), 'mailbridge-migrate-list-credentials-'));
    await seedSource(env, seedMessages(FOLDERS, 12));
    const bob = { user: BOB, pass: BOB_PASSWORD };
    const { ImapFlow } = await import('imapflow');
    await seedWith(
      async () => {
        const client = new ImapFlow({
          host: '127.0.0.1',
          port,
          secure: true,
          auth: bob,
          logger: false,
        });
        await client.connect();
        return client;
      },
      seedMessages(FOLDERS, 9, 500),
    );
    for (const [i, mailbox] of TOKEN_SOURCES.entries()) {
      await seedWith(() => env.m365(mailbox), seedMessages(['INBOX'], 5, 1000 + 100 * i));
    }
  }, 120_000);
  afterAll(async () => {
    await env?.close();
    await rm(work, { recursive: true, force: true });
  });

  /** A password file next to the list, mode 0600 as a user would keep it. */
  const passwordFile = async (name: string, password: string) => {
    await writeFile(join(work, name), `${password}\n`);
    await chmod(join(work, name), 0o600);
  };

  it('copies two users with their own passwords, with no shared password set', async () => {
    await passwordFile('alice.pw', SOURCE_PASSWORD);
    await passwordFile('bob.pw', BOB_PASSWORD);
    const list = join(work, 'pairs.csv');
    await writeFile(
      list,
      [
        'source,destination,source password file',
        `${url(SOURCE_USER)},m365:${DEST_ALICE},alice.pw`,
        `${url(BOB)},m365:${DEST_BOB},bob.pw`,
      ].join('\n'),
    );
    const { MAILBRIDGE_FROM_PASSWORD: _, ...appOnly } = env.env;
    const args = ['migrate', '--mailboxes', list, '--state', join(work, 'state'), '--json'];
    const result = await runCli(args, appOnly, { timeoutMs: 120_000 });
    expect(result.code, result.stderr).toBe(0);
    const summary = JSON.parse(result.stdout.trim().split('\n').at(-1) as string);
    expect(summary).toMatchObject({ ok: true, pairs: 2, failed: 0, copied: 21 });
    for (const secret of [SOURCE_PASSWORD, BOB_PASSWORD]) {
      expect(result.stdout + result.stderr).not.toContain(secret);
    }
    expect(await snapshotOf(() => env.m365(DEST_ALICE), FOLDERS)).toEqual(
      expected(await snapshotOf(env.source, FOLDERS), IDENTITY),
    );
    expect((await snapshotOf(() => env.m365(DEST_BOB), FOLDERS)).get('INBOX')).toHaveLength(5);
  }, 120_000);

  it('refuses the whole list when a password file cannot give a password, naming the line, never the field', async () => {
    await passwordFile('alice.pw', SOURCE_PASSWORD);
    await writeFile(join(work, 'empty.pw'), '\n');
    const list = join(work, 'bad.csv');
    await writeFile(
      list,
      [
        `${url(SOURCE_USER)},m365:${DEST_ALICE},alice.pw`,
        // A password pasted where its file belongs.
        `${url(BOB)},m365:${DEST_BOB},${BOB_PASSWORD}`,
        `${url(BOB)},m365:${DEST_ALICE},empty.pw`,
        `m365:${DEST_ALICE},m365:${DEST_BOB},alice.pw`,
        `${url(BOB)},m365:${DEST_BOB},bob.pw,,extra`,
      ].join('\n'),
    );
    const error = await readMailboxPairs(list).then(
      () => expect.unreachable('read'),
      (e: MailbridgeError) => e,
    );
    expect(error).toMatchObject({ code: 'MIGRATE_MAILBOX_LIST_INVALID', exitCode: 2 });
    expect(error.message).toMatch(
      /bad\.csv line 2: the source's password file \(field 3\) cannot be read \(ENOENT\)/,
    );
    expect(error.message).toMatch(
      /bad\.csv line 3: the source's password file \(field 3\) is empty/,
    );
    expect(error.message).toMatch(
      /bad\.csv line 4: the source's password file is given, but m365:/,
    );
    expect(error.message).toMatch(/bad\.csv line 5: .* \(5 field\(s\);/);
    expect(error.message).not.toMatch(/line 1\b/);
    expect(JSON.stringify(error.toJSON())).not.toContain(BOB_PASSWORD);
  });

  it('tells a token command serving many pairs which user it is for (MAILBRIDGE_USER)', async () => {
    const token = await createTokenProvider(env.config).getToken();
    const seen = join(work, 'users');
    const script = join(work, 'token-for-user.cjs');
    await writeFile(
      script,
      [
        "const { appendFileSync } = require('node:fs');",
        `appendFileSync(${JSON.stringify(seen)}, process.env.MAILBRIDGE_USER + '\\n');`,
        `process.stdout.write(${JSON.stringify(token.accessToken)} + '\\n');`,
      ].join('\n'),
    );
    const list = join(work, 'tokens.csv');
    await writeFile(
      list,
      TOKEN_SOURCES.map((s, i) => `${url(s)},m365:${TOKEN_DESTS[i]}`).join('\n'),
    );
    const result = await migrateMailboxList({
      pairs: await readMailboxPairs(list),
      fromTokenCommand: [process.execPath, script],
      toConfig: env.config,
      stateRoot: join(work, 'state-tokens'),
      connections: 1,
    });
    expect(result).toMatchObject({ ok: true, copied: 10, failed: 0 });
    const users = new Set((await readFile(seen, 'utf8')).trim().split('\n'));
    expect([...users].sort()).toEqual([...TOKEN_SOURCES].sort());
  }, 60_000);
});
