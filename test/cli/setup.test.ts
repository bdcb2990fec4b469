/** The setup commands as a user runs them: output, files and exit codes. */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/run-cli.js';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const APP = 'a3b1c2d4-e5f6-4789-9abc-def012345678';
const OBJECT = '0b7e1c2d-3f4a-4b5c-8d6e-7f8091a2b3c4';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mailbridge-setup-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('mailbridge setup', () => {
  it('exchange prints a script with the plan and exits 0', async () => {
    const { code, stdout } = await runCli([
      'setup',
      'exchange',
      '--tenant',
      TENANT,
      '--app-id',
      APP,
      '--object-id',
      OBJECT,
      '--mailbox',
      'archive@contoso.com',
      '--mailbox',
      "o'brien@contoso.com",
    ]);
    expect(code).toBe(0);
    expect(stdout).toContain("$ErrorActionPreference = 'Stop'");
    expect(stdout).toContain("'o''brien@contoso.com'");
    expect(stdout).toContain('New-ServicePrincipal');
    expect(stdout).not.toContain('-ServiceId');
  });

  it('exchange refuses a hostile address with exit 2 and names the field', async () => {
    const { code, stderr } = await runCli([
      'setup',
      'exchange',
      '--tenant',
      TENANT,
      '--app-id',
      APP,
      '--object-id',
      OBJECT,
      '--mailbox',
      'x@y.com; Remove-Mailbox ceo',
    ]);
    expect(code).toBe(2);
    expect(stderr).toContain('SETUP_PLAN_INVALID');
    expect(stderr).toContain('--mailbox');
  });

  it('cert writes the files, the key with mode 0600, and refuses to overwrite', async () => {
    const out = join(dir, 'certs');
    const first = await runCli(['setup', 'cert', '--out-dir', out, '--key-size', '2048', '--json']);
    expect(first.code).toBe(0);
    const printed = JSON.parse(first.stdout) as Record<string, unknown>;
    expect(JSON.stringify(printed)).toMatch(/[0-9A-F]{64}/);
    expect((await stat(join(out, 'mailbridge.key'))).mode & 0o777).toBe(0o600);
    const credentials = JSON.parse(
      await readFile(join(out, 'keyCredentials.json'), 'utf8'),
    ) as unknown[];
    expect(credentials).toHaveLength(1);
    const again = await runCli(['setup', 'cert', '--out-dir', out]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('SETUP_FILE_EXISTS');
  }, 30_000);

  it('consent-url prints the admin consent URL', async () => {
    const { code, stdout } = await runCli([
      'setup',
      'consent-url',
      '--tenant',
      TENANT,
      '--client-id',
      APP,
      '--redirect-uri',
      'https://localhost/done',
    ]);
    expect(code).toBe(0);
    const url = new URL(stdout.trim());
    expect(url.pathname).toBe(`/${TENANT}/v2.0/adminconsent`);
    expect(url.searchParams.get('client_id')).toBe(APP);
    expect(url.searchParams.get('scope')).toBe('https://outlook.office365.com/.default');
  });

  it('entra prints an az script that looks the role ids up', async () => {
    const { code, stdout } = await runCli(['setup', 'entra', '--app-name', "Mail 'bridge'"]);
    expect(code).toBe(0);
    expect(stdout).toContain('00000002-0000-0ff1-ce00-000000000000');
    expect(stdout).toContain('IMAP.AccessAsApp');
  });
});
