/**
 * Renders an ExchangePlan as one PowerShell script an Exchange administrator
 * can read and run. Pure: plan in, text out.
 *
 * Shape of every script:
 * - a comment header that says what the script does, without any user value;
 * - `param([switch]$WhatIf)`: a dry run that connects and reads but changes nothing;
 * - a data section assigning each user value once, as a single-quoted literal
 *   made by `psString`; everything after it only refers to those variables, so
 *   each value is exactly one string literal in the script;
 * - steps that each read the current state first and change only what is
 *   missing (running the script twice changes nothing the second time);
 * - a read-back that prints what the service principal holds on each mailbox
 *   and throws listing every gap.
 *
 * The output is ASCII only (asserted at the end): Windows PowerShell 5.1 reads
 * a script file without a byte order mark as Windows-1252 (see powershell.ts).
 */
import { CLOUDS } from '../config/clouds.js';
import type { ExchangePlan, ExchangeProtocol } from './exchange-plan.js';
import { isGuid, psString } from './powershell.js';

const PROTOCOL_LABEL: Record<ExchangeProtocol, string> = {
  imap: 'IMAP',
  pop: 'POP',
  smtp: 'SMTP AUTH',
};

/** Renders the install script, or the removal script when `plan.remove`. */
export function renderExchangeScript(plan: ExchangePlan): string {
  const lines = plan.remove ? removeScript(plan) : installScript(plan);
  const text = `${lines.join('\n')}\n`;
  const nonAscii = /[^\x20-\x7E\n]/.exec(text);
  if (nonAscii) {
    // Validation refuses such values first; this is the last line of defence.
    throw new Error(
      `renderExchangeScript produced a non-ASCII character (U+${(nonAscii[0].codePointAt(0) ?? 0).toString(16)}) at offset ${nonAscii.index}`,
    );
  }
  return text;
}

/** A suggested file name for the script. */
export function exchangeScriptFileName(plan: ExchangePlan): string {
  return plan.remove ? 'mailbridge-exchange-remove.ps1' : 'mailbridge-exchange-grant.ps1';
}

// ---------------------------------------------------------------------------
// The install script

function installScript(plan: ExchangePlan): string[] {
  const protocols = listText(plan.protocols.map((p) => PROTOCOL_LABEL[p]));
  const steps: string[] = [
    'Installs ExchangeOnlineManagement 3.x for the current user if it is',
    '     missing (Install-Module asks first), imports it and connects with',
    `     Connect-ExchangeOnline -ExchangeEnvironmentName ${CLOUDS[plan.cloud].exchangeEnvironmentName}.`,
    'Stops unless the session is connected to the tenant named in $Tenant.',
    'Stops unless every mailbox in $Mailboxes exists, before changing anything.',
    'Registers the app in Exchange (New-ServicePrincipal -AppId -ObjectId',
    '     -DisplayName) unless Get-ServicePrincipal already lists it; stops if',
    '     Exchange has the app with another object id.',
  ];
  if (plan.smtpScope) {
    steps.push(
      ...(plan.smtpScope.kind === 'group'
        ? ['Stops unless the group in $ScopeGroup exists, before changing anything.']
        : []),
      'Creates the management scope of the mailboxes the app may send as',
      `     (New-ManagementScope -RecipientRestrictionFilter: ${plan.smtpScope.kind === 'group' ? 'members of the group' : 'exactly the mailboxes'}),`,
      '     or corrects its filter (Set-ManagementScope) where it differs.',
      `Assigns the role '${SMTP_ROLE}' to the service principal over that`,
      '     scope (New-ManagementRoleAssignment -CustomResourceScope) unless assigned.',
    );
  }
  if (plan.hveAccount) steps.push(...HVE_INSTALL_STEPS);
  if (needsFullAccess(plan)) {
    steps.push(
      'Grants the service principal FullAccess on each mailbox',
      `     (Add-MailboxPermission) where it does not hold it yet${plan.smtpScope ? ' (IMAP/POP have no scoped form)' : ''}.`,
    );
  }
  if (plan.sendAs) {
    steps.push(
      'Grants the service principal SendAs on each mailbox',
      '     (Add-RecipientPermission) where it does not hold it yet.',
    );
  }
  if (plan.enableProtocols) {
    steps.push(`Turns on ${protocols} on each mailbox`, '     (Set-CASMailbox) where it is off.');
  }
  steps.push(
    'Reads back what the service principal holds on each mailbox, prints a',
    '     table, and fails listing every gap.',
  );

  return [
    ...header({
      synopsis: [
        'Grants an Entra application app-only (OAuth2 client credentials) access',
        `to Exchange Online mailboxes over ${protocols}.`,
      ],
      steps,
      notes: [
        'Exchange can take up to 30 minutes to apply new permissions: until then',
        'the app\'s logins may still fail with "AUTHENTICATE failed".',
        ...(plan.enableProtocols
          ? []
          : [
              '',
              'Protocol settings are not changed (generate the script with',
              '--enable-protocols for that); the read-back warns where one is off.',
            ]),
        ...(plan.protocols.includes('smtp')
          ? [
              '',
              'SMTP AUTH is also off for the whole tenant while Entra security defaults',
              'are on, whatever the mailbox settings say.',
            ]
          : []),
        '',
        ...(plan.smtpScope ? ['', ...SCOPE_NOTES] : []),
        ...(plan.hveAccount ? ['', ...HVE_NOTES] : []),
        '',
        'The removal script: mailbridge setup exchange --remove, same values.',
      ],
      removal: false,
    }),
    'param([switch]$WhatIf)',
    '',
    ...preamble(),
    ...dataSection(plan, true),
    ...helpers(plan),
    ...connectSteps(plan),
    ...mailboxCheckStep(),
    ...(plan.smtpScope ? scopeTargetStep(plan) : []),
    ...registerStep(),
    ...(plan.smtpScope ? smtpScopeStep(plan) : []),
    ...(plan.hveAccount ? hveStep() : []),
    ...(needsFullAccess(plan) ? grantFullAccessStep() : []),
    ...(plan.sendAs ? grantSendAsStep() : []),
    ...(plan.enableProtocols ? enableProtocolsStep(plan) : []),
    ...installReadBack(plan),
    "Write-Host ''",
    'if ($WhatIf) {',
    "    Write-Host 'Dry run: nothing was changed.' -ForegroundColor Yellow",
    '} else {',
    "    Write-Host 'Done. Exchange can take up to 30 minutes to apply new mailbox permissions:' -ForegroundColor Green",
    "    Write-Host 'until then the app''s IMAP/SMTP logins may still fail with \"AUTHENTICATE failed\".' -ForegroundColor Green",
    ...(plan.smtpScope
      ? [
          "    Write-Host 'The SMTP role assignment takes 30 minutes to 2 hours to apply. The app must NOT hold' -ForegroundColor Green",
          "    Write-Host 'the tenant-wide SMTP.SendAsApp permission in Entra ID: see mailbridge setup entra --scoped-smtp.' -ForegroundColor Green",
        ]
      : []),
    "    Write-Host 'Check a mailbox afterwards with: mailbridge doctor --mailbox ADDRESS' -ForegroundColor Green",
    '}',
  ];
}

/** Exchange's application role that scopes SMTP AUTH sending (RBAC for Applications). */
export const SMTP_ROLE = 'Application SMTP.SendAsApp';

const SCOPE_NOTES = [
  `SMTP sending is granted through RBAC for Applications: the role '${SMTP_ROLE}'`,
  'over a management scope. It limits nothing while the app also holds the',
  'tenant-wide SMTP.SendAsApp application permission in Entra ID: remove that',
  'permission (mailbridge setup entra --scoped-smtp leaves it out). Role',
  'assignments take 30 minutes to 2 hours to apply. IMAP and POP have no scoped',
  'form: they still need FullAccess on each mailbox.',
];

/**
 * FullAccess is what IMAP and POP need; SMTP needs it too unless sending is
 * granted through a scope.
 */
function needsFullAccess(plan: ExchangePlan): boolean {
  return !plan.smtpScope || plan.protocols.some((p) => p !== 'smtp');
}

/** The group exists (and is one object) before anything is changed. */
function scopeTargetStep(plan: ExchangePlan): string[] {
  if (plan.smtpScope?.kind !== 'group') return [];
  return [
    "Write-Step 'The group whose members the app may send as (checked before anything is changed)'",
    'try { $Group = Get-Group -Identity $ScopeGroup -ErrorAction Stop }',
    'catch { throw ("No group could be read for $ScopeGroup ($($_.Exception.Message)). Nothing was changed.") }',
    'Write-Done "group $($Group.Name) ($($Group.RecipientTypeDetails))"',
    '',
  ];
}

/** Scope and role assignment, each created only when missing. */
function smtpScopeStep(plan: ExchangePlan): string[] {
  const filter =
    plan.smtpScope?.kind === 'group'
      ? [
          '# The filter names the group by its distinguished name, as MemberOfGroup requires.',
          '$ScopeFilter = "MemberOfGroup -eq \'$(ConvertTo-OpathText $Group.DistinguishedName)\'"',
        ]
      : [
          '# Each mailbox by its primary address, whichever of its addresses was given.',
          '$ScopeFilter = @(foreach ($Mailbox in $Mailboxes) {',
          '    "PrimarySmtpAddress -eq \'$(ConvertTo-OpathText (Get-EXOMailbox -Identity $Mailbox).PrimarySmtpAddress)\'"',
          "}) -join ' -or '",
        ];
  return [
    "Write-Step 'Management scope of the mailboxes the app may send as (New-ManagementScope)'",
    ...filter,
    '$Scope = Get-AppScope',
    'if ($Scope) {',
    '    if ((Get-FilterKey $Scope.RecipientFilter) -eq (Get-FilterKey $ScopeFilter)) {',
    '        Write-Done "scope $ScopeName already in place"',
    '    } elseif ($WhatIf) {',
    '        Write-Planned "set the filter of scope $ScopeName to $ScopeFilter"',
    '    } else {',
    '        Set-ManagementScope -Identity $ScopeName -RecipientRestrictionFilter $ScopeFilter',
    '        Write-Changed "set the filter of scope $ScopeName to $ScopeFilter"',
    '    }',
    '} elseif ($WhatIf) {',
    '    Write-Planned "create scope $ScopeName with the filter $ScopeFilter"',
    '} else {',
    '    $null = New-ManagementScope -Name $ScopeName -RecipientRestrictionFilter $ScopeFilter',
    '    Write-Changed "created scope $ScopeName with the filter $ScopeFilter"',
    '}',
    '',
    'Write-Step "Role assignment $SmtpRole over that scope (New-ManagementRoleAssignment)"',
    '$Scoped = @(Get-SmtpRoleAssignment | Where-Object { "$($_.CustomResourceScope)" -eq $ScopeName })',
    'if ($Scoped.Count -gt 0) {',
    '    Write-Done "already assigned ($($Scoped[0].Name))"',
    '} elseif ($WhatIf) {',
    '    Write-Planned "assign $SmtpRole to the service principal over scope $ScopeName"',
    '} else {',
    '    $null = New-ManagementRoleAssignment -Name $AssignmentName -App $ObjectId -Role $SmtpRole -CustomResourceScope $ScopeName',
    '    Write-Changed "assigned $SmtpRole over scope $ScopeName ($AssignmentName)"',
    '}',
    '',
  ];
}

/** Install read-back of the scope: the assignment, nothing wider, and each mailbox in scope. */
function smtpScopeReadBack(): string[] {
  return [
    '$SmtpAssignments = @(Get-SmtpRoleAssignment)',
    'if (@($SmtpAssignments | Where-Object { "$($_.CustomResourceScope)" -eq $ScopeName }).Count -eq 0) {',
    '    $Gaps += "no assignment of $SmtpRole over scope $ScopeName"',
    '}',
    'foreach ($Other in @($SmtpAssignments | Where-Object { "$($_.CustomResourceScope)" -ne $ScopeName })) {',
    '    $Reach = "$($Other.CustomResourceScope)"',
    '    if (-not $Reach) { $Reach = "$($Other.RecipientWriteScope)" }',
    '    $Gaps += "the assignment $($Other.Name) of $SmtpRole reaches $Reach, not only scope $ScopeName; remove it with Remove-ManagementRoleAssignment"',
    '}',
    '# Test-ServicePrincipalAuthorization is newer than some ExchangeOnlineManagement versions.',
    '$CanTestScope = [bool](Get-Command Test-ServicePrincipalAuthorization -ErrorAction SilentlyContinue)',
    "if (-not $CanTestScope) { $Notes += 'Test-ServicePrincipalAuthorization is not available in this session: whether each mailbox is in the SMTP scope was not tested (update ExchangeOnlineManagement)' }",
  ];
}

function registerStep(): string[] {
  return [
    "Write-Step 'Service principal of the app in Exchange'",
    ...findServicePrincipal(),
    '$ServicePrincipal = $null',
    'if ($Found.Count -eq 1) {',
    '    $ServicePrincipal = $Found[0]',
    '    if ("$($ServicePrincipal.ObjectId)" -ne $ObjectId) {',
    '        throw ("Exchange already has app $AppId registered with object id $($ServicePrincipal.ObjectId), " +',
    '            "but this script was generated with $ObjectId. One of them is probably the App Registration\'s " +',
    '            "object id; the right one is the Object ID on the Enterprise Application\'s overview page " +',
    '            "(Entra ID > Enterprise applications). If the registered one is wrong, remove it with " +',
    '            "Remove-ServicePrincipal -Identity $($ServicePrincipal.Identity) and run this script again; " +',
    '            "otherwise generate the script again with --object-id $($ServicePrincipal.ObjectId).")',
    '    }',
    '    Write-Done "app already registered as $($ServicePrincipal.DisplayName) (object id $($ServicePrincipal.ObjectId))"',
    '} elseif ($WhatIf) {',
    '    Write-Planned "register the app: New-ServicePrincipal -AppId $AppId -ObjectId $ObjectId -DisplayName \'$DisplayName\'"',
    '} else {',
    '    $ServicePrincipal = New-ServicePrincipal -AppId $AppId -ObjectId $ObjectId -DisplayName $DisplayName',
    '    Write-Changed "registered the app as $($ServicePrincipal.DisplayName) (object id $($ServicePrincipal.ObjectId))"',
    '}',
    ...trusteeAssignment(),
    '',
  ];
}

function grantFullAccessStep(): string[] {
  return [
    "Write-Step 'FullAccess for the service principal on each mailbox (Add-MailboxPermission)'",
    'foreach ($Mailbox in $Mailboxes) {',
    '    if (Test-FullAccess $Mailbox) {',
    '        Write-Done "FullAccess on $Mailbox already granted"',
    '        continue',
    '    }',
    '    if ($WhatIf) {',
    '        Write-Planned "grant FullAccess on $Mailbox"',
    '        continue',
    '    }',
    '    $null = Add-MailboxPermission -Identity $Mailbox -User $Trustee -AccessRights FullAccess -InheritanceType All',
    '    Write-Changed "granted FullAccess on $Mailbox"',
    '}',
    '',
  ];
}

function grantSendAsStep(): string[] {
  return [
    "Write-Step 'SendAs for the service principal on each mailbox (Add-RecipientPermission)'",
    'foreach ($Mailbox in $Mailboxes) {',
    '    if (Test-SendAs $Mailbox) {',
    '        Write-Done "SendAs on $Mailbox already granted"',
    '        continue',
    '    }',
    '    if ($WhatIf) {',
    '        Write-Planned "grant SendAs on $Mailbox"',
    '        continue',
    '    }',
    '    $null = Add-RecipientPermission -Identity $Mailbox -Trustee $Trustee -AccessRights SendAs -Confirm:$false',
    '    Write-Changed "granted SendAs on $Mailbox"',
    '}',
    '',
  ];
}

/** Set-CASMailbox parameter and value that turn each protocol on. */
const ENABLE: Record<ExchangeProtocol, { read: string; on: string; set: string }> = {
  imap: { read: 'ImapEnabled', on: 'True', set: '-ImapEnabled $true' },
  pop: { read: 'PopEnabled', on: 'True', set: '-PopEnabled $true' },
  // $null (empty) means the organization's setting applies; $false turns SMTP
  // AUTH on for this mailbox whatever the organization's setting is.
  smtp: {
    read: 'SmtpClientAuthenticationDisabled',
    on: 'False',
    set: '-SmtpClientAuthenticationDisabled $false',
  },
};

function enableProtocolsStep(plan: ExchangePlan): string[] {
  const lines = [
    "Write-Step 'Protocols on each mailbox (Set-CASMailbox)'",
    'foreach ($Mailbox in $Mailboxes) {',
    '    $Cas = Get-CASMailbox -Identity $Mailbox',
  ];
  for (const protocol of plan.protocols) {
    const { read, on, set } = ENABLE[protocol];
    const label = PROTOCOL_LABEL[protocol];
    lines.push(
      `    if ("$($Cas.${read})" -eq '${on}') {`,
      `        Write-Done "${label} already on for $Mailbox"`,
      '    } elseif ($WhatIf) {',
      `        Write-Planned "turn on ${label} for $Mailbox"`,
      '    } else {',
      `        Set-CASMailbox -Identity $Mailbox ${set}`,
      `        Write-Changed "turned on ${label} for $Mailbox"`,
      '    }',
    );
  }
  lines.push('}', '');
  return lines;
}

function installReadBack(plan: ExchangePlan): string[] {
  const lines = [
    "Write-Step 'Read-back: what the service principal holds on each mailbox now'",
    '$Gaps = @()',
    '$Notes = @()',
  ];
  if (plan.protocols.includes('smtp')) {
    lines.push(
      '# An empty SmtpClientAuthenticationDisabled on a mailbox means this organization-wide setting applies.',
      '$OrgSmtpAuthDisabled = "$((Get-TransportConfig).SmtpClientAuthenticationDisabled)" -eq \'True\'',
    );
  }
  if (plan.smtpScope) lines.push(...smtpScopeReadBack());
  if (plan.hveAccount) lines.push(...hveReadBack());
  lines.push(
    '$Rows = foreach ($Mailbox in $Mailboxes) {',
    '    $HasFullAccess = Test-FullAccess $Mailbox',
  );
  if (needsFullAccess(plan)) {
    lines.push(
      '    if (-not $HasFullAccess) { $Gaps += "$Mailbox - no FullAccess for the service principal" }',
    );
  }
  if (plan.smtpScope) {
    lines.push(
      "    $InScope = 'not tested'",
      '    if ($CanTestScope -and $Trustee) {',
      '        $InScope = @(Test-ServicePrincipalAuthorization -Identity $Trustee -Resource $Mailbox |',
      '            Where-Object { "$($_.RoleName)" -eq $SmtpRole -and "$($_.InScope)" -eq \'True\' }).Count -gt 0',
      '        if (-not $InScope) { $Gaps += "$Mailbox - not in the scope of $SmtpRole (Test-ServicePrincipalAuthorization)" }',
      '    }',
    );
  }
  if (plan.sendAs) {
    lines.push(
      '    $HasSendAs = Test-SendAs $Mailbox',
      '    if (-not $HasSendAs) { $Gaps += "$Mailbox - no SendAs for the service principal" }',
    );
  }
  lines.push('    $Cas = Get-CASMailbox -Identity $Mailbox');
  const columns = ['Mailbox = $Mailbox', 'FullAccess = $HasFullAccess'];
  if (plan.sendAs) columns.push('SendAs = $HasSendAs');
  if (plan.smtpScope) columns.push("'SMTP scope' = $InScope");
  for (const protocol of plan.protocols) {
    const label = PROTOCOL_LABEL[protocol];
    const variable = `$${protocol[0]?.toUpperCase()}${protocol.slice(1)}On`;
    const { read, on } = ENABLE[protocol];
    if (protocol === 'smtp') {
      lines.push(
        '    $SmtpSetting = "$($Cas.SmtpClientAuthenticationDisabled)"',
        "    if ($SmtpSetting -eq '') { $SmtpOn = -not $OrgSmtpAuthDisabled } else { $SmtpOn = $SmtpSetting -eq 'False' }",
      );
    } else {
      lines.push(`    ${variable} = "$($Cas.${read})" -eq '${on}'`);
    }
    if (plan.enableProtocols) {
      // The install step sets the mailbox's own setting; the read-back checks that setting.
      const setOn = protocol === 'smtp' ? "$SmtpSetting -eq 'False'" : variable;
      lines.push(
        `    if (-not (${setOn})) { $Gaps += "$Mailbox - ${label} is not turned on for the mailbox" }`,
      );
    } else {
      lines.push(
        `    if (-not ${variable}) { $Notes += "${label} is off for $Mailbox - turn it on with Set-CASMailbox, or generate this script with --enable-protocols" }`,
      );
    }
    columns.push(`'${label}' = ${variable}`);
  }
  lines.push(
    `    [pscustomobject]@{ ${columns.join('; ')} }`,
    '}',
    '$Rows | Format-Table -AutoSize | Out-Host',
    'foreach ($Note in $Notes) { Write-Warning $Note }',
    ...gapReport('a real run closes them'),
  );
  return lines;
}

// ---------------------------------------------------------------------------
// The removal script: the install script's grants, undone in reverse order.

function removeScript(plan: ExchangePlan): string[] {
  const steps: string[] = [
    'Connects like the install script and checks the tenant and the mailboxes.',
    'Finds the app in Exchange (Get-ServicePrincipal); if it is not',
    '     registered there is nothing to remove and the script stops.',
  ];
  if (plan.sendAs) {
    steps.push(
      'Revokes SendAs on each mailbox (Remove-RecipientPermission) where the',
      '     service principal holds it.',
    );
  }
  steps.push(
    'Revokes FullAccess on each mailbox (Remove-MailboxPermission) where the',
    '     service principal holds it.',
  );
  if (plan.smtpScope) {
    steps.push(
      `Removes the assignment of the role '${SMTP_ROLE}' over the app's`,
      '     scope (Remove-ManagementRoleAssignment), then the scope itself',
      '     (Remove-ManagementScope), where they exist.',
    );
  }
  if (plan.hveAccount) steps.push(...HVE_REMOVE_STEPS);
  steps.push(
    'Reads back each mailbox and fails, before the next step, if the service',
    '     principal still holds FullAccess or SendAs on any of them.',
    ...(plan.smtpScope
      ? ['     It fails too while the scope or its role assignment is still there.']
      : []),
    'Removes the app from Exchange (Remove-ServicePrincipal) unless run with',
    '     -KeepServicePrincipal.',
  );
  return [
    ...header({
      synopsis: [
        "Revokes an Entra application's app-only access to Exchange Online",
        'mailboxes, undoing what `mailbridge setup exchange` granted.',
      ],
      steps,
      notes: [
        "Left as they are: the mailboxes' protocol settings (Set-CASMailbox), since",
        'IMAP, POP or SMTP AUTH may have been on before, or serve other clients;',
        'and the app itself in Entra ID (App Registration, Enterprise Application).',
        '',
        'Removing the service principal also ends any access it has to mailboxes',
        'not listed here. -KeepServicePrincipal keeps it registered.',
        '',
        'Exchange can take up to 30 minutes to apply removed permissions: the app',
        'may keep working until then.',
      ],
      removal: true,
      hve: plan.hveAccount !== undefined,
    }),
    `param([switch]$WhatIf, [switch]$KeepServicePrincipal${plan.hveAccount ? ', [switch]$KeepHveAccount' : ''})`,
    '',
    ...preamble(),
    ...dataSection(plan, false),
    ...helpers(plan),
    ...connectSteps(plan),
    ...mailboxCheckStep(),
    "Write-Step 'Service principal of the app in Exchange'",
    ...findServicePrincipal(),
    'if ($Found.Count -eq 0) {',
    '    Write-Done "Exchange has no service principal for app $AppId; nothing to remove."',
    '    return',
    '}',
    '$ServicePrincipal = $Found[0]',
    'if ("$($ServicePrincipal.ObjectId)" -ne $ObjectId) {',
    '    Write-Warning ("Exchange has app $AppId registered with object id $($ServicePrincipal.ObjectId), " +',
    '        "not $ObjectId; removing what that registration holds.")',
    '}',
    'Write-Done "found $($ServicePrincipal.DisplayName) (object id $($ServicePrincipal.ObjectId))"',
    ...trusteeAssignment(),
    '',
    ...(plan.sendAs ? revokeSendAsStep() : []),
    ...revokeFullAccessStep(),
    ...(plan.smtpScope ? revokeSmtpScopeStep() : []),
    ...(plan.hveAccount ? revokeHveStep() : []),
    ...removeReadBack(plan),
    "Write-Step 'Service principal of the app in Exchange'",
    'if ($KeepServicePrincipal) {',
    "    Write-Done 'kept, as asked (-KeepServicePrincipal)'",
    '} elseif ($WhatIf) {',
    '    Write-Planned "remove the app\'s registration: Remove-ServicePrincipal -Identity $Trustee"',
    '} else {',
    '    Remove-ServicePrincipal -Identity $Trustee -Confirm:$false',
    '    Write-Changed "removed the registration of app $AppId"',
    '}',
    '',
    "Write-Host ''",
    'if ($WhatIf) {',
    "    Write-Host 'Dry run: nothing was changed.' -ForegroundColor Yellow",
    '} else {',
    "    Write-Host 'Done. Exchange can take up to 30 minutes to apply removed permissions.' -ForegroundColor Green",
    "    Write-Host 'Protocol settings (Set-CASMailbox) were left as they were.' -ForegroundColor Green",
    '}',
  ];
}

function revokeSendAsStep(): string[] {
  return [
    "Write-Step 'SendAs of the service principal on each mailbox (Remove-RecipientPermission)'",
    'foreach ($Mailbox in $Mailboxes) {',
    '    if (-not (Test-SendAs $Mailbox)) {',
    '        Write-Done "no SendAs on $Mailbox"',
    '        continue',
    '    }',
    '    if ($WhatIf) {',
    '        Write-Planned "revoke SendAs on $Mailbox"',
    '        continue',
    '    }',
    '    $null = Remove-RecipientPermission -Identity $Mailbox -Trustee $Trustee -AccessRights SendAs -Confirm:$false',
    '    Write-Changed "revoked SendAs on $Mailbox"',
    '}',
    '',
  ];
}

function revokeFullAccessStep(): string[] {
  return [
    "Write-Step 'FullAccess of the service principal on each mailbox (Remove-MailboxPermission)'",
    'foreach ($Mailbox in $Mailboxes) {',
    '    if (-not (Test-FullAccess $Mailbox)) {',
    '        Write-Done "no FullAccess on $Mailbox"',
    '        continue',
    '    }',
    '    if ($WhatIf) {',
    '        Write-Planned "revoke FullAccess on $Mailbox"',
    '        continue',
    '    }',
    '    $null = Remove-MailboxPermission -Identity $Mailbox -User $Trustee -AccessRights FullAccess -InheritanceType All -Confirm:$false',
    '    Write-Changed "revoked FullAccess on $Mailbox"',
    '}',
    '',
  ];
}

function revokeSmtpScopeStep(): string[] {
  return [
    'Write-Step "Role assignment $SmtpRole over the app\'s scope (Remove-ManagementRoleAssignment)"',
    '$Scoped = @(Get-SmtpRoleAssignment | Where-Object { "$($_.CustomResourceScope)" -eq $ScopeName })',
    'if ($Scoped.Count -eq 0) { Write-Done "no assignment of $SmtpRole over scope $ScopeName" }',
    'foreach ($Assignment in $Scoped) {',
    '    if ($WhatIf) {',
    '        Write-Planned "remove the role assignment $($Assignment.Name)"',
    '        continue',
    '    }',
    '    Remove-ManagementRoleAssignment -Identity "$($Assignment.Identity)" -Confirm:$false',
    '    Write-Changed "removed the role assignment $($Assignment.Name)"',
    '}',
    '',
    "Write-Step 'Management scope of the app (Remove-ManagementScope)'",
    'if (-not (Get-AppScope)) {',
    '    Write-Done "no scope $ScopeName"',
    '} elseif ($WhatIf) {',
    '    Write-Planned "remove scope $ScopeName"',
    '} else {',
    '    Remove-ManagementScope -Identity $ScopeName -Confirm:$false',
    '    Write-Changed "removed scope $ScopeName"',
    '}',
    '',
  ];
}

function removeReadBack(plan: ExchangePlan): string[] {
  return [
    "Write-Step 'Read-back: what the service principal still holds on each mailbox'",
    '$Gaps = @()',
    ...(plan.smtpScope
      ? [
          'if (@(Get-SmtpRoleAssignment | Where-Object { "$($_.CustomResourceScope)" -eq $ScopeName }).Count -gt 0) {',
          '    $Gaps += "the service principal still holds $SmtpRole over scope $ScopeName"',
          '}',
          'if (Get-AppScope) { $Gaps += "the scope $ScopeName is still there" }',
        ]
      : []),
    ...(plan.hveAccount
      ? [
          'if (Test-HveAppAccess) { $Gaps += "the app is still in the allowed apps of the HVE account $HveAccount" }',
          'if ($HveAccountToRemove -and (Get-HveAccount)) { $Gaps += "the HVE account $HveAccount is still there" }',
        ]
      : []),
    '$Rows = foreach ($Mailbox in $Mailboxes) {',
    '    $HasFullAccess = Test-FullAccess $Mailbox',
    '    if ($HasFullAccess) { $Gaps += "$Mailbox - the service principal still holds FullAccess" }',
    // SendAs is checked whatever the plan says: removing the service principal
    // while it still holds SendAs would leave an orphaned permission behind.
    '    $HasSendAs = Test-SendAs $Mailbox',
    plan.sendAs
      ? '    if ($HasSendAs) { $Gaps += "$Mailbox - the service principal still holds SendAs" }'
      : '    if ($HasSendAs) { $Gaps += "$Mailbox - the service principal holds SendAs (generate this script with --send-as to revoke it too)" }',
    '    [pscustomobject]@{ Mailbox = $Mailbox; FullAccess = $HasFullAccess; SendAs = $HasSendAs }',
    '}',
    '$Rows | Format-Table -AutoSize | Out-Host',
    ...gapReport('a real run revokes them'),
    '',
  ];
}

// ---------------------------------------------------------------------------
// High Volume Email: the account (a mail user) and the app in its allowed apps

const HVE_INSTALL_STEPS = [
  'Creates the High Volume Email account $HveAccount (New-MailUser',
  '     -HVEAccount, with a random password nobody is shown: the app signs',
  '     in with its token) unless Get-MailUser -HVEAccount lists it.',
  "Adds the app to the HVE account's allowed apps (Add-HVEAppAccess",
  "     -AppIds, the Enterprise Application's object id) unless listed there.",
];

const HVE_REMOVE_STEPS = [
  "Takes the app off the HVE account's allowed apps (Remove-HVEAppAccess)",
  '     where it is listed, then removes the HVE account (Remove-MailUser)',
  '     when no other app is allowed on it, unless run with -KeepHveAccount.',
];

const HVE_NOTES = [
  'High Volume Email takes the app only with the Exchange Online Mail.Send',
  'application permission in Entra ID (mailbridge setup entra --hve), and only',
  'for internal recipients. Allowed-app changes take up to 5 minutes to apply.',
  'An HVE account can allow up to ten apps.',
];

function hveHelpers(): string[] {
  return [
    '',
    '# Listed and filtered rather than Get-MailUser -Identity, for the reason given at Get-ServicePrincipal.',
    'function Get-HveAccount {',
    '    return @(Get-MailUser -HVEAccount -ResultSize Unlimited |',
    '        Where-Object { "$($_.PrimarySmtpAddress)" -eq $HveAccount }) | Select-Object -First 1',
    '}',
    'function Get-HveAllowedApps {',
    '    if (-not (Get-HveAccount)) { return @() }',
    '    return @((Get-HVEAccountSettings -Identity $HveAccount).AllowedApps | ForEach-Object { "$_" })',
    '}',
    'function Test-HveAppAccess { return @(Get-HveAllowedApps) -contains $ObjectId }',
  ];
}

function hveStep(): string[] {
  return [
    "Write-Step 'High Volume Email account (New-MailUser -HVEAccount)'",
    'if (Get-HveAccount) {',
    '    Write-Done "HVE account $HveAccount already there"',
    '} elseif ($WhatIf) {',
    '    Write-Planned "create the HVE account $HveAccount"',
    '} else {',
    '    # A password is required; the app signs in with its token, so nobody is given this one.',
    '    $Bytes = New-Object byte[] 32',
    '    [System.Security.Cryptography.RandomNumberGenerator]::Create().GetBytes($Bytes)',
    "    $HvePassword = ConvertTo-SecureString -String ([Convert]::ToBase64String($Bytes) + 'Aa1!') -AsPlainText -Force",
    '    $null = New-MailUser -HVEAccount -Name $HveAccount -PrimarySmtpAddress $HveAccount -Password $HvePassword',
    '    Remove-Variable -Name HvePassword',
    '    Remove-Variable -Name Bytes',
    '    Write-Changed "created the HVE account $HveAccount"',
    '}',
    '',
    "Write-Step 'The app in the allowed apps of the HVE account (Add-HVEAppAccess)'",
    'if (Test-HveAppAccess) {',
    '    Write-Done "app $ObjectId already allowed on $HveAccount"',
    '} elseif ($WhatIf) {',
    '    Write-Planned "allow app $ObjectId on $HveAccount"',
    '} else {',
    '    Add-HVEAppAccess -Identity $HveAccount -AppIds $ObjectId',
    '    Write-Changed "allowed app $ObjectId on $HveAccount"',
    '}',
    '',
  ];
}

function hveReadBack(): string[] {
  return [
    'if (-not (Get-HveAccount)) {',
    '    $Gaps += "no HVE account $HveAccount (Get-MailUser -HVEAccount)"',
    '} elseif (-not (Test-HveAppAccess)) {',
    '    $Gaps += "app $ObjectId is not in the allowed apps of $HveAccount (Get-HVEAccountSettings)"',
    '} else {',
    '    Write-Done "HVE account $HveAccount allows app $ObjectId"',
    '}',
  ];
}

function revokeHveStep(): string[] {
  return [
    "Write-Step 'The app in the allowed apps of the HVE account (Remove-HVEAppAccess)'",
    '$HveAccountToRemove = $false',
    'if (-not (Get-HveAccount)) {',
    '    Write-Done "no HVE account $HveAccount"',
    '} else {',
    '    if (-not (Test-HveAppAccess)) {',
    '        Write-Done "app $ObjectId is not allowed on $HveAccount"',
    '    } elseif ($WhatIf) {',
    '        Write-Planned "take app $ObjectId off $HveAccount"',
    '    } else {',
    '        Remove-HVEAppAccess -Identity $HveAccount -AppIds $ObjectId',
    '        Write-Changed "took app $ObjectId off $HveAccount"',
    '    }',
    '    $OtherApps = @(Get-HveAllowedApps | Where-Object { $_ -ne $ObjectId })',
    '    if ($KeepHveAccount) {',
    "        Write-Done 'HVE account kept, as asked (-KeepHveAccount)'",
    '    } elseif ($OtherApps.Count -gt 0) {',
    '        Write-Warning "HVE account $HveAccount kept: $($OtherApps.Count) other app(s) send through it"',
    '    } elseif ($WhatIf) {',
    '        Write-Planned "remove the HVE account $HveAccount"',
    '    } else {',
    '        $HveAccountToRemove = $true',
    '        Remove-MailUser -Identity $HveAccount -Confirm:$false',
    '        Write-Changed "removed the HVE account $HveAccount"',
    '    }',
    '}',
    '',
  ];
}

// ---------------------------------------------------------------------------
// Parts both scripts share

interface HeaderText {
  synopsis: string[];
  steps: string[];
  notes: string[];
  removal: boolean;
  /** The script has the High Volume Email steps. */
  hve?: boolean;
}

function header({ synopsis, steps, notes, removal, hve }: HeaderText): string[] {
  // Lines starting with spaces continue the step above.
  let n = 0;
  const numbered = steps.map((line) =>
    line.startsWith(' ') ? `   ${line.trimStart()}` : `${++n}. ${line}`,
  );
  return [
    '#Requires -Version 5.1',
    '<#',
    '.SYNOPSIS',
    ...synopsis.map((l) => `    ${l}`),
    '',
    '.DESCRIPTION',
    '    Generated by `mailbridge setup exchange`. Run it as an Exchange',
    '    administrator in PowerShell 7 or Windows PowerShell 5.1, with -WhatIf',
    '    first for a dry run that changes nothing.',
    '',
    '    What it does, in order. Each step first reads the current state and',
    removal
      ? '    changes only what is still there, so running it again changes nothing:'
      : '    changes only what is missing, so running it again changes nothing:',
    ...numbered.map((l) => `    ${l}`),
    '',
    ...notes.map((l) => (l === '' ? '' : `    ${l}`)),
    '',
    '    The values the script was generated with are in the data section',
    '    below, each written once; the rest of the script only uses those',
    '    variables.',
    '',
    '.PARAMETER WhatIf',
    '    Dry run: connect, read and print what would change; change nothing',
    '    (not even install the ExchangeOnlineManagement module).',
    ...(removal
      ? [
          '',
          '.PARAMETER KeepServicePrincipal',
          '    Revoke the mailbox permissions but keep the app registered in Exchange.',
          ...(hve
            ? [
                '',
                '.PARAMETER KeepHveAccount',
                "    Take the app off the HVE account's allowed apps but keep the account.",
              ]
            : []),
        ]
      : []),
    '#>',
  ];
}

function preamble(): string[] {
  return ["$ErrorActionPreference = 'Stop'", 'Set-StrictMode -Version 1.0', ''];
}

function dataSection(plan: ExchangePlan, install: boolean): string[] {
  const cloud = CLOUDS[plan.cloud];
  return [
    '# ---- Data: every value given to mailbridge, each once, as a single-quoted string ----',
    `$Tenant = ${psString(plan.tenant)}`,
    `$AppId = ${psString(plan.appId)}`,
    "# The Enterprise Application's (service principal's) object id, not the App Registration's.",
    `$ObjectId = ${psString(plan.objectId)}`,
    ...(install ? [`$DisplayName = ${psString(plan.displayName)}`] : []),
    '$Mailboxes = @(',
    ...plan.mailboxes.map(
      (m, i) => `    ${psString(m)}${i < plan.mailboxes.length - 1 ? ',' : ''}`,
    ),
    ')',
    `# Cloud ${plan.cloud}`,
    `$ExchangeEnvironment = ${psString(cloud.exchangeEnvironmentName)}`,
    ...(install && plan.smtpScope?.kind === 'group'
      ? [
          '# The group whose members the app may send as over SMTP.',
          `$ScopeGroup = ${psString(plan.smtpScope.group)}`,
        ]
      : []),
    ...(plan.hveAccount
      ? [
          '# The High Volume Email account the app sends as (relay.routes.hve.account).',
          `$HveAccount = ${psString(plan.hveAccount)}`,
        ]
      : []),
    '# ---- End of data ----',
    '',
  ];
}

function helpers(plan: ExchangePlan): string[] {
  const lines = [
    'function Write-Step([string]$Text) {',
    "    Write-Host ''",
    '    Write-Host "==> $Text" -ForegroundColor Cyan',
    '}',
    'function Write-Done([string]$Text) { Write-Host "    $Text" }',
    'function Write-Planned([string]$Text) { Write-Host "    [dry run] would $Text" -ForegroundColor Yellow }',
    'function Write-Changed([string]$Text) { Write-Host "    $Text" -ForegroundColor Green }',
    '',
    '# -User is resolved by Exchange like Add-MailboxPermission -User, so the entry is found',
    '# whatever name Exchange shows for the service principal in the User column.',
    'function Test-FullAccess([string]$Mailbox) {',
    '    if (-not $Trustee) { return $false }',
    '    $Entries = @(Get-MailboxPermission -Identity $Mailbox -User $Trustee |',
    '        Where-Object { "$($_.AccessRights)" -match \'\\bFullAccess\\b\' -and "$($_.Deny)" -ne \'True\' })',
    '    return $Entries.Count -gt 0',
    '}',
  ];
  if (plan.smtpScope) lines.push(...scopeHelpers());
  if (plan.hveAccount) lines.push(...hveHelpers());
  if (plan.sendAs || plan.remove) {
    lines.push(
      'function Test-SendAs([string]$Mailbox) {',
      '    if (-not $Trustee) { return $false }',
      '    $Entries = @(Get-RecipientPermission -Identity $Mailbox -Trustee $Trustee -AccessRights SendAs |',
      '        Where-Object { "$($_.AccessControlType)" -ne \'Deny\' })',
      '    return $Entries.Count -gt 0',
      '}',
    );
  }
  lines.push('');
  return lines;
}

function scopeHelpers(): string[] {
  return [
    '',
    `$SmtpRole = ${psString(SMTP_ROLE)}`,
    '# Named after the app, so that each app has its own scope and assignment.',
    '$ScopeName = "mailbridge-smtp-$AppId"',
    '$AssignmentName = "mailbridge-smtp-sendasapp-$AppId"',
    'function Get-AppScope {',
    '    return @(Get-ManagementScope | Where-Object { "$($_.Name)" -eq $ScopeName }) | Select-Object -First 1',
    '}',
    'function Get-SmtpRoleAssignment {',
    '    if (-not $Trustee) { return }',
    '    Get-ManagementRoleAssignment -RoleAssignee $Trustee | Where-Object { "$($_.Role)" -eq $SmtpRole }',
    '}',
    '# Exchange stores a filter with parentheses and spacing of its own: compare without them.',
    'function Get-FilterKey([string]$Filter) {',
    "    return ($Filter -replace '[()]', '' -replace '\\s+', ' ').Trim().ToLowerInvariant()",
    '}',
    '# A value inside a single-quoted OPATH string: an apostrophe is written twice.',
    '# A filter that still does not match shows up in the read-back (Test-ServicePrincipalAuthorization).',
    'function ConvertTo-OpathText([string]$Value) {',
    '    return $Value.Replace("\'", "\'\'")',
    '}',
  ];
}

function connectSteps(plan: ExchangePlan): string[] {
  const tenantCheck = isGuid(plan.tenant)
    ? [
        'if ("$($Connection.TenantID)" -ne $Tenant) {',
        '    throw ("This session is connected to tenant $($Connection.TenantID), not $Tenant. " +',
        '        "Run Disconnect-ExchangeOnline, then run this script again and sign in as an administrator of $Tenant.")',
        '}',
      ]
    : [
        '$TenantDomain = @(Get-AcceptedDomain | Where-Object { "$($_.DomainName)" -eq $Tenant })',
        'if ($TenantDomain.Count -eq 0) {',
        '    throw ("The organization this session is connected to (tenant $($Connection.TenantID)) has no accepted domain $Tenant. " +',
        '        "Run Disconnect-ExchangeOnline, then run this script again and sign in as an administrator of $Tenant.")',
        '}',
      ];
  return [
    "Write-Step 'ExchangeOnlineManagement module'",
    "$Module = Get-Module -ListAvailable -Name ExchangeOnlineManagement | Where-Object { $_.Version -ge [version]'3.0.0' }",
    'if (-not $Module) {',
    '    if ($WhatIf) {',
    "        throw ('ExchangeOnlineManagement 3.x is not installed, and a dry run installs nothing. ' +",
    "            'Install it first: Install-Module -Name ExchangeOnlineManagement -Scope CurrentUser')",
    '    }',
    '    Install-Module -Name ExchangeOnlineManagement -MinimumVersion 3.0.0 -Scope CurrentUser',
    '}',
    'Import-Module ExchangeOnlineManagement -MinimumVersion 3.0.0',
    '',
    'Write-Step "Connecting to Exchange Online ($ExchangeEnvironment)"',
    'Connect-ExchangeOnline -ExchangeEnvironmentName $ExchangeEnvironment -ShowBanner:$false',
    '$Connection = @(Get-ConnectionInformation | Where-Object { "$($_.State)" -eq \'Connected\' -and "$($_.IsEopSession)" -ne \'True\' }) | Select-Object -Last 1',
    "if (-not $Connection) { throw 'Connect-ExchangeOnline did not leave a connected Exchange Online session.' }",
    ...tenantCheck,
    'Write-Done "connected as $($Connection.UserPrincipalName) to tenant $($Connection.TenantID)"',
    '',
  ];
}

function mailboxCheckStep(): string[] {
  return [
    "Write-Step 'Every mailbox exists (checked before anything is changed)'",
    '$Missing = @(foreach ($Mailbox in $Mailboxes) {',
    '    try { $null = Get-EXOMailbox -Identity $Mailbox -ErrorAction Stop }',
    '    catch { "$Mailbox ($($_.Exception.Message))" }',
    '})',
    'if ($Missing.Count -gt 0) {',
    '    throw ("No mailbox could be read for:`n    " + ($Missing -join "`n    ") + "`nNothing was changed.")',
    '}',
    'Write-Done "$($Mailboxes.Count) mailbox(es) found"',
    '',
  ];
}

function findServicePrincipal(): string[] {
  return [
    '# Listed and filtered rather than Get-ServicePrincipal -Identity: an unknown identity is an',
    '# error there, and whether -ErrorAction SilentlyContinue hides it differs between module',
    '# versions. An empty list is unambiguous.',
    '$Found = @(Get-ServicePrincipal | Where-Object { "$($_.AppId)" -eq $AppId })',
    'if ($Found.Count -gt 1) {',
    '    throw "Exchange lists $($Found.Count) service principals for app $AppId; remove the extra ones with Remove-ServicePrincipal and run this script again."',
    '}',
  ];
}

function trusteeAssignment(): string[] {
  return [
    '# The identity Exchange gives its service principal reference: -User and -Trustee resolve it',
    '# to exactly the object found or created above.',
    '$Trustee = $null',
    'if ($ServicePrincipal) { $Trustee = "$($ServicePrincipal.Identity)" }',
  ];
}

function listText(items: string[]): string {
  return items.length <= 1
    ? (items[0] ?? '')
    : `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

function gapReport(dryRunNote: string): string[] {
  return [
    'if ($Gaps.Count -gt 0) {',
    '    $Report = "The read-back found $($Gaps.Count) gap(s):`n    " + ($Gaps -join "`n    ")',
    '    if ($WhatIf) {',
    `        Write-Host "$Report\`n[dry run] ${dryRunNote}." -ForegroundColor Yellow`,
    '    } else {',
    '        throw $Report',
    '    }',
    '}',
  ];
}
