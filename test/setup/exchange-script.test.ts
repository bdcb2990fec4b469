import { describe, expect, it } from 'vitest';
import type { Node } from 'web-tree-sitter';
import { CLOUD_NAMES } from '../../src/config/clouds.js';
import { ConfigurationError } from '../../src/errors.js';
import {
  type ExchangePlan,
  type ExchangePlanInput,
  parseExchangePlan,
} from '../../src/setup/exchange-plan.js';
import { renderExchangeScript } from '../../src/setup/exchange-script.js';
import {
  ancestors,
  type CommandCall,
  literalValue,
  type ParsedScript,
  parsePowerShell,
  walk,
} from './powershell-grammar.js';

const APP_ID = '11111111-2222-3333-4444-555555555555';
const OBJECT_ID = '66666666-7777-8888-9999-aaaaaaaaaaaa';
const TENANT_ID = 'bbbbbbbb-cccc-dddd-eeee-ffffffffffff';

const base: ExchangePlanInput = {
  tenant: 'contoso.onmicrosoft.com',
  appId: APP_ID,
  objectId: OBJECT_ID,
  displayName: 'Contoso Archive Robot',
  mailboxes: ['archive@contoso.com', "o'brien@contoso.com", 'reports+nightly@contoso.com'],
};

/** Every combination of the options that change the script's shape. */
const VARIANTS: [string, ExchangePlanInput][] = [];
for (const remove of [false, true]) {
  for (const sendAs of [false, true]) {
    for (const enableProtocols of [false, true]) {
      for (const protocols of ['imap,smtp', 'imap,pop,smtp', 'pop']) {
        if (sendAs && !protocols.includes('smtp')) continue;
        VARIANTS.push([
          `${remove ? 'remove' : 'install'} sendAs=${sendAs} enable=${enableProtocols} ${protocols}`,
          { ...base, remove, sendAs, enableProtocols, protocols },
        ]);
      }
    }
  }
}
for (const cloud of CLOUD_NAMES) {
  VARIANTS.push([`cloud ${cloud}, tenant id`, { ...base, cloud, tenant: TENANT_ID }]);
}
VARIANTS.push(['one mailbox', { ...base, mailboxes: ['solo@contoso.com'] }]);
for (const remove of [false, true]) {
  for (const smtpScope of ['group:SMTP senders', 'mailboxes']) {
    for (const protocols of ['smtp', 'imap,pop,smtp']) {
      VARIANTS.push([
        `${remove ? 'remove' : 'install'} smtpScope=${smtpScope} ${protocols}`,
        { ...base, remove, smtpScope, protocols },
      ]);
    }
  }
}

for (const remove of [false, true]) {
  for (const extra of [{}, { smtpScope: 'mailboxes' }, { sendAs: true }]) {
    VARIANTS.push([
      `${remove ? 'remove' : 'install'} hveAccount ${JSON.stringify(extra)}`,
      { ...base, remove, hveAccount: 'notify@contoso.com', ...extra },
    ]);
  }
}

type Rendered = { plan: ExchangePlan; text: string; ps: ParsedScript };

/**
 * One parse per input: each variant's tests only read its script, and parsing
 * plus walking the tree was most of this file's CPU when every test did both.
 */
const rendered = new WeakMap<ExchangePlanInput, Promise<Rendered>>();

function render(input: ExchangePlanInput): Promise<Rendered> {
  let result = rendered.get(input);
  if (!result) {
    const plan = parseExchangePlan(input);
    const text = renderExchangeScript(plan);
    result = parsePowerShell(text).then((ps) => ({ plan, text, ps }));
    rendered.set(input, result);
  }
  return result;
}

/** The values that came from the user, and the variable each is assigned to. */
function userValues(plan: ExchangePlan): { value: string; variable: string }[] {
  return [
    { value: plan.tenant, variable: '$Tenant' },
    { value: plan.appId, variable: '$AppId' },
    { value: plan.objectId, variable: '$ObjectId' },
    ...(plan.remove ? [] : [{ value: plan.displayName, variable: '$DisplayName' }]),
    ...plan.mailboxes.map((value) => ({ value, variable: '$Mailboxes' })),
    ...(plan.smtpScope?.kind === 'group' && !plan.remove
      ? [{ value: plan.smtpScope.group, variable: '$ScopeGroup' }]
      : []),
    ...(plan.hveAccount ? [{ value: plan.hveAccount, variable: '$HveAccount' }] : []),
  ];
}

/** The variable a literal is assigned to (directly or inside @(...)). */
function assignedVariable(node: Node): string | undefined {
  const assignment = ancestors(node).find((a) => a.type === 'assignment_expression');
  return assignment?.firstNamedChild?.text.trim();
}

/** The text with every single-quoted literal blanked out. */
function textOutsideLiterals(ps: ParsedScript): string {
  let text = ps.source;
  for (const node of ps.verbatimStrings) {
    text =
      text.slice(0, node.startIndex) + ' '.repeat(node.text.length) + text.slice(node.endIndex);
  }
  return text;
}

const MUTATING = /^(Add|New|Set|Remove|Install)-/;
const mutations = (ps: ParsedScript) =>
  ps.commands.filter((c) => MUTATING.test(c.name) && c.name !== 'Set-StrictMode');
const named = (ps: ParsedScript, name: string) => ps.commands.filter((c) => c.name === name);

/** The `foreach ($Mailbox in $Mailboxes)` loop around a node, if any. */
function mailboxLoop(node: Node): Node | undefined {
  return ancestors(node).find(
    (a) => a.type === 'foreach_statement' && /^foreach \(\$Mailbox in \$Mailboxes\)/.test(a.text),
  );
}

function conditionText(ifLike: Node): string {
  return ifLike.childForFieldName('condition')?.text.trim() ?? '';
}

function endsFlow(block: Node): boolean {
  let found = false;
  walk(block, (n) => {
    if (n.type === 'flow_control_statement' && /^(continue|return|throw|break)\b/.test(n.text)) {
      found = true;
    }
  });
  return found;
}

/**
 * True when the node can only run without -WhatIf: it sits after an
 * `if ($WhatIf) { ...; continue|return|throw }` in an enclosing statement list,
 * or in the `else` of an if/elseif chain that tests $WhatIf.
 */
function dryRunGuarded(node: Node): boolean {
  let child: Node = node;
  for (const parent of ancestors(node)) {
    if (parent.type === 'statement_list') {
      for (const sibling of parent.namedChildren) {
        if (sibling.startIndex >= child.startIndex) break;
        if (
          sibling.type === 'if_statement' &&
          conditionText(sibling) === '$WhatIf' &&
          endsFlow(sibling)
        ) {
          return true;
        }
      }
    }
    if (parent.type === 'else_clause') {
      const chain = parent.parent;
      const conditions = [conditionText(chain as Node)];
      walk(chain as Node, (n) => {
        if (n.type === 'elseif_clause' && n.parent?.parent?.equals(chain as Node)) {
          conditions.push(conditionText(n));
        }
      });
      if (conditions.includes('$WhatIf')) return true;
    }
    child = parent;
  }
  return false;
}

describe.each(VARIANTS)('renderExchangeScript: %s', (_name, input) => {
  it('parses with the PowerShell grammar without errors', async () => {
    const { ps } = await render(input);
    expect(ps.errors.map((e) => `${e.type} at ${e.startPosition.row + 1}: ${e.text}`)).toEqual([]);
  });

  it('writes each user value exactly once, as one single-quoted literal in the data section', async () => {
    const { plan, ps } = await render(input);
    // literalValue also checks that PowerShell ends each literal where the grammar does.
    const literals = ps.verbatimStrings.map((node) => ({ node, value: literalValue(node) }));
    for (const { value, variable } of userValues(plan)) {
      const hits = literals.filter((l) => l.value === value);
      expect(hits, value).toHaveLength(1);
      expect(assignedVariable(hits[0]?.node as Node), value).toBe(variable);
    }
    const outside = textOutsideLiterals(ps).toLowerCase();
    for (const { value } of userValues(plan)) {
      expect(outside.includes(value.toLowerCase()), `${value} outside its literal`).toBe(false);
    }
  });

  it('assigns $Mailboxes exactly the planned mailboxes, in order', async () => {
    const { plan, ps } = await render(input);
    const elements = ps.verbatimStrings.filter((n) => assignedVariable(n) === '$Mailboxes');
    expect(elements.map(literalValue)).toEqual(plan.mailboxes);
  });

  it('is ASCII, stops on errors and has a dry-run switch', async () => {
    const { text, ps } = await render(input);
    expect(text).toMatch(/^[\x20-\x7E\n]*$/);
    expect(text).toContain("\n$ErrorActionPreference = 'Stop'\n");
    expect(text).toMatch(
      /\nparam\(\[switch\]\$WhatIf(, \[switch\]\$KeepServicePrincipal(, \[switch\]\$KeepHveAccount)?)?\)\n/,
    );
    // PowerShell reads "$Name:" as a scope or drive qualifier; a script with one fails to parse.
    expect(text).not.toMatch(/\$\w+:(?!\w)/);
    expect(text).not.toMatch(/ServiceId/);
    const first = ps.commands[0];
    expect(first?.name).toBe('Set-StrictMode');
  });

  it('changes nothing in a dry run: every mutating command is guarded by $WhatIf', async () => {
    const { ps } = await render(input);
    for (const command of mutations(ps)) {
      expect(dryRunGuarded(command.node), command.name).toBe(true);
    }
  });

  it('installs and imports ExchangeOnlineManagement, then connects to the right cloud', async () => {
    const { plan, ps, text } = await render(input);
    expect(named(ps, 'Install-Module')[0]?.parameters).toMatchObject({
      Name: 'ExchangeOnlineManagement',
      Scope: 'CurrentUser',
    });
    expect(named(ps, 'Import-Module')).toHaveLength(1);
    expect(named(ps, 'Connect-ExchangeOnline')[0]?.parameters).toEqual({
      ExchangeEnvironmentName: '$ExchangeEnvironment',
      ShowBanner: '$false',
    });
    const environment = {
      global: 'O365Default',
      'usgov-high': 'O365USGovGCCHigh',
      'usgov-dod': 'O365USGovDoD',
      china: 'O365China',
    }[plan.cloud];
    expect(text).toContain(`\n$ExchangeEnvironment = '${environment}'\n`);
    // The tenant check fits the kind of tenant value.
    if (/^[0-9a-f-]{36}$/.test(plan.tenant)) {
      expect(text).toContain('if ("$($Connection.TenantID)" -ne $Tenant) {');
    } else {
      expect(named(ps, 'Get-AcceptedDomain')).toHaveLength(1);
    }
  });

  it('checks every mailbox exists before the first change', async () => {
    const { ps } = await render(input);
    const check = named(ps, 'Get-EXOMailbox')[0];
    expect(check && mailboxLoop(check.node)).toBeTruthy();
    const firstChange = mutations(ps).find((c) => c.name !== 'Install-Module');
    expect(check?.node.startIndex).toBeLessThan(firstChange?.node.startIndex ?? 0);
  });
});

describe('the install script', () => {
  const full: ExchangePlanInput = {
    ...base,
    protocols: 'imap,pop,smtp',
    sendAs: true,
    enableProtocols: true,
  };

  it('registers the service principal only when Get-ServicePrincipal does not list it', async () => {
    const { ps } = await render(full);
    const [create] = named(ps, 'New-ServicePrincipal');
    expect(create?.parameters).toEqual({
      AppId: '$AppId',
      ObjectId: '$ObjectId',
      DisplayName: '$DisplayName',
    });
    const lookup = named(ps, 'Get-ServicePrincipal')[0];
    expect(lookup?.node.startIndex).toBeLessThan(create?.node.startIndex ?? 0);
    // New-ServicePrincipal is in the else of `if ($Found.Count -eq 1) ... elseif ($WhatIf)`.
    const chain = ancestors(create?.node as Node).find((a) => a.type === 'if_statement');
    expect(conditionText(chain as Node)).toBe('$Found.Count -eq 1');
    expect(ancestors(create?.node as Node).some((a) => a.type === 'else_clause')).toBe(true);
    // And an existing registration with another object id stops the script.
    expect(ps.source).toContain('if ("$($ServicePrincipal.ObjectId)" -ne $ObjectId) {');
  });

  it.each([
    ['Add-MailboxPermission', 'Test-FullAccess', 'Get-MailboxPermission'],
    ['Add-RecipientPermission', 'Test-SendAs', 'Get-RecipientPermission'],
  ])('guards %s per mailbox with %s (%s) first', async (add, test, get) => {
    const { ps } = await render(full);
    const [grant] = named(ps, add);
    const loop = mailboxLoop(grant?.node as Node);
    expect(loop).toBeDefined();
    // In the same loop, before the grant: if (Test-X $Mailbox) { ...; continue }
    const guard = named(ps, test).find(
      (c) =>
        mailboxLoop(c.node)?.equals(loop as Node) &&
        c.node.startIndex < (grant?.node.startIndex ?? 0),
    );
    const guardIf = ancestors(guard?.node as Node).find((a) => a.type === 'if_statement');
    expect(conditionText(guardIf as Node)).toBe(`${test} $Mailbox`);
    expect(endsFlow(guardIf as Node)).toBe(true);
    // The test function reads the permission for the service principal on that mailbox.
    const read = named(ps, get)[0] as CommandCall;
    const fn = ancestors(read.node).find((a) => a.type === 'function_statement');
    expect(fn?.text.startsWith(`function ${test}([string]$Mailbox)`)).toBe(true);
    expect(read.parameters).toMatchObject({ Identity: '$Mailbox' });
  });

  it('grants exactly FullAccess and SendAs to the service principal', async () => {
    const { ps } = await render(full);
    expect(named(ps, 'Add-MailboxPermission')[0]?.parameters).toEqual({
      Identity: '$Mailbox',
      User: '$Trustee',
      AccessRights: 'FullAccess',
      InheritanceType: 'All',
    });
    expect(named(ps, 'Add-RecipientPermission')[0]?.parameters).toEqual({
      Identity: '$Mailbox',
      Trustee: '$Trustee',
      AccessRights: 'SendAs',
      Confirm: '$false',
    });
    expect(named(ps, 'Get-MailboxPermission')[0]?.parameters).toEqual({
      Identity: '$Mailbox',
      User: '$Trustee',
    });
  });

  it('turns each protocol on only where Get-CASMailbox shows it off', async () => {
    const { ps } = await render(full);
    const sets = named(ps, 'Set-CASMailbox');
    expect(sets.map((s) => s.parameters)).toEqual([
      { Identity: '$Mailbox', ImapEnabled: '$true' },
      { Identity: '$Mailbox', PopEnabled: '$true' },
      { Identity: '$Mailbox', SmtpClientAuthenticationDisabled: '$false' },
    ]);
    const reads = ['$Cas.ImapEnabled', '$Cas.PopEnabled', '$Cas.SmtpClientAuthenticationDisabled'];
    sets.forEach((set, i) => {
      expect(mailboxLoop(set.node)).toBeDefined();
      const chain = ancestors(set.node).find((a) => a.type === 'if_statement') as Node;
      expect(conditionText(chain)).toContain(reads[i]);
    });
  });

  it('leaves out the optional steps unless asked', async () => {
    const { ps, text } = await render(base);
    expect(named(ps, 'Add-RecipientPermission')).toEqual([]);
    expect(named(ps, 'Set-CASMailbox')).toEqual([]);
    expect(text).not.toContain('function Test-SendAs');
    // Protocols that are off are reported, not changed.
    expect(text).toContain('--enable-protocols');
  });

  it('reads back every mailbox after the last change and throws on any gap', async () => {
    const { ps } = await render(full);
    const lastChange = Math.max(...mutations(ps).map((c) => c.node.startIndex));
    const readBack = ps.root
      .descendantsOfType('foreach_statement')
      .find(
        (loop) =>
          loop !== null &&
          loop.startIndex > lastChange &&
          /^foreach \(\$Mailbox in \$Mailboxes\)/.test(loop.text),
      ) as Node;
    expect(readBack).toBeDefined();
    const inside = ps.commands
      .filter((c) => mailboxLoop(c.node)?.equals(readBack))
      .map((c) => c.name);
    expect(inside).toEqual(
      expect.arrayContaining(['Test-FullAccess', 'Test-SendAs', 'Get-CASMailbox']),
    );
    expect(readBack.text).toContain(
      '[pscustomobject]@{ Mailbox = $Mailbox; FullAccess = $HasFullAccess; SendAs = $HasSendAs;',
    );
    for (const gap of [
      'no FullAccess',
      'no SendAs',
      'IMAP is not turned on',
      'POP is not turned on',
      'SMTP AUTH is not turned on',
    ]) {
      expect(readBack.text).toContain(gap);
    }
    const after = ps.source.slice(readBack.endIndex);
    expect(after).toContain('if ($Gaps.Count -gt 0) {');
    expect(after).toContain('throw $Report');
    expect(after).toContain('30 minutes');
  });

  it('says what it will do in the header, without any user value', async () => {
    const { text } = await render(full);
    const header = text.slice(0, text.indexOf('#>'));
    for (const phrase of [
      '-WhatIf',
      'New-ServicePrincipal',
      'Add-MailboxPermission',
      'Add-RecipientPermission',
      'Set-CASMailbox',
      'Reads back',
      '30 minutes',
      'running it again changes nothing',
    ]) {
      expect(header).toContain(phrase);
    }
    for (const value of ['contoso', APP_ID, OBJECT_ID, 'Robot']) {
      expect(header).not.toContain(value);
    }
  });
});

describe('the removal script', () => {
  /** Pairs of an install command and the removal command that undoes it. */
  const INVERSE: Record<string, string> = {
    'New-ServicePrincipal': 'Remove-ServicePrincipal',
    'Add-MailboxPermission': 'Remove-MailboxPermission',
    'Add-RecipientPermission': 'Remove-RecipientPermission',
    'New-ManagementScope': 'Remove-ManagementScope',
    'New-ManagementRoleAssignment': 'Remove-ManagementRoleAssignment',
  };
  /** Grants whose removal takes the same parameters (the others name what they remove by identity). */
  const SAME_PARAMETERS = new Set(['Add-MailboxPermission', 'Add-RecipientPermission']);

  /** Mutations that change Exchange, as (cmdlet, per mailbox?, parameters without -Confirm). */
  function changes(ps: ParsedScript) {
    return mutations(ps)
      .filter((c) => c.name !== 'Install-Module')
      .map((c) => {
        const { Confirm: _confirm, ...parameters } = c.parameters;
        return { name: c.name, perMailbox: mailboxLoop(c.node) !== undefined, parameters };
      });
  }

  it.each([
    ['FullAccess only', { ...base }],
    ['with SendAs', { ...base, sendAs: true }],
    [
      'with SendAs and protocols',
      { ...base, sendAs: true, enableProtocols: true, protocols: 'imap,pop,smtp' },
    ],
    ['with a group SMTP scope', { ...base, smtpScope: 'group:Senders', protocols: 'imap,smtp' }],
    ['with a mailbox SMTP scope', { ...base, smtpScope: 'mailboxes', protocols: 'imap,smtp' }],
  ])('undoes exactly what the install script adds (%s), in reverse order', async (_name, input) => {
    const install = changes((await render({ ...input, remove: false })).ps);
    const removal = changes((await render({ ...input, remove: true })).ps);
    // Set-CASMailbox is deliberately not reverted: the protocols may have been on before.
    // Set-ManagementScope corrects the filter of the scope that New-ManagementScope made.
    const grants = install.filter(
      (c) => c.name !== 'Set-CASMailbox' && c.name !== 'Set-ManagementScope',
    );
    expect(removal.map((c) => c.name)).toEqual(grants.map((c) => INVERSE[c.name]).reverse());
    for (const grant of grants) {
      const undo = removal.find((c) => c.name === INVERSE[grant.name]);
      expect(undo?.perMailbox).toBe(grant.perMailbox);
      if (SAME_PARAMETERS.has(grant.name)) expect(undo?.parameters).toEqual(grant.parameters);
    }
    expect(removal.find((c) => c.name === 'Remove-ServicePrincipal')?.parameters).toEqual({
      Identity: '$Trustee',
    });
  });

  it('confirms every removal without a prompt', async () => {
    const { ps } = await render({ ...base, sendAs: true, remove: true });
    for (const command of mutations(ps).filter((c) => c.name.startsWith('Remove-'))) {
      expect(command.parameters.Confirm, command.name).toBe('$false');
    }
  });

  it('guards each revocation per mailbox and reads back before removing the service principal', async () => {
    const { ps } = await render({ ...base, sendAs: true, remove: true });
    for (const [remove, test] of [
      ['Remove-MailboxPermission', 'Test-FullAccess'],
      ['Remove-RecipientPermission', 'Test-SendAs'],
    ]) {
      const [revoke] = named(ps, remove as string);
      const loop = mailboxLoop(revoke?.node as Node) as Node;
      const guard = named(ps, test as string).find(
        (c) =>
          mailboxLoop(c.node)?.equals(loop) && c.node.startIndex < (revoke?.node.startIndex ?? 0),
      );
      expect(guard, remove).toBeDefined();
    }
    const removeSp = named(ps, 'Remove-ServicePrincipal')[0] as CommandCall;
    const throwReport = ps.source.indexOf('throw $Report');
    expect(throwReport).toBeGreaterThan(0);
    expect(throwReport).toBeLessThan(removeSp.node.startIndex);
    // The read-back checks SendAs even when the plan did not grant it.
    const { text } = await render({ ...base, remove: true });
    expect(text).toContain('generate this script with --send-as to revoke it too');
    // -KeepServicePrincipal keeps it.
    const chain = ancestors(removeSp.node).find((a) => a.type === 'if_statement') as Node;
    expect(conditionText(chain)).toBe('$KeepServicePrincipal');
  });

  it('stops with nothing to do when the app is not registered', async () => {
    const { text } = await render({ ...base, remove: true });
    expect(text).toContain(
      'if ($Found.Count -eq 0) {\n    Write-Done "Exchange has no service principal for app $AppId; nothing to remove."\n    return\n}',
    );
  });

  it('says in the header that protocol settings stay as they are', async () => {
    const { text } = await render({ ...base, remove: true, enableProtocols: true });
    const header = text.slice(0, text.indexOf('#>'));
    expect(header).toContain("Left as they are: the mailboxes' protocol settings (Set-CASMailbox)");
    expect(text).not.toContain('$DisplayName');
  });
});

describe('SMTP scoped to chosen mailboxes (RBAC for Applications)', () => {
  const group: ExchangePlanInput = { ...base, smtpScope: 'group:SMTP senders', protocols: 'smtp' };
  const listed: ExchangePlanInput = { ...base, smtpScope: 'mailboxes', protocols: 'imap,smtp' };

  /** The if statement whose else branch (directly or after elseif) holds the node. */
  function guardingIf(node: Node): Node {
    const elseClause = ancestors(node).find((a) => a.type === 'else_clause') as Node;
    return elseClause.parent as Node;
  }

  it("assigns Microsoft's role name to the service principal over the app's own scope", async () => {
    const { ps, text } = await render(group);
    expect(text).toContain("\n$SmtpRole = 'Application SMTP.SendAsApp'\n");
    expect(text).toContain('\n$ScopeName = "mailbridge-smtp-$AppId"\n');
    expect(named(ps, 'New-ManagementRoleAssignment')[0]?.parameters).toEqual({
      Name: '$AssignmentName',
      App: '$ObjectId',
      Role: '$SmtpRole',
      CustomResourceScope: '$ScopeName',
    });
    expect(named(ps, 'New-ManagementScope')[0]?.parameters).toEqual({
      Name: '$ScopeName',
      RecipientRestrictionFilter: '$ScopeFilter',
    });
  });

  it('creates the scope and the assignment only when the read before finds none', async () => {
    const { ps } = await render(group);
    const [scope] = named(ps, 'New-ManagementScope');
    expect(conditionText(guardingIf(scope?.node as Node))).toBe('$Scope');
    expect(ps.source).toContain('$Scope = Get-AppScope\n');
    const [assignment] = named(ps, 'New-ManagementRoleAssignment');
    expect(conditionText(guardingIf(assignment?.node as Node))).toBe('$Scoped.Count -gt 0');
    const read = ps.source.indexOf('$Scoped = @(Get-SmtpRoleAssignment');
    expect(read).toBeGreaterThan(0);
    expect(read).toBeLessThan(assignment?.node.startIndex ?? 0);
    // The lookup behind both: Get-ManagementRoleAssignment for this service principal and role.
    const lookup = named(ps, 'Get-ManagementRoleAssignment')[0] as CommandCall;
    expect(lookup.parameters).toEqual({ RoleAssignee: '$Trustee' });
    const fn = ancestors(lookup.node).find((a) => a.type === 'function_statement');
    expect(fn?.text).toContain('"$($_.Role)" -eq $SmtpRole');
    // A scope whose filter differs is corrected, not duplicated.
    const [set] = named(ps, 'Set-ManagementScope');
    expect(set?.parameters).toEqual({
      Identity: '$ScopeName',
      RecipientRestrictionFilter: '$ScopeFilter',
    });
  });

  it('scopes to the members of the group, read by distinguished name before any change', async () => {
    const { ps, text } = await render(group);
    const [read] = named(ps, 'Get-Group');
    expect(read?.parameters).toMatchObject({ Identity: '$ScopeGroup' });
    const firstChange = mutations(ps).find((c) => c.name !== 'Install-Module') as CommandCall;
    expect(read?.node.startIndex).toBeLessThan(firstChange.node.startIndex);
    expect(text).toContain(
      `$ScopeFilter = "MemberOfGroup -eq '$(ConvertTo-OpathText $Group.DistinguishedName)'"`,
    );
  });

  it('scopes to exactly the mailboxes given, by their primary addresses', async () => {
    const { text } = await render(listed);
    expect(text).toContain('$ScopeFilter = @(foreach ($Mailbox in $Mailboxes) {');
    expect(text).toContain(
      `"PrimarySmtpAddress -eq '$(ConvertTo-OpathText (Get-EXOMailbox -Identity $Mailbox).PrimarySmtpAddress)'"`,
    );
    expect(text).toContain("}) -join ' -or '");
    expect(text).not.toContain('$ScopeGroup');
  });

  it('keeps FullAccess for IMAP and POP only: SMTP alone grants none', async () => {
    const smtpOnly = await render(group);
    expect(named(smtpOnly.ps, 'Add-MailboxPermission')).toEqual([]);
    expect(smtpOnly.text).not.toContain('no FullAccess for the service principal');
    const withImap = await render(listed);
    expect(named(withImap.ps, 'Add-MailboxPermission')).toHaveLength(1);
    expect(withImap.text).toContain('(IMAP/POP have no scoped form)');
  });

  it('reads back the assignment, anything wider, and each mailbox with Test-ServicePrincipalAuthorization', async () => {
    const { ps, text } = await render(listed);
    const lastChange = Math.max(...mutations(ps).map((c) => c.node.startIndex));
    const readBack = text.slice(lastChange);
    expect(readBack).toContain('$SmtpAssignments = @(Get-SmtpRoleAssignment)');
    expect(readBack).toContain('no assignment of $SmtpRole over scope $ScopeName');
    expect(readBack).toContain(
      'not only scope $ScopeName; remove it with Remove-ManagementRoleAssignment',
    );
    const [test] = named(ps, 'Test-ServicePrincipalAuthorization');
    expect(test?.parameters).toEqual({ Identity: '$Trustee', Resource: '$Mailbox' });
    expect(test?.node.startIndex).toBeGreaterThan(lastChange);
    expect(mailboxLoop(test?.node as Node)).toBeDefined();
    // Only where the cmdlet exists: older modules lack it, and the read-back says so.
    const guard = ancestors(test?.node as Node).find((a) => a.type === 'if_statement') as Node;
    expect(conditionText(guard)).toBe('$CanTestScope -and $Trustee');
    expect(text).toContain(
      '$CanTestScope = [bool](Get-Command Test-ServicePrincipalAuthorization -ErrorAction SilentlyContinue)',
    );
    expect(readBack).toContain('not in the scope of $SmtpRole');
    expect(readBack).toContain("'SMTP scope' = $InScope");
  });

  it('says that the Entra grant defeats the scope, and that it takes 30 minutes to 2 hours', async () => {
    const { text } = await render(group);
    const header = text.slice(0, text.indexOf('#>'));
    expect(header).toContain('tenant-wide SMTP.SendAsApp application permission in Entra ID');
    expect(header).toContain('30 minutes to 2 hours');
    expect(header).toContain('New-ManagementRoleAssignment');
    expect(header).not.toContain('SMTP senders');
    expect(text).toContain('mailbridge setup entra --scoped-smtp');
  });

  it('removes the assignment, then the scope, after the mailbox permissions and before the service principal, and reads them back', async () => {
    const { ps, text } = await render({ ...listed, remove: true });
    const order = mutations(ps)
      .map((c) => c.name)
      .filter((n) => n !== 'Install-Module');
    expect(order).toEqual([
      'Remove-MailboxPermission',
      'Remove-ManagementRoleAssignment',
      'Remove-ManagementScope',
      'Remove-ServicePrincipal',
    ]);
    expect(named(ps, 'Remove-ManagementScope')[0]?.parameters).toEqual({
      Identity: '$ScopeName',
      Confirm: '$false',
    });
    const removeSp = named(ps, 'Remove-ServicePrincipal')[0] as CommandCall;
    const stillThere = text.indexOf('still holds $SmtpRole over scope $ScopeName');
    expect(stillThere).toBeGreaterThan(
      named(ps, 'Remove-ManagementScope')[0]?.node.startIndex ?? 0,
    );
    expect(stillThere).toBeLessThan(removeSp.node.startIndex);
    expect(text).toContain('the scope $ScopeName is still there');
  });

  it.each([
    [{ ...base, smtpScope: 'group:Senders', protocols: 'imap' }, 'smtpScope', 'add smtp'],
    [{ ...base, smtpScope: 'mailboxes', sendAs: true }, 'sendAs', 'not needed'],
    [{ ...base, smtpScope: 'everyone' }, 'smtpScope', 'group:NAME'],
    [{ ...base, smtpScope: 'group:' }, 'smtpScope', 'empty'],
    [{ ...base, smtpScope: 'group:O\u2019Brien team' }, 'smtpScope', 'quote'],
    [{ ...base, smtpScope: 'group:a\nRemove-Mailbox ceo' }, 'smtpScope', 'printable ASCII'],
  ])('refuses the plan %#', (input, field, words) => {
    try {
      parseExchangePlan(input);
      expect.unreachable();
    } catch (error) {
      const problems = (error as ConfigurationError).problems;
      expect(problems.find((p) => p.field === field)?.message).toContain(words);
    }
  });

  it.each([
    "x'; Remove-Mailbox -Identity ceo; '",
    '$(Remove-Mailbox -Identity ceo)',
    '"; Remove-Mailbox -Identity ceo; "',
    '#> Remove-Mailbox -Identity ceo <#',
    "MemberOfGroup -eq '*'",
  ])('a group name %j stays one inert literal that decodes to itself', async (name) => {
    const { plan, ps } = await render({ ...group, smtpScope: `group:${name}` });
    expect(plan.smtpScope).toEqual({ kind: 'group', group: name });
    expect(ps.errors).toEqual([]);
    const hits = ps.verbatimStrings.filter((n) => literalValue(n) === name);
    expect(hits).toHaveLength(1);
    expect(assignedVariable(hits[0] as Node)).toBe('$ScopeGroup');
    const { ps: plain } = await render(group);
    expect(new Set(ps.commands.map((c) => c.name))).toEqual(
      new Set(plain.commands.map((c) => c.name)),
    );
  });
});

describe('hostile input', () => {
  const benign = async () => new Set((await render(base)).ps.commands.map((c) => c.name));

  it.each([
    "x'; Remove-Mailbox -Identity ceo; '",
    "'; Remove-Mailbox -Identity ceo; #",
    '$(Remove-Mailbox -Identity ceo)',
    '`$(Remove-Mailbox -Identity ceo)`',
    '"; Remove-Mailbox -Identity ceo; "',
    'a; Remove-Mailbox -Identity ceo',
    '#> Remove-Mailbox -Identity ceo <#',
    "''''",
    "@' x '@",
  ])('a display name %j stays one inert literal that decodes to itself', async (displayName) => {
    const { plan, ps } = await render({
      ...base,
      displayName,
      sendAs: true,
      enableProtocols: true,
    });
    expect(plan.displayName).toBe(displayName);
    expect(ps.errors).toEqual([]);
    const hits = ps.verbatimStrings.filter((n) => literalValue(n) === displayName);
    expect(hits).toHaveLength(1);
    expect(assignedVariable(hits[0] as Node)).toBe('$DisplayName');
    const names = new Set(ps.commands.map((c) => c.name));
    expect(names.has('Remove-Mailbox')).toBe(false);
    const { ps: plain } = await render({ ...base, sendAs: true, enableProtocols: true });
    expect(names).toEqual(new Set(plain.commands.map((c) => c.name)));
  });

  it.each([
    'O\u2019Brien; Remove-Mailbox -Identity ceo; \u2019',
    'O\u2018Brien',
    'O\u201ABrien',
    'O\u201BBrien',
    'line\nbreak',
    'nul\0',
    'bidi\u202Eoverride',
    '\u0451',
  ])('a display name %j is refused before any script is written', (displayName) => {
    expect(() => parseExchangePlan({ ...base, displayName })).toThrow(ConfigurationError);
  });

  it.each([
    "x@y.com'; Remove-Mailbox -Identity ceo; '",
    '$(Invoke-Evil)@x.com',
    'a`b@contoso.com',
    'a@contoso.com\nRemove-Mailbox ceo',
    'a;b@contoso.com',
    'o\u2019brien@contoso.com',
    'o\u2018brien@contoso.com',
    'o\u201Abrien@contoso.com',
    'o\u201Bbrien@contoso.com',
  ])('a mailbox %j is refused before any script is written', (mailbox) => {
    expect(() => parseExchangePlan({ ...base, mailboxes: [mailbox] })).toThrow(ConfigurationError);
  });

  it('does not let a plan built by hand put a typographic quote or a line break into a script', async () => {
    const plan = parseExchangePlan(base);
    expect(() =>
      renderExchangeScript({ ...plan, displayName: 'x\u2019; Remove-Mailbox ceo; \u2019' }),
    ).toThrow(/non-ASCII/);
    expect(() =>
      renderExchangeScript({ ...plan, mailboxes: ['a@x.com\nRemove-Mailbox ceo'] }),
    ).toThrow(ConfigurationError);
    expect(await benign()).not.toContain('Remove-Mailbox');
  });
});
