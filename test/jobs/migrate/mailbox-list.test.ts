/**
 * The `migrate --mailboxes` list: parsing (pure), and the CLI refusing a bad
 * file with exit 2 and the line, before any server is asked.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthenticationError, type MailbridgeError, NetworkError } from '../../../src/errors.js';
import { listExitCode, type PairOutcome } from '../../../src/jobs/migrate/index.js';
import { parseMailboxPairs, readMailboxPairs } from '../../../src/jobs/migrate/mailbox-list.js';
import { pairStateDir } from '../../../src/jobs/migrate/mailbox-list-run.js';
import { runCli } from '../../helpers/run-cli.js';

const names = (text: string) =>
  parseMailboxPairs(text, 'pairs.csv').pairs.map((p) =>
    [p.from, p.to].map((e) => JSON.stringify(e)),
  );

describe('parseMailboxPairs', () => {
  it('reads source,destination lines with an optional header, comments and blank lines as archive does', () => {
    const parsed = parseMailboxPairs(
      [
        '\uFEFFsource,destination',
        '# old provider → Microsoft 365',
        'imaps://bob%40example.org@mail.example.org, m365:bob@contoso.com',
        '',
        'm365:ann@fabrikam.com,m365:ann@contoso.com   # tenant to tenant',
        'm365:ann@fabrikam.com,m365:ann@contoso.com',
      ].join('\r\n'),
      'pairs.csv',
    );
    expect(parsed.problems).toEqual([]);
    expect(parsed.pairs).toEqual([
      {
        from: {
          kind: 'imap',
          host: 'mail.example.org',
          port: 993,
          user: 'bob@example.org',
          security: 'implicit',
        },
        to: { kind: 'm365', mailbox: 'bob@contoso.com' },
        source: 'pairs.csv line 3',
      },
      {
        from: { kind: 'm365', mailbox: 'ann@fabrikam.com' },
        to: { kind: 'm365', mailbox: 'ann@contoso.com' },
        source: 'pairs.csv line 5',
      },
    ]);
  });

  it('takes the first line as a pair when it names endpoints', () => {
    expect(names('m365:a@contoso.com,m365:b@contoso.com\n')).toHaveLength(1);
  });

  it('names every bad line by its number', () => {
    const parsed = parseMailboxPairs(
      [
        'source,destination',
        'm365:a@contoso.com',
        'm365:a@contoso.com,m365:b@contoso.com,m365:c@contoso.com',
        'm365:not-an-address,m365:b@contoso.com',
        'imaps://bob:secret@mail.example.org,m365:b@contoso.com',
        'm365:ok@contoso.com,m365:fine@contoso.com',
      ].join('\n'),
      'pairs.csv',
    );
    expect(parsed.pairs).toHaveLength(1);
    expect(parsed.problems.map((p) => p.field)).toEqual([
      'pairs.csv line 2',
      'pairs.csv line 3',
      'pairs.csv line 4',
      'pairs.csv line 5',
    ]);
    expect(parsed.problems[0]?.message).toMatch(/not source,destination \(1 field/);
    expect(parsed.problems[2]?.message).toMatch(
      /source: 'not-an-address' is not a mailbox address/,
    );
    // The password is not repeated.
    expect(JSON.stringify(parsed.problems)).not.toContain('secret');
  });
});

describe('readMailboxPairs', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mailbridge-pairs-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a file without pairs and a missing file with MIGRATE_MAILBOX_LIST_INVALID', async () => {
    const empty = join(dir, 'empty.csv');
    await writeFile(empty, 'source,destination\n# none yet\n');
    await expect(readMailboxPairs(empty)).rejects.toMatchObject({
      code: 'MIGRATE_MAILBOX_LIST_INVALID',
      exitCode: 2,
      message: expect.stringMatching(/lists no mailbox pair/),
    });
    await expect(readMailboxPairs(join(dir, 'missing.csv'))).rejects.toMatchObject({
      code: 'MIGRATE_MAILBOX_LIST_INVALID',
      message: expect.stringMatching(/cannot be read \(ENOENT\)/),
    });
  });

  it('`migrate --mailboxes` exits 2 naming the bad line and what to write, before any server is asked', async () => {
    const file = join(dir, 'bad.csv');
    await writeFile(
      file,
      'source,destination\nm365:a@contoso.com,m365:b@contoso.com\nm365:a@contoso.com;m365:c@contoso.com\n',
    );
    const result = await runCli(['migrate', '--mailboxes', file], {
      AZURE_TENANT_ID: 'contoso.onmicrosoft.com',
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/MIGRATE_MAILBOX_LIST_INVALID/);
    expect(result.stderr).toMatch(/bad\.csv line 3: /);
    expect(result.stderr).toMatch(/source,destination/);
  });

  it('`migrate --mailboxes` refuses --from beside it (exit 2)', async () => {
    const file = join(dir, 'one.csv');
    await writeFile(file, 'm365:a@contoso.com,m365:b@contoso.com\n');
    const result = await runCli(
      ['migrate', '--mailboxes', file, '--from', 'm365:x@contoso.com'],
      {},
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--from and --mailboxes cannot go together/);
  });
});

describe('the state folder of each pair', () => {
  it('lies under the root, named for the pair, the same on every run and different per pair', () => {
    const a = pairStateDir({ from: 'm365:a@contoso.com', to: 'm365:b@contoso.com' }, '/srv/state');
    expect(a).toMatch(/^\/srv\/state\/m365_a@contoso\.com--m365_b@contoso\.com-[0-9a-f]{10}$/);
    expect(
      pairStateDir({ from: 'm365:a@contoso.com', to: 'm365:b@contoso.com' }, '/srv/state'),
    ).toBe(a);
    expect(
      pairStateDir({ from: 'm365:a@contoso.com', to: 'm365:c@contoso.com' }, '/srv/state'),
    ).not.toBe(a);
  });
});

describe('listExitCode', () => {
  const done = { from: 'a', to: 'b', ok: true, stateDir: '' } as unknown as PairOutcome;
  const failed = (error: MailbridgeError) =>
    ({ from: 'a', to: 'b', ok: false, stateDir: '', error }) as PairOutcome;
  const refused = new AuthenticationError({
    code: 'MIGRATE_LOGIN_REFUSED',
    message: 'no',
    remedy: '',
  });
  const unreachable = new NetworkError({ code: 'MIGRATE_UNREACHABLE', message: 'no', remedy: '' });
  it('is 0 when all are done, 1 when some failed, the common code when all failed alike', () => {
    expect(listExitCode([done, done])).toBe(0);
    expect(listExitCode([done, failed(refused)])).toBe(1);
    expect(listExitCode([failed(refused), failed(refused)])).toBe(3);
    expect(listExitCode([failed(unreachable), failed(unreachable)])).toBe(4);
    expect(listExitCode([failed(refused), failed(unreachable)])).toBe(1);
  });
});
