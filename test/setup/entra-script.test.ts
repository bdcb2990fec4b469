/**
 * `mailbridge setup entra`: the Azure CLI flavour is checked by bash itself
 * (syntax, the value each quoted word holds) and run end to end against a
 * fake `az` that records its arguments; the PowerShell flavour, for which no
 * interpreter is at hand, is checked for its steps, its quoting (through
 * `psString`) and for being pure ASCII.
 */
import { spawnSync } from 'node:child_process';
import { randomUUID, X509Certificate } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setupEntraCommand } from '../../src/cli/commands/setup-entra.js';
import { CLOUD_NAMES } from '../../src/config/clouds.js';
import {
  type GeneratedCertificate,
  generateCertificate,
  writeCertificateFiles,
} from '../../src/setup/certificate.js';
import {
  AZ_CLOUD_NAMES,
  type EntraScriptOptions,
  EXCHANGE_APPLICATION_PERMISSIONS,
  EXCHANGE_ONLINE_APP_ID,
  entraPermissions,
  GRAPH_POWERSHELL_ENVIRONMENTS,
  renderEntraScript,
} from '../../src/setup/entra-script.js';
import { psString } from '../../src/setup/powershell.js';
import { findUnsafeCharacter, shQuote } from '../../src/setup/shell-quote.js';
import { runCommand } from '../helpers/run-command.js';
import { parsePowerShell } from './powershell-grammar.js';

const GUID_ANYWHERE = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

/** Names that would run something if any layer spliced them in unquoted. */
function hostileNames(dir: string): string[] {
  return [
    "O'Brien's mail",
    `x'; touch ${dir}/pwned-1; echo '`,
    `$(touch ${dir}/pwned-2)`,
    `\`touch ${dir}/pwned-3\``,
    `"; touch ${dir}/pwned-4; "`,
    `\\'\\"\\\\ $HOME \${PATH} !! * ? [a] {b,c} ~ # & | ; < > ( )`,
    "''''",
    '--help',
    '-n',
    'Mailbrücke 郵便',
  ];
}

function bash(script: string, env: Record<string, string> = {}) {
  const result = spawnSync('bash', ['--norc', '--noprofile', '-c', script], {
    encoding: 'utf8',
    env: { PATH: '/usr/bin:/bin', ...env },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The value of one `NAME=...` line of the script, as bash reads it. */
function bashValue(script: string, name: string): string {
  const line = script.split('\n').find((l) => l.startsWith(`${name}=`));
  if (!line) throw new Error(`no ${name}= line`);
  const result = bash(`${line}\nprintf '%s' "$${name}"`);
  expect(result.stderr).toBe('');
  return result.stdout;
}

let dir: string;
let certificate: GeneratedCertificate;
let certPaths: Awaited<ReturnType<typeof writeCertificateFiles>>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mailbridge-setup-entra-'));
  certificate = generateCertificate({ keyBits: 2048 });
  certPaths = await writeCertificateFiles(certificate, { outDir: join(dir, 'certs') });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function render(options: Partial<EntraScriptOptions> = {}): string {
  return renderEntraScript({ shell: 'az', ...options });
}

describe('shQuote', () => {
  it.each([
    ['plain', "'plain'"],
    ['', "''"],
    ["it's", "'it'\\''s'"],
    ['$(id) `id` $HOME "x" \\', '\'$(id) `id` $HOME "x" \\\''],
  ])('quotes %j as %s', (value, quoted) => {
    expect(shQuote(value)).toBe(quoted);
    expect(bash(`printf '%s' ${quoted}`).stdout).toBe(value);
  });

  it.each([
    'a\nb',
    'a\rb',
    'a\tb',
    'a\u0000b',
    'a\u007fb',
    'a\u0085b',
    'a\u2028b',
    'a\u202eb',
    'a\u2066b',
    'a\u200bb',
    '\ufeffa',
  ])('refuses control and format characters (%j)', (value) => {
    expect(findUnsafeCharacter(value)).toMatch(/^U\+[0-9A-F]{4}$/);
    expect(() => shQuote(value, 'The app name')).toThrow(
      expect.objectContaining({ code: 'SETUP_UNSAFE_VALUE', exitCode: 2 }),
    );
  });
});

describe('Azure CLI script', () => {
  it('has every step, with the Exchange Online resource app id and the permissions by name', () => {
    const script = render({ certificate: certificate.certificatePem });
    expect(script.startsWith('#!/usr/bin/env bash\n')).toBe(true);
    expect(script).toContain('set -euo pipefail');
    expect(script).toContain(`EXCHANGE_APP_ID='${EXCHANGE_ONLINE_APP_ID}'`);
    expect(script).toContain(
      "EXCHANGE_ROLES=('IMAP.AccessAsApp' 'POP.AccessAsApp' 'SMTP.SendAsApp')",
    );
    for (const step of [
      'az cloud set --name "$AZ_CLOUD"',
      'az ad sp show --id "$EXCHANGE_APP_ID"',
      "appRoles[?value=='$role' && contains(allowedMemberTypes, 'Application')].id",
      'az ad app list --filter "$APP_FILTER"',
      'az ad app create --display-name "$APP_NAME" --sign-in-audience AzureADMyOrg',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: bash source
      'az ad app permission add --id "$APP_ID" --api "$EXCHANGE_APP_ID" --api-permissions "${MISSING[@]}"',
      'MISSING+=("$role_id=Role")',
      'az ad sp create --id "$APP_ID"',
      'az ad app permission admin-consent --id "$APP_ID"',
      'az ad app credential reset --id "$APP_ID" --cert "@$CERT_FILE" --append',
      'az ad sp show --id "$APP_ID" --query id --output tsv',
      'New-ServicePrincipal -AppId %s -ObjectId %s',
    ]) {
      expect(script).toContain(step);
    }
  });

  it('hard-codes no app-role id: the only GUID in it is the Exchange Online app id', () => {
    for (const shell of ['az', 'pwsh'] as const) {
      const script = render({ shell, certificate: certificate.certificatePem });
      const guids = new Set((script.match(GUID_ANYWHERE) ?? []).map((g) => g.toLowerCase()));
      expect([...guids]).toEqual([EXCHANGE_ONLINE_APP_ID]);
    }
  });

  it('passes bash -n with hostile app names, each quoted word holding exactly the name', () => {
    for (const name of hostileNames(dir)) {
      const script = render({ appName: name, certificate: certificate.certificatePem });
      const check = spawnSync('bash', ['--norc', '--noprofile', '-n'], {
        input: script,
        encoding: 'utf8',
      });
      expect(check.stderr).toBe('');
      expect(check.status).toBe(0);
      expect(bashValue(script, 'APP_NAME')).toBe(name);
      expect(bashValue(script, 'APP_FILTER')).toBe(
        `displayName eq '${name.replaceAll("'", "''")}'`,
      );
    }
  });

  it('embeds the certificate (public part only) as PEM lines', () => {
    const script = render({ certificate: certificate.certificatePem });
    const block = /printf '%s\\n' \\\n([\s\S]*?)\n {2}>"\$CERT_FILE"/.exec(script)?.[1];
    if (!block) throw new Error('no certificate block');
    const pem = bash(`printf '%s\\n' ${block.replaceAll('\\\n', ' ')}`).stdout;
    expect(new X509Certificate(pem).raw.equals(certificate.certificateDer)).toBe(true);
    expect(script).not.toContain('PRIVATE KEY');
    expect(script).toContain(`CERT_SHA1_HEX='${certificate.thumbprintSha1}'`);
    expect(script).toContain(certificate.thumbprintSha256);
  });

  it('takes only the certificate from a PEM that also holds the key', () => {
    const combined = `${certificate.privateKey.reveal()}${certificate.certificatePem}`;
    const script = render({ certificate: combined });
    expect(script).not.toContain('PRIVATE KEY');
    const keyLine = certificate.privateKey.reveal().split('\n')[3] ?? '';
    expect(script).not.toContain(keyLine);
  });

  it('leaves the upload out, with directions, when no certificate is given', () => {
    const script = render();
    expect(script).not.toContain('credential reset');
    expect(script).toContain('mailbridge setup cert --out-dir DIR');
    expect(spawnSync('bash', ['--norc', '--noprofile', '-n'], { input: script }).status).toBe(0);
  });

  it.each(CLOUD_NAMES)('sets the Azure CLI cloud for %s', (cloud) => {
    const script = render({ cloud });
    expect(script).toContain(`AZ_CLOUD='${AZ_CLOUD_NAMES[cloud]}'`);
  });

  it('refuses an expired certificate', () => {
    const later = new Date(certificate.notAfter.getTime() + 1000);
    expect(() => render({ certificate: certificate.certificateDer, now: later })).toThrow(
      expect.objectContaining({ code: 'SETUP_CERT_EXPIRED' }),
    );
  });

  it.each([
    ['', 'is empty'],
    ['   ', 'is empty'],
    ['two\nlines', 'control character U+000A'],
    ['tab\there', 'control character U+0009'],
    ['rtl\u202eeman', 'control character U+202E'],
    [' padded', 'starts or ends with a space'],
    ['x'.repeat(121), 'longer than 120'],
  ])('refuses the app name %j', (name, message) => {
    for (const shell of ['az', 'pwsh'] as const) {
      expect(() => render({ shell, appName: name })).toThrow(
        expect.objectContaining({
          code: 'SETUP_APP_NAME',
          exitCode: 2,
          message: expect.stringContaining(message),
        }),
      );
    }
  });
});

describe('Azure CLI script run against a fake az', () => {
  const tenantId = randomUUID();
  const newAppId = randomUUID();
  const spId = randomUUID();
  // Made-up role ids: the script must use whatever the service principal answers.
  const roleIds = Object.fromEntries(
    EXCHANGE_APPLICATION_PERMISSIONS.map((role) => [role, randomUUID()]),
  );
  let fakeDir: string;

  beforeAll(async () => {
    fakeDir = join(dir, 'fake-bin');
    await mkdir(fakeDir);
    const fake = `#!/usr/bin/env node
const fs = require('node:fs');
const args = process.argv.slice(2);
const env = process.env;
const tenantId = ${JSON.stringify(tenantId)}, newAppId = ${JSON.stringify(newAppId)}, spId = ${JSON.stringify(spId)};
const roleIds = ${JSON.stringify(roleIds)};
const is = (...words) => words.every((word, i) => args[i] === word);
const option = (name) => { const i = args.indexOf(name); return i < 0 ? undefined : args[i + 1]; };
const entry = { args };
let out = '';
if (is('cloud', 'set') || is('ad', 'app', 'permission', 'add') || is('ad', 'app', 'permission', 'delete') || is('ad', 'app', 'permission', 'admin-consent')) {
} else if (is('account', 'show')) {
  if (option('--query') === 'tenantId') out = tenantId;
} else if (is('ad', 'sp', 'show') && option('--id') === ${JSON.stringify(EXCHANGE_ONLINE_APP_ID)}) {
  out = roleIds[/value=='([^']*)'/.exec(option('--query'))[1]] || '';
} else if (is('ad', 'app', 'list')) {
  out = env.FAKE_APPS || '';
} else if (is('ad', 'app', 'create')) {
  out = newAppId;
} else if (is('ad', 'app', 'show')) {
  out = env.FAKE_PRESENT_ROLES || '';
} else if (is('ad', 'sp', 'list')) {
  out = env.FAKE_SP || '';
} else if (is('ad', 'sp', 'create')) {
  out = spId;
} else if (is('ad', 'app', 'credential', 'list')) {
  out = env.FAKE_KEY_IDS || '';
} else if (is('ad', 'app', 'credential', 'reset')) {
  entry.uploaded = fs.readFileSync(option('--cert').slice(1), 'utf8');
} else if (is('ad', 'sp', 'show')) {
  out = spId;
} else {
  fs.appendFileSync(env.FAKE_AZ_LOG, JSON.stringify({ unknown: args }) + '\\n');
  process.exit(2);
}
fs.appendFileSync(env.FAKE_AZ_LOG, JSON.stringify(entry) + '\\n');
if (out) process.stdout.write(out + '\\n');
`;
    await writeFile(join(fakeDir, 'az'), fake);
    await chmod(join(fakeDir, 'az'), 0o755);
  });

  async function runScript(script: string, env: Record<string, string> = {}) {
    const log = join(dir, `az-${randomUUID()}.log`);
    const path = join(dir, `entra-${randomUUID()}.sh`);
    await writeFile(path, script);
    const result = spawnSync('bash', ['--norc', '--noprofile', path], {
      encoding: 'utf8',
      env: {
        PATH: `${fakeDir}:${dirname(process.execPath)}:/usr/bin:/bin`,
        HOME: dir,
        TMPDIR: dir,
        FAKE_AZ_LOG: log,
        ...env,
      },
    });
    const calls = (await readFile(log, 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { args: string[]; uploaded?: string; unknown?: string[] });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr, calls };
  }

  const names = (calls: { args: string[] }[]) =>
    calls.map((call) => call.args.slice(0, call.args[0] === 'ad' ? 3 : 2).join(' '));

  it('creates everything on a first run and passes hostile names through untouched', async () => {
    // The names that would act if spliced in, and a non-ASCII one (each run starts ~16 processes).
    for (const name of [...hostileNames(dir).slice(0, 5), 'Mailbrücke 郵便']) {
      const script = render({ appName: name, certificate: certificate.certificatePem });
      const run = await runScript(script);
      expect(run.stderr).not.toContain('error');
      expect(run.code).toBe(0);
      expect(run.calls.filter((call) => call.unknown)).toEqual([]);
      expect(names(run.calls)).toEqual([
        'cloud set',
        'account show',
        'account show',
        'ad sp show',
        'ad sp show',
        'ad sp show',
        'ad app list',
        'ad app create',
        'ad app show',
        'ad app permission',
        'ad sp list',
        'ad sp create',
        'ad app permission',
        'ad app credential',
        'ad app credential',
        'ad sp show',
      ]);
      const create = run.calls.find((call) => call.args[2] === 'create' && call.args[1] === 'app');
      expect(create?.args.slice(3, 5)).toEqual(['--display-name', name]);
      const list = run.calls.find((call) => call.args[2] === 'list' && call.args[1] === 'app');
      expect(list?.args[4]).toBe(`displayName eq '${name.replaceAll("'", "''")}'`);
      const add = run.calls.find((call) => call.args[3] === 'add');
      expect(add?.args).toEqual([
        'ad',
        'app',
        'permission',
        'add',
        '--id',
        newAppId,
        '--api',
        EXCHANGE_ONLINE_APP_ID,
        '--api-permissions',
        ...EXCHANGE_APPLICATION_PERMISSIONS.map((role) => `${roleIds[role]}=Role`),
        '--output',
        'none',
      ]);
      const consent = run.calls.find((call) => call.args[3] === 'admin-consent');
      expect(consent?.args).toEqual(['ad', 'app', 'permission', 'admin-consent', '--id', newAppId]);
      const upload = run.calls.find((call) => call.uploaded !== undefined);
      expect(upload?.args).toEqual(expect.arrayContaining(['--id', newAppId, '--append']));
      expect(
        new X509Certificate(upload?.uploaded ?? '').raw.equals(certificate.certificateDer),
      ).toBe(true);
      expect(run.stdout).toBe(
        [
          `Tenant (directory) id:            ${tenantId}`,
          `Application (client) id:          ${newAppId}`,
          `Enterprise Application object id: ${spId}`,
          'Next, in Exchange Online PowerShell (Connect-ExchangeOnline):',
          `  New-ServicePrincipal -AppId ${newAppId} -ObjectId ${spId}`,
          '',
        ].join('\n'),
      );
    }
    for (const n of [1, 2, 3, 4]) {
      await expect(stat(join(dir, `pwned-${n}`))).rejects.toMatchObject({ code: 'ENOENT' });
    }
  }, 120_000);

  it('reuses the app, permissions, service principal and certificate on a second run', async () => {
    const existingApp = randomUUID();
    const run = await runScript(render({ certificate: certificate.certificatePem }), {
      FAKE_APPS: existingApp,
      FAKE_PRESENT_ROLES: Object.values(roleIds).join('\n'),
      FAKE_SP: spId,
      FAKE_KEY_IDS: `${randomUUID()}\n${Buffer.from(certificate.thumbprintSha1, 'hex').toString('base64')}`,
    });
    expect(run.code).toBe(0);
    const called = names(run.calls);
    expect(called).not.toContain('ad app create');
    expect(called).not.toContain('ad sp create');
    expect(run.calls.some((call) => call.args[3] === 'add')).toBe(false);
    expect(run.calls.some((call) => call.args[3] === 'reset')).toBe(false);
    // Consent is granted again: it is idempotent and may have been revoked.
    expect(run.calls.some((call) => call.args[3] === 'admin-consent')).toBe(true);
    expect(run.stderr).toContain(`reusing mailbridge (${existingApp})`);
    expect(run.stderr).toContain('already uploaded');
    expect(run.stdout).toContain(`Application (client) id:          ${existingApp}`);
  });

  it('adds only the permissions that are missing', async () => {
    const imap = roleIds['IMAP.AccessAsApp'] ?? '';
    const run = await runScript(render(), { FAKE_APPS: randomUUID(), FAKE_PRESENT_ROLES: imap });
    const add = run.calls.find((call) => call.args[3] === 'add');
    expect(add?.args).toContain(`${roleIds['POP.AccessAsApp']}=Role`);
    expect(add?.args).toContain(`${roleIds['SMTP.SendAsApp']}=Role`);
    expect(add?.args).not.toContain(`${imap}=Role`);
  });

  it('--scoped-smtp: requests only the others, and removes an SMTP.SendAsApp an earlier run requested', async () => {
    const imap = roleIds['IMAP.AccessAsApp'] ?? '';
    const smtp = roleIds['SMTP.SendAsApp'] ?? '';
    const script = render({
      permissions: entraPermissions(['imap', 'smtp'], true),
      scopedSmtp: true,
    });
    expect(script).toContain("EXCHANGE_ROLES=('IMAP.AccessAsApp')");
    const run = await runScript(script, { FAKE_APPS: randomUUID(), FAKE_PRESENT_ROLES: smtp });
    expect(run.code).toBe(0);
    expect(run.calls.filter((call) => call.unknown)).toEqual([]);
    const add = run.calls.find((call) => call.args[3] === 'add');
    expect(add?.args).toContain(`${imap}=Role`);
    expect(add?.args).not.toContain(`${smtp}=Role`);
    const remove = run.calls.find((call) => call.args[3] === 'delete');
    expect(remove?.args).toEqual([
      'ad',
      'app',
      'permission',
      'delete',
      '--id',
      expect.any(String),
      '--api',
      EXCHANGE_ONLINE_APP_ID,
      '--api-permissions',
      smtp,
      '--output',
      'none',
    ]);
    expect(run.stderr).toContain('removed SMTP.SendAsApp from the requested permissions');
    expect(run.stderr).toContain('the Exchange scope');
    // Nothing to remove when it was never requested.
    const again = await runScript(script, { FAKE_APPS: randomUUID(), FAKE_PRESENT_ROLES: imap });
    expect(again.calls.some((call) => call.args[3] === 'delete')).toBe(false);
  }, 120_000);

  it('--scoped-smtp with SMTP only requests and consents to nothing, and still succeeds', async () => {
    const script = render({ permissions: entraPermissions(['smtp'], true), scopedSmtp: true });
    expect(script).toContain('EXCHANGE_ROLES=()');
    const run = await runScript(script, { FAKE_APPS: randomUUID() });
    expect(run.stderr).not.toContain('error');
    expect(run.code).toBe(0);
    expect(run.calls.some((call) => call.args[3] === 'add')).toBe(false);
    expect(run.calls.some((call) => call.args[3] === 'admin-consent')).toBe(false);
    expect(run.stderr).toContain('nothing to consent to');
  }, 120_000);

  it('stops when two app registrations have the name', async () => {
    const run = await runScript(render(), { FAKE_APPS: `${randomUUID()}\n${randomUUID()}` });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('error: 2 app registrations are named mailbridge');
    expect(names(run.calls)).not.toContain('ad app create');
  });
});

describe('the permissions requested', () => {
  it.each([
    [['imap', 'smtp'], false, ['IMAP.AccessAsApp', 'SMTP.SendAsApp']],
    [['imap', 'pop', 'smtp'], false, ['IMAP.AccessAsApp', 'POP.AccessAsApp', 'SMTP.SendAsApp']],
    [['pop'], false, ['POP.AccessAsApp']],
    [['imap', 'pop', 'smtp'], true, ['IMAP.AccessAsApp', 'POP.AccessAsApp']],
    [['smtp'], true, []],
  ] as const)('protocols %j, scoped SMTP %s: %j', (protocols, scoped, expected) => {
    expect(entraPermissions(protocols, scoped)).toEqual(expected);
  });

  it('never requests SMTP.SendAsApp with scopedSmtp, even when asked to', () => {
    const script = render({ shell: 'pwsh', permissions: ['SMTP.SendAsApp'], scopedSmtp: true });
    expect(script).toContain('$ExchangeRoles = @()');
  });

  it('--scoped-smtp in PowerShell drops the request and revokes an earlier grant', async () => {
    const script = render({
      shell: 'pwsh',
      permissions: entraPermissions(['imap', 'smtp'], true),
      scopedSmtp: true,
    });
    expect(script).toContain("$ExchangeRoles = @('IMAP.AccessAsApp')");
    expect(script).toContain("$WithheldRoleName = 'SMTP.SendAsApp'");
    expect(script).toContain(
      '$exchangeAccess = @($exchangeAccess | Where-Object { -not ($Withheld -and $_.Id -eq $Withheld.Id) })',
    );
    expect(script).toContain(
      'Remove-MgServicePrincipalAppRoleAssignment -ServicePrincipalId $Sp.Id -AppRoleAssignmentId $grant.Id',
    );
    const ps = await parsePowerShell(script);
    expect(ps.errors.map((e) => e.text)).toEqual([]);
    const revoke = ps.commands.find((c) => c.name === 'Remove-MgServicePrincipalAppRoleAssignment');
    let loop = revoke?.node.parent;
    while (loop && loop.type !== 'foreach_statement') loop = loop.parent;
    expect(loop?.text).toContain('$_.AppRoleId -eq $Withheld.Id');
  });

  it('setup entra requests IMAP and SMTP by default, --protocols chooses, --scoped-smtp leaves SMTP out', async () => {
    const byDefault = await runCommand(setupEntraCommand, []);
    expect(byDefault.stdout).toContain("EXCHANGE_ROLES=('IMAP.AccessAsApp' 'SMTP.SendAsApp')");
    const all = await runCommand(setupEntraCommand, ['--protocols', 'imap,pop,smtp']);
    expect(all.stdout).toContain(
      "EXCHANGE_ROLES=('IMAP.AccessAsApp' 'POP.AccessAsApp' 'SMTP.SendAsApp')",
    );
    const scoped = await runCommand(setupEntraCommand, [
      '--protocols',
      'pop,smtp',
      '--scoped-smtp',
    ]);
    expect(scoped.stdout).toContain("EXCHANGE_ROLES=('POP.AccessAsApp')");
    expect(scoped.stdout).toContain("WITHHELD_ROLE='SMTP.SendAsApp'");
    const typo = await runCommand(setupEntraCommand, ['--protocols', 'imap,smpt']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain("'smpt' is not a protocol (did you mean smtp?)");
  });
});

describe('Microsoft Graph PowerShell script', () => {
  it('has every step, with the Exchange Online resource app id and the permissions by name', () => {
    const script = render({ shell: 'pwsh', certificate: certificate.certificatePem });
    expect(script).toContain("$ErrorActionPreference = 'Stop'");
    expect(script).toContain(`$ExchangeAppId = '${EXCHANGE_ONLINE_APP_ID}'`);
    expect(script).toContain(
      "$ExchangeRoles = @('IMAP.AccessAsApp', 'POP.AccessAsApp', 'SMTP.SendAsApp')",
    );
    for (const step of [
      "Connect-MgGraph -Environment $GraphEnvironment -Scopes 'Application.ReadWrite.All', 'AppRoleAssignment.ReadWrite.All'",
      'Get-MgServicePrincipal -Filter "appId eq \'$ExchangeAppId\'"',
      "$_.Value -eq $name -and $_.AllowedMemberTypes -contains 'Application'",
      'Get-MgApplication -Filter $AppFilter -All',
      "New-MgApplication -DisplayName $AppName -SignInAudience 'AzureADMyOrg'",
      'Update-MgApplication -ApplicationId $App.Id -RequiredResourceAccess $required',
      'New-MgServicePrincipal -AppId $App.AppId',
      'New-MgServicePrincipalAppRoleAssignment -ServicePrincipalId $Sp.Id -PrincipalId $Sp.Id',
      '-ResourceId $Exchange.Id -AppRoleId $role.Id',
      'Update-MgApplication -ApplicationId $App.Id -KeyCredentials $keys',
      "Type = 'AsymmetricX509Cert'",
      'Write-Host "Enterprise Application object id: $SpObjectId"',
    ]) {
      expect(script).toContain(step);
    }
    expect(script).toContain(
      `$CertificateBase64 = '${certificate.certificateDer.toString('base64')}'`,
    );
    expect(script).not.toContain('PRIVATE KEY');
  });

  it('quotes the app name with psString, in a data line of its own', () => {
    for (const name of ["O'Brien's mail", '$(Remove-Item C:\\) `n "x" ; # @{}', "''''"]) {
      const script = render({ shell: 'pwsh', appName: name });
      expect(script).toContain(`\n$AppName = ${psString(name)}\n`);
      expect(script).toContain(
        `\n$AppFilter = ${psString(`displayName eq '${name.replaceAll("'", "''")}'`)}\n`,
      );
      // The name appears nowhere else.
      const rest = script.replace(/\n\$AppFilter = .*\n/, '\n');
      expect(rest.split(psString(name)).length).toBe(2);
    }
  });

  it('is pure ASCII, for Windows PowerShell 5.1 reading a file without a byte order mark', () => {
    const script = render({ shell: 'pwsh', certificate: certificate.certificatePem });
    expect([...script].filter((c) => c > '~' || (c < ' ' && c !== '\n'))).toEqual([]);
  });

  it.each(['Mailbrücke', 'a\u2019b', 'a\u2018b', 'a\u201ab', 'a\u201bb'])(
    'refuses the non-ASCII app name %j (typographic quotes included)',
    (name) => {
      expect(() => render({ shell: 'pwsh', appName: name })).toThrow(
        expect.objectContaining({ code: 'SETUP_APP_NAME' }),
      );
    },
  );

  it.each(CLOUD_NAMES)('connects to the Graph environment of %s', (cloud) => {
    const script = render({ shell: 'pwsh', cloud });
    expect(script).toContain(`$GraphEnvironment = '${GRAPH_POWERSHELL_ENVIRONMENTS[cloud]}'`);
  });
});

describe('setup entra command', () => {
  it('prints the az script, reading the certificate file (PEM or DER)', async () => {
    for (const file of [certPaths.certificatePem, certPaths.certificateDer]) {
      const run = await runCommand(setupEntraCommand, [
        '--cert',
        file,
        '--app-name',
        'mail archive',
      ]);
      expect(run.code).toBe(0);
      expect(run.stderr).toBe('');
      expect(run.stdout).toBe(
        render({
          appName: 'mail archive',
          certificate: certificate.certificatePem,
          permissions: ['IMAP.AccessAsApp', 'SMTP.SendAsApp'],
        }),
      );
    }
  });

  it('prints the pwsh script for --shell pwsh --cloud usgov-high', async () => {
    const run = await runCommand(setupEntraCommand, ['--shell', 'pwsh', '--cloud', 'usgov-high']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("$GraphEnvironment = 'USGov'");
  });

  it('warns that Azure CLI has no DoD cloud', async () => {
    const run = await runCommand(setupEntraCommand, ['--cloud', 'usgov-dod']);
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/^mailbridge: warning: Azure CLI has no DoD cloud/);
  });

  it('refuses a certificate file that holds the private key', async () => {
    const run = await runCommand(setupEntraCommand, ['--cert', certPaths.combinedPem]);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('mailbridge: error SETUP_CERT_HAS_PRIVATE_KEY:');
    expect(run.stderr).toContain('mailbridge.crt or mailbridge.cer');
  });

  it.each([
    [['--cert', '/nonexistent/mailbridge.crt'], 'SETUP_CERT_UNREADABLE'],
    [['--shell', 'fish'], 'USAGE'],
    [['--cloud', 'mars'], 'SETUP_CLOUD_INVALID'],
    [['--app-name', 'a\nb'], 'SETUP_APP_NAME'],
  ])('refuses %j with exit 2 (%s)', async (argv, code) => {
    const run = await runCommand(setupEntraCommand, argv);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(`mailbridge: error ${code}: `);
  });

  it('refuses a file that is not a certificate', async () => {
    const path = join(dir, 'not-a-cert.crt');
    await writeFile(path, 'hello\n');
    const run = await runCommand(setupEntraCommand, ['--cert', path]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('SETUP_CERT_INVALID');
  });
});
