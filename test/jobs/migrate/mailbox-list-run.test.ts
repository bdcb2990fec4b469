/**
 * `mailbridge migrate --mailboxes FILE`: several password mailboxes of
 * "another provider" into Microsoft 365-like ones (XOAUTH2), a few pairs at
 * once, against the real Dovecot of test/helpers.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createImapClient } from '../../../src/clients/imap-client.js';
import { loadConfig } from '../../../src/config/load.js';
import { pairStateDir } from '../../../src/jobs/migrate/mailbox-list-run.js';
import { appEnvironment } from '../../helpers/app-env.js';
import {
  EXCHANGE_AUDIENCE,
  IMAP_ROLE,
  type MailServers,
  startMailServers,
} from '../../helpers/mail-servers.js';
import { runCli } from '../../helpers/run-cli.js';
import { startTokenService, type TokenService } from '../../helpers/token-service.js';
import { expected, seedMessages, seedWith, snapshotOf } from './support.js';

const PASSWORD = 'one master password';
const SOURCES = [0, 1, 2].map((i) => `user${i}@oldhost.example`);
const DESTS = [0, 1, 2].map((i) => `user${i}@contoso.example`);
const UNGRANTED = 'nobody@contoso.example';
const FOLDERS = ['INBOX', 'Projects'];
const SAME = { INBOX: 'INBOX', Projects: 'Projects' };
/** Messages of each source, a different count each: the pairs are told apart by their totals. */
const COUNTS = [10, 15, 20];

let service: TokenService;
let servers: MailServers;
let env: Record<string, string>;
let work: string;
let sourceUrl: (user: string) => string;
let openSource: (user: string) => () => Promise<ImapFlow>;
let openDest: (mailbox: string) => () => Promise<ImapFlow>;

beforeAll(async () => {
  service = await startTokenService();
  servers = await startMailServers({
    tokenService: service,
    // Only IMAP here: SMTP submission by this process, not Postfix (about 1.3 s of CPU a start).
    submission: 'node',
    passwordUsers: Object.fromEntries(SOURCES.map((u) => [u, PASSWORD])),
  });
  const app = service.registerApp({ roles: { [EXCHANGE_AUDIENCE]: [IMAP_ROLE] } });
  for (const mailbox of DESTS) await servers.grantMailbox(app.clientId, mailbox);
  const appEnv = appEnvironment(service, app, { imap: servers.imap });
  env = { ...appEnv, MAILBRIDGE_FROM_PASSWORD: PASSWORD };
  const config = await loadConfig({ env: appEnv });
  work = await mkdtemp(join(tmpdir(), 'mailbridge-migrate-list-'));
  sourceUrl = (user) => `imaps://${encodeURIComponent(user)}@127.0.0.1:${servers.imap.port}`;
  openSource = (user) => async () => {
    const client = new ImapFlow({
      host: '127.0.0.1',
      port: servers.imap.port,
      secure: true,
      auth: { user, pass: PASSWORD },
      logger: false,
    });
    await client.connect();
    return client;
  };
  openDest = (mailbox) => () => createImapClient(config, { mailbox });
  await Promise.all(
    SOURCES.map((user, i) =>
      seedWith(openSource(user), seedMessages(FOLDERS, COUNTS[i] as number, i * 1000)),
    ),
  );
}, 120_000);

afterAll(async () => {
  await servers?.stop();
  await service?.close();
  if (work) await rm(work, { recursive: true, force: true });
}, 60_000);

async function listFile(name: string, lines: string[]): Promise<string> {
  const file = join(work, name);
  await writeFile(file, `source,destination\n# written by the test\n${lines.join('\n')}\n`);
  return file;
}

const pairLines = (count = SOURCES.length) =>
  SOURCES.slice(0, count).map((user, i) => `${sourceUrl(user)},m365:${DESTS[i]}`);

function jsonLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('migrate --mailboxes', () => {
  it('copies every pair exactly, each with a state folder of its own under --state; a rerun copies nothing', async () => {
    const file = await listFile('pairs.csv', pairLines());
    const state = join(work, 'state');
    const args = ['migrate', '--mailboxes', file, '--state', state, '--concurrency', '2', '--json'];
    const first = await runCli(args, env, { timeoutMs: 120_000 });
    expect(first.code, first.stderr).toBe(0);
    const lines = jsonLines(first.stdout);
    expect(lines.filter((l) => l.type === 'pair')).toHaveLength(3);
    const summary = lines.at(-1) as Record<string, unknown>;
    expect(summary).toMatchObject({
      ok: true,
      exitCode: 0,
      pairs: 3,
      failed: 0,
      alreadyPresent: 0,
    });
    expect(summary.copied).toBe(COUNTS.reduce((a, b) => a + b));
    for (const [i, user] of SOURCES.entries()) {
      const source = await snapshotOf(openSource(user), FOLDERS);
      expect(await snapshotOf(openDest(DESTS[i] as string), FOLDERS), user).toEqual(
        expected(source, SAME),
      );
    }
    const expectedDirs = SOURCES.map((user, i) =>
      pairStateDir({ from: sourceUrl(user), to: `m365:${DESTS[i]}` }, state),
    );
    expect((await readdir(state)).map((d) => join(state, d)).sort()).toEqual(expectedDirs.sort());

    const again = await runCli(args.slice(0, -1), env, { timeoutMs: 120_000 });
    expect(again.code, again.stderr).toBe(0);
    const perPair = again.stdout.trim().split('\n').slice(0, -1);
    expect(perPair).toHaveLength(3);
    for (const line of perPair) expect(line).toMatch(/: copied 0, already there 0, skipped 0 /);
    expect(again.stdout).toMatch(/3 pair\(s\): 3 done, 0 failed; copied 0 message\(s\)/);
  }, 240_000);

  it('a pair that fails does not stop the others: its line says why, exit 1', async () => {
    const file = await listFile('one-bad.csv', [
      ...pairLines(2),
      `${sourceUrl(SOURCES[2] as string)},m365:${UNGRANTED}`,
    ]);
    const result = await runCli(
      ['migrate', '--mailboxes', file, '--state', join(work, 'state')],
      env,
      { timeoutMs: 120_000 },
    );
    expect(result.code, result.stderr).toBe(1);
    expect(result.stdout).toMatch(new RegExp(`→ m365:${UNGRANTED}: FAILED [A-Z_]+: `));
    expect(result.stdout).toMatch(/3 pair\(s\): 2 done, 1 failed/);
  }, 240_000);

  it('exit 3 when every pair failed for its login', async () => {
    const file = await listFile('all-refused.csv', pairLines(2));
    const result = await runCli(
      ['migrate', '--mailboxes', file, '--state', join(work, 'state-refused'), '--json'],
      { ...env, MAILBRIDGE_FROM_PASSWORD: 'wrong' },
      { timeoutMs: 120_000 },
    );
    expect(result.code, result.stderr).toBe(3);
    const pairs = jsonLines(result.stdout).filter((l) => l.type === 'pair');
    expect(pairs.map((p) => (p.error as { code: string }).code)).toEqual([
      'MIGRATE_LOGIN_REFUSED',
      'MIGRATE_LOGIN_REFUSED',
    ]);
    expect(result.stdout).not.toContain('wrong');
  }, 120_000);
});
