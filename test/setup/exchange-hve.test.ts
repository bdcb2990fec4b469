/**
 * The High Volume Email parts of the setup scripts, parsed with the
 * PowerShell grammar: `setup exchange --hve-account` creates the HVE account
 * only when Get-MailUser -HVEAccount does not list it, adds the app to its
 * allowed apps only when missing, reads both back; `--remove` undoes it in
 * reverse; `setup entra --hve` requests Exchange Online's Mail.Send. (The
 * checks every script variant gets, an --hve-account one included, are in
 * exchange-script.test.ts.)
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { Node } from 'web-tree-sitter';
import { COMMON_FLAGS, parseCommandArgs } from '../../src/cli/args.js';
import type { Command } from '../../src/cli/command.js';
import { setupEntraCommand } from '../../src/cli/commands/setup-entra.js';
import { setupExchangeCommand } from '../../src/cli/commands/setup-exchange.js';
import { ConfigurationError } from '../../src/errors.js';
import { entraPermissions, renderEntraScript } from '../../src/setup/entra-script.js';
import { type ExchangePlanInput, parseExchangePlan } from '../../src/setup/exchange-plan.js';
import { renderExchangeScript } from '../../src/setup/exchange-script.js';
import {
  ancestors,
  literalValue,
  type ParsedScript,
  parsePowerShell,
} from './powershell-grammar.js';

const APP_ID = '11111111-2222-3333-4444-555555555555';
const OBJECT_ID = '66666666-7777-8888-9999-aaaaaaaaaaaa';
const HVE = 'notify@contoso.com';
const base: ExchangePlanInput = {
  tenant: 'contoso.onmicrosoft.com',
  appId: APP_ID,
  objectId: OBJECT_ID,
  mailboxes: ['archive@contoso.com'],
  hveAccount: HVE,
};

async function render(input: ExchangePlanInput): Promise<ParsedScript> {
  return parsePowerShell(renderExchangeScript(parseExchangePlan(input)));
}

const named = (ps: ParsedScript, name: string) => ps.commands.filter((c) => c.name === name);

/** The condition of the if/elseif chain a node sits in, and whether it is in its else. */
function guardOf(node: Node): { condition: string; inElse: boolean } {
  const chain = ancestors(node).find((a) => a.type === 'if_statement') as Node;
  return {
    condition: chain.childForFieldName('condition')?.text.trim() ?? '',
    inElse: ancestors(node).some((a) => a.type === 'else_clause' && a.parent?.equals(chain)),
  };
}

describe('setup exchange --hve-account: the install script', () => {
  it('creates the HVE account only when Get-MailUser -HVEAccount does not list it', async () => {
    const ps = await render(base);
    expect(ps.errors).toEqual([]);
    const [create] = named(ps, 'New-MailUser');
    expect(create?.parameters).toEqual({
      HVEAccount: true,
      Name: '$HveAccount',
      PrimarySmtpAddress: '$HveAccount',
      Password: '$HvePassword',
    });
    expect(guardOf(create?.node as Node)).toEqual({ condition: 'Get-HveAccount', inElse: true });
    // The lookup lists HVE accounts and compares the primary address.
    expect(named(ps, 'Get-MailUser')[0]?.parameters).toEqual({
      HVEAccount: true,
      ResultSize: 'Unlimited',
    });
    // The password is made in the script and never printed or passed elsewhere.
    expect(ps.source).toContain(
      '[System.Security.Cryptography.RandomNumberGenerator]::Create().GetBytes($Bytes)',
    );
    expect(ps.source.match(/\$HvePassword/g)).toHaveLength(2);
  });

  it("adds the app (the Enterprise Application's object id) to the allowed apps only when missing", async () => {
    const ps = await render(base);
    const [add] = named(ps, 'Add-HVEAppAccess');
    expect(add?.parameters).toEqual({ Identity: '$HveAccount', AppIds: '$ObjectId' });
    expect(guardOf(add?.node as Node)).toEqual({ condition: 'Test-HveAppAccess', inElse: true });
    const settings = named(ps, 'Get-HVEAccountSettings')[0];
    expect(settings?.parameters).toEqual({ Identity: '$HveAccount' });
    expect(
      ancestors(settings?.node as Node)
        .find((a) => a.type === 'function_statement')
        ?.text.startsWith('function Get-HveAllowedApps'),
    ).toBe(true);
  });

  it('reads both back and reports each gap', async () => {
    const ps = await render(base);
    const readBack = ps.source.slice(ps.source.indexOf("Write-Step 'Read-back"));
    expect(readBack).toContain('$Gaps += "no HVE account $HveAccount (Get-MailUser -HVEAccount)"');
    expect(readBack).toContain(
      '$Gaps += "app $ObjectId is not in the allowed apps of $HveAccount (Get-HVEAccountSettings)"',
    );
  });

  it('without --hve-account, no HVE step, no $HveAccount', async () => {
    const ps = await render({ ...base, hveAccount: undefined });
    for (const name of ['New-MailUser', 'Add-HVEAppAccess', 'Get-HVEAccountSettings']) {
      expect(named(ps, name)).toEqual([]);
    }
    expect(ps.source).not.toContain('$HveAccount');
  });
});

describe('setup exchange --hve-account --remove', () => {
  it('takes the app off the account, then removes the account only when no other app uses it', async () => {
    const ps = await render({ ...base, remove: true });
    expect(ps.errors).toEqual([]);
    expect(named(ps, 'New-MailUser')).toEqual([]);
    expect(named(ps, 'Add-HVEAppAccess')).toEqual([]);
    const [revoke] = named(ps, 'Remove-HVEAppAccess');
    expect(revoke?.parameters).toEqual({ Identity: '$HveAccount', AppIds: '$ObjectId' });
    expect(guardOf(revoke?.node as Node).condition).toBe('-not (Test-HveAppAccess)');
    const [remove] = named(ps, 'Remove-MailUser');
    expect(remove?.parameters).toEqual({ Identity: '$HveAccount', Confirm: '$false' });
    expect(guardOf(remove?.node as Node)).toEqual({ condition: '$KeepHveAccount', inElse: true });
    expect(ps.source).toContain('} elseif ($OtherApps.Count -gt 0) {');
    expect(ps.source).toContain(
      'param([switch]$WhatIf, [switch]$KeepServicePrincipal, [switch]$KeepHveAccount)',
    );
    // Before the service principal goes, and checked in the read-back.
    expect(revoke?.node.startIndex).toBeLessThan(
      named(ps, 'Remove-ServicePrincipal')[0]?.node.startIndex ?? 0,
    );
    expect(ps.source).toContain(
      '$Gaps += "the app is still in the allowed apps of the HVE account $HveAccount"',
    );
  });
});

describe('hostile --hve-account values', () => {
  it.each([
    "x@y.com'; Remove-Mailbox -Identity ceo; '",
    '$(Invoke-Evil)@x.com',
    'a`b@contoso.com',
    'a@contoso.com\nRemove-Mailbox ceo',
    'o\u2019brien@contoso.com',
    'not-an-address',
  ])('%j is refused before any script is written, named hveAccount', (hveAccount) => {
    try {
      parseExchangePlan({ ...base, hveAccount });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigurationError);
      expect((error as ConfigurationError).problems.map((p) => p.field)).toEqual(['hveAccount']);
    }
  });

  it('an address with an apostrophe stays one inert literal assigned to $HveAccount', async () => {
    const address = "o'brien+hve@contoso.com";
    const ps = await render({ ...base, hveAccount: address });
    expect(ps.errors).toEqual([]);
    const hits = ps.verbatimStrings.filter((n) => literalValue(n) === address);
    expect(hits).toHaveLength(1);
    const assignment = ancestors(hits[0] as Node).find((a) => a.type === 'assignment_expression');
    expect(assignment?.firstNamedChild?.text.trim()).toBe('$HveAccount');
  });
});

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

async function run(command: Command, argv: string[]) {
  const stdout = sink();
  const args = parseCommandArgs(argv, [...COMMON_FLAGS, ...command.flags]);
  const code = await command.run({
    args,
    io: { stdout: stdout.stream, stderr: sink().stream, env: {} },
    logger: { log() {} },
    loadConfig: () => Promise.reject(new Error('setup must not load credentials')),
  });
  return { code, stdout: stdout.text() };
}

describe('the flags', () => {
  it('setup exchange --hve-account ADDRESS writes the HVE steps', async () => {
    const { code, stdout } = await run(setupExchangeCommand, [
      '--tenant',
      'contoso.onmicrosoft.com',
      '--app-id',
      APP_ID,
      '--object-id',
      OBJECT_ID,
      '--mailbox',
      'archive@contoso.com',
      '--hve-account',
      HVE,
    ]);
    expect(code).toBe(0);
    expect(stdout).toContain(`$HveAccount = '${HVE}'`);
    expect(stdout).toContain('Add-HVEAppAccess -Identity $HveAccount -AppIds $ObjectId');
  });

  it('setup entra --hve requests Mail.Send besides the protocols’ permissions', async () => {
    expect(entraPermissions(['imap', 'smtp'], false, true)).toEqual([
      'IMAP.AccessAsApp',
      'SMTP.SendAsApp',
      'Mail.Send',
    ]);
    expect(entraPermissions(['smtp'], true, true)).toEqual(['Mail.Send']);
    expect(entraPermissions(['imap', 'smtp'], false)).not.toContain('Mail.Send');
    const { code, stdout } = await run(setupEntraCommand, ['--hve']);
    expect(code).toBe(0);
    expect(stdout).toContain("EXCHANGE_ROLES=('IMAP.AccessAsApp' 'SMTP.SendAsApp' 'Mail.Send')");
    const pwsh = renderEntraScript({
      shell: 'pwsh',
      permissions: entraPermissions(['imap', 'smtp'], false, true),
    });
    expect(pwsh).toContain("$ExchangeRoles = @('IMAP.AccessAsApp', 'SMTP.SendAsApp', 'Mail.Send')");
    expect((await parsePowerShell(pwsh)).errors).toEqual([]);
  });
});
