/**
 * `mailbridge setup exchange`, run in process: the command's run() with the
 * CLI's own argument parser and fake streams. (Process-level tests through
 * dist/cli/main.js belong with the command registration in run.ts.)
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { COMMON_FLAGS, parseCommandArgs } from '../../src/cli/args.js';
import { setupExchangeCommand } from '../../src/cli/commands/setup-exchange.js';
import { commandHelp } from '../../src/cli/help.js';
import { ConfigurationError } from '../../src/errors.js';
import { literalValue, parsePowerShell } from './powershell-grammar.js';

const APP_ID = '11111111-2222-3333-4444-555555555555';
const OBJECT_ID = '66666666-7777-8888-9999-aaaaaaaaaaaa';
const REQUIRED = [
  '--tenant',
  'contoso.onmicrosoft.com',
  '--app-id',
  APP_ID,
  '--object-id',
  OBJECT_ID,
];

const dir = mkdtempSync(join(tmpdir(), 'mailbridge-setup-exchange-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sink(): { stream: Writable; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk, _encoding, done) {
      text += String(chunk);
      done();
    },
  });
  return { stream, text: () => text };
}

async function run(argv: string[]) {
  const stdout = sink();
  const stderr = sink();
  const args = parseCommandArgs(argv, [...COMMON_FLAGS, ...setupExchangeCommand.flags]);
  const code = await setupExchangeCommand.run({
    args,
    io: { stdout: stdout.stream, stderr: stderr.stream, env: {} },
    logger: { log() {} },
    loadConfig: () => Promise.reject(new Error('setup exchange must not load credentials')),
  });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

async function refusal(argv: string[]): Promise<ConfigurationError> {
  const error = await run(argv).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ConfigurationError);
  return error as ConfigurationError;
}

async function literals(script: string): Promise<string[]> {
  const ps = await parsePowerShell(script);
  expect(ps.errors).toEqual([]);
  return ps.verbatimStrings.map(literalValue);
}

describe('setup exchange', () => {
  it('is a setup command that needs no credentials', () => {
    expect(setupExchangeCommand.name).toBe('setup exchange');
    expect(setupExchangeCommand.usesSettings).toBe(false);
  });

  it("says in its help that --object-id is the Enterprise Application's, not the App Registration's", () => {
    const help = commandHelp(setupExchangeCommand);
    expect(help).toMatch(
      /--object-id ID +object id of the app's Enterprise Application \(service principal\), NOT the App Registration's\n/,
    );
    expect(help).toContain('Entra ID > Enterprise');
    expect(help).toContain('-WhatIf');
  });

  it('writes the install script to stdout', async () => {
    const result = await run([
      ...REQUIRED,
      '--mailbox',
      'archive@contoso.com',
      '--mailbox',
      "o'brien@contoso.com",
      '--send-as',
      '--cloud',
      'usgov-high',
    ]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.stdout.startsWith('#Requires -Version 5.1\n')).toBe(true);
    expect(result.stdout).toContain('Add-RecipientPermission');
    expect(await literals(result.stdout)).toEqual(
      expect.arrayContaining([
        'contoso.onmicrosoft.com',
        APP_ID,
        OBJECT_ID,
        'mailbridge',
        'archive@contoso.com',
        "o'brien@contoso.com",
        'O365USGovGCCHigh',
      ]),
    );
  });

  it('writes the removal script with --remove', async () => {
    const result = await run([...REQUIRED, '--mailbox', 'archive@contoso.com', '--remove']);
    expect(result.stdout).toContain('$null = Remove-MailboxPermission');
    expect(result.stdout).not.toContain('$null = Add-MailboxPermission');
  });

  it('writes the SMTP scope and its role assignment with --smtp-scope, and their removal with --remove', async () => {
    const argv = [...REQUIRED, '--mailbox', 'archive@contoso.com', '--protocols', 'smtp'];
    const install = await run([...argv, '--smtp-scope', 'group:Mail senders']);
    expect(install.stdout).toContain('New-ManagementRoleAssignment -Name $AssignmentName');
    expect(install.stdout).not.toContain('Add-MailboxPermission -Identity');
    expect(await literals(install.stdout)).toContain('Mail senders');
    const removal = await run([...argv, '--smtp-scope', 'mailboxes', '--remove']);
    expect(removal.stdout).toContain('Remove-ManagementRoleAssignment -Identity');
    expect(removal.stdout).toContain('Remove-ManagementScope -Identity $ScopeName');
    const wrong = await refusal([...argv, '--smtp-scope', 'everyone']);
    expect(wrong.problems.map((p) => p.field)).toEqual(['--smtp-scope']);
  });

  it('merges --mailbox and --mailboxes FILE, deduplicated', async () => {
    const list = join(dir, 'boxes.csv');
    writeFileSync(list, 'Name,Address\nArchive,ARCHIVE@contoso.com\nReports,reports@contoso.com\n');
    const result = await run([
      ...REQUIRED,
      '--mailbox',
      'archive@contoso.com',
      '--mailboxes',
      list,
    ]);
    const values = await literals(result.stdout);
    expect(values).toContain('archive@contoso.com');
    expect(values).toContain('reports@contoso.com');
    expect(values).not.toContain('ARCHIVE@contoso.com');
  });

  it('reads the plan from the config file, falling back to tenantId and clientId; flags win', async () => {
    const config = join(dir, 'mailbridge.yaml');
    writeFileSync(
      config,
      [
        'tenantId: contoso.onmicrosoft.com',
        `clientId: ${APP_ID}`,
        'clientSecret: not-used-here',
        'setup:',
        '  exchange:',
        `    objectId: ${OBJECT_ID}`,
        '    displayName: Archive Robot',
        '    mailboxes: [archive@contoso.com, reports@contoso.com]',
        '    protocols: [imap]',
        '    enableProtocols: true',
        '',
      ].join('\n'),
    );
    const result = await run(['--config', config, '--display-name', 'From The Flag']);
    expect(result.code).toBe(0);
    const values = await literals(result.stdout);
    expect(values).toEqual(
      expect.arrayContaining([
        'contoso.onmicrosoft.com',
        APP_ID,
        OBJECT_ID,
        'From The Flag',
        'archive@contoso.com',
        'reports@contoso.com',
      ]),
    );
    expect(values).not.toContain('Archive Robot');
    expect(result.stdout).toContain('Set-CASMailbox -Identity $Mailbox -ImapEnabled $true');
    expect(result.stdout).not.toContain('not-used-here');
  });

  it('names each problem by the flag, config key or file line it came from', async () => {
    const config = join(dir, 'bad.json');
    writeFileSync(
      config,
      JSON.stringify({
        setup: {
          exchange: {
            objectId: 'nope',
            mailboxes: ['ok@contoso.com', 'bad address'],
            color: 'red',
          },
        },
      }),
    );
    const list = join(dir, 'list.txt');
    writeFileSync(list, '# boxes\n$(Invoke-Evil)@x.com\n');
    const error = await refusal([
      '--config',
      config,
      '--app-id',
      "x'; Remove-Mailbox ceo; '",
      '--mailboxes',
      list,
    ]);
    // A stray word is refused before the command runs (test/cli/cli-framework.test.ts).
    expect(error.code).toBe('SETUP_PLAN_INVALID');
    expect(error.exitCode).toBe(2);
    expect(error.problems.map((p) => p.field)).toEqual([
      'setup.exchange.color',
      'tenant',
      '--app-id',
      'setup.exchange.objectId',
      'list.txt line 2',
    ]);
  });

  it('refuses an unknown setup.exchange key with a did-you-mean, never showing a secret-shaped key', async () => {
    const secret = 'Xy7Q~abcdefghijklmnopqrstuvwxyz0123456789AB';
    const config = join(dir, 'typo.json');
    writeFileSync(
      config,
      JSON.stringify({
        setup: { exchange: { objectid: OBJECT_ID, [secret]: 'x', mailboxes: ['a@contoso.com'] } },
      }),
    );
    const error = await refusal([
      '--config',
      config,
      '--tenant',
      'contoso.com',
      '--app-id',
      APP_ID,
    ]);
    expect(error.code).toBe('SETUP_PLAN_INVALID');
    expect(error.problems).toContainEqual({
      field: 'setup.exchange.objectid',
      message: "Unknown setting 'setup.exchange.objectid': did you mean 'setup.exchange.objectId'?",
    });
    expect(error.problems.map((p) => p.field)).toContain('setup.exchange.(unknown key)');
    expect(JSON.stringify(error.problems)).not.toContain(secret);
  });

  it('refuses hostile flag values with a clear message and writes nothing', async () => {
    const error = await refusal([...REQUIRED, '--mailbox', '$(Invoke-Evil)@x.com']);
    expect(error.problems).toEqual([
      {
        field: '--mailbox',
        message:
          '"$(Invoke-Evil)@x.com" is refused: the part before the @ holds a dollar sign ($) (U+0024) (allowed: letters, digits, . and !#%&\'*+/=?^_{|}~-)',
      },
    ]);
  });

  it('writes --out with mode 0644, refuses to overwrite without --force', async () => {
    const out = join(dir, 'grant.ps1');
    const first = await run([...REQUIRED, '--mailbox', 'a@contoso.com', '--out', out]);
    expect(first.code).toBe(0);
    expect(first.stdout).toBe('');
    expect(first.stderr).toContain(`wrote the Exchange script for 1 mailbox(es) to ${out}`);
    expect(first.stderr).toContain(`pwsh -File ${out} -WhatIf`);
    expect(statSync(out).mode & 0o777).toBe(0o644);
    expect(readFileSync(out, 'utf8')).toContain("'a@contoso.com'");

    const again = await refusal([...REQUIRED, '--mailbox', 'b@contoso.com', '--out', out]);
    expect(again.code).toBe('SETUP_OUT_EXISTS');
    expect(again.message).toBe(
      `${out} already exists; it was left as it is. Pass --force to overwrite it, or choose another --out file.`,
    );
    expect(readFileSync(out, 'utf8')).toContain("'a@contoso.com'");

    await run([...REQUIRED, '--mailbox', 'b@contoso.com', '--out', out, '--force']);
    expect(readFileSync(out, 'utf8')).toContain("'b@contoso.com'");
    expect(statSync(out).mode & 0o777).toBe(0o644);
  });

  it('reports an --out path it cannot write', async () => {
    const error = await refusal([
      ...REQUIRED,
      '--mailbox',
      'a@contoso.com',
      '--out',
      join(dir, 'missing', 'grant.ps1'),
    ]);
    expect(error.code).toBe('SETUP_OUT_UNWRITABLE');
    expect(error.message).toContain('no such file (ENOENT)');
  });
});
