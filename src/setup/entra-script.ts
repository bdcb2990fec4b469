/**
 * The Entra ID side of app-only IMAP/POP/SMTP, as a script an administrator
 * reviews and runs: Azure CLI (bash) or Microsoft Graph PowerShell. Nothing
 * here talks to Entra; the script does, with the administrator's sign-in.
 *
 * Steps, in both flavours, each one reusing what it finds so the script can
 * run again:
 *   1. look up the app-role ids of IMAP.AccessAsApp, POP.AccessAsApp and
 *      SMTP.SendAsApp on the "Office 365 Exchange Online" service principal
 *      (appId 00000002-0000-0ff1-ce00-000000000000), by name: the ids are
 *      not written into the script;
 *   2. find the app registration by display name, or create it (single
 *      tenant);
 *   3. add the three application permissions to its required resource access;
 *   4. find or create its service principal (the Enterprise Application);
 *   5. grant admin consent (app role assignments to the service principal);
 *   6. upload the certificate, when one is given; it is embedded in the
 *      script (public part only), so the script runs anywhere, Cloud Shell
 *      included;
 *   7. print the tenant id, the application (client) id and the Enterprise
 *      Application's object id, which Exchange Online's New-ServicePrincipal
 *      needs.
 *
 * Values reach the script only through `shQuote` (POSIX sh) or `psString`
 * (PowerShell), once each, in a block of assignments at the top. The
 * PowerShell flavour is pure ASCII: Windows PowerShell 5.1 reads a file
 * without a byte order mark as Windows-1252.
 */
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: the strings are bash and PowerShell source, where ${...} is theirs.
import { X509Certificate } from 'node:crypto';
import { CLOUD_NAMES, type CloudName } from '../config/clouds.js';
import { ConfigurationError } from '../errors.js';
import type { ExchangeProtocol } from './exchange-plan.js';
import { displayNameProblem, psString } from './powershell.js';
import { findUnsafeCharacter, shQuote } from './shell-quote.js';

/** appId of "Office 365 Exchange Online", the same in every cloud. */
export const EXCHANGE_ONLINE_APP_ID = '00000002-0000-0ff1-ce00-000000000000';
/** Application permissions (app roles) of Exchange Online that mailbridge uses. */
export const EXCHANGE_APPLICATION_PERMISSIONS = [
  'IMAP.AccessAsApp',
  'POP.AccessAsApp',
  'SMTP.SendAsApp',
] as const;
/** The one of the protocols, or Mail.Send for High Volume Email (not a protocol of its own). */
export type ExchangeApplicationPermission =
  | (typeof EXCHANGE_APPLICATION_PERMISSIONS)[number]
  | typeof HVE_PERMISSION;

/** The application permission each protocol needs. */
export const PERMISSION_OF_PROTOCOL: Record<
  ExchangeProtocol,
  (typeof EXCHANGE_APPLICATION_PERMISSIONS)[number]
> = {
  imap: 'IMAP.AccessAsApp',
  pop: 'POP.AccessAsApp',
  smtp: 'SMTP.SendAsApp',
};

/**
 * What High Volume Email requires of the app: Exchange Online's `Mail.Send`
 * application permission (SMTP.SendAsApp is not enough), besides the app in
 * the HVE account's allowed apps (Add-HVEAppAccess, in Exchange).
 */
export const HVE_PERMISSION = 'Mail.Send';
/** Every permission a script may request, in the order it requests them. */
const ALL_PERMISSIONS: readonly ExchangeApplicationPermission[] = [
  ...EXCHANGE_APPLICATION_PERMISSIONS,
  HVE_PERMISSION,
];

/**
 * The permissions to request for these protocols. With `scopedSmtp`, SMTP is
 * granted in Exchange (a role assignment over a management scope), and the
 * tenant-wide SMTP.SendAsApp would make that scope moot, so it is left out.
 * With `hve`, Mail.Send for High Volume Email as well.
 */
export function entraPermissions(
  protocols: readonly ExchangeProtocol[],
  scopedSmtp: boolean,
  hve = false,
): ExchangeApplicationPermission[] {
  return ALL_PERMISSIONS.filter(
    (permission) =>
      (hve && permission === HVE_PERMISSION) ||
      protocols.some(
        (p) => PERMISSION_OF_PROTOCOL[p] === permission && !(scopedSmtp && p === 'smtp'),
      ),
  );
}

export const ENTRA_SCRIPT_SHELLS = ['az', 'pwsh'] as const;
export type EntraScriptShell = (typeof ENTRA_SCRIPT_SHELLS)[number];

export const DEFAULT_APP_NAME = 'mailbridge';
/** The Entra admin center's limit for an app registration's name. */
export const MAX_APP_NAME_LENGTH = 120;

/** `az cloud set --name` per cloud. Azure CLI has no DoD cloud of its own. */
export const AZ_CLOUD_NAMES: Record<CloudName, string> = {
  global: 'AzureCloud',
  'usgov-high': 'AzureUSGovernment',
  'usgov-dod': 'AzureUSGovernment',
  china: 'AzureChinaCloud',
};

/** `Connect-MgGraph -Environment` per cloud. */
export const GRAPH_POWERSHELL_ENVIRONMENTS: Record<CloudName, string> = {
  global: 'Global',
  'usgov-high': 'USGov',
  'usgov-dod': 'USGovDoD',
  china: 'China',
};

export interface EntraScriptOptions {
  shell: EntraScriptShell;
  /** Display name of the app registration, reused when one exists. @default 'mailbridge' */
  appName?: string;
  /**
   * The certificate to upload: PEM text, DER bytes or a parsed certificate.
   * Only its public part ends up in the script.
   */
  certificate?: string | Buffer | X509Certificate;
  /** @default 'global' */
  cloud?: CloudName;
  /** The time the certificate's validity is checked against. @default new Date() */
  now?: Date;
  /** Application permissions to request. @default all of EXCHANGE_APPLICATION_PERMISSIONS */
  permissions?: readonly ExchangeApplicationPermission[];
  /**
   * SMTP is granted through a scope in Exchange: the script removes
   * SMTP.SendAsApp from the requested permissions (and, in PowerShell, revokes
   * its grant) when an earlier run added it.
   */
  scopedSmtp?: boolean;
}

/**
 * Renders the script. Pure: same options, same text.
 *
 * @throws ConfigurationError `SETUP_APP_NAME`, `SETUP_SHELL`, `SETUP_CLOUD_INVALID`,
 *   `SETUP_CERT_INVALID` or `SETUP_CERT_EXPIRED`
 */
export function renderEntraScript(options: EntraScriptOptions): string {
  const shell = options.shell;
  if (!ENTRA_SCRIPT_SHELLS.includes(shell)) {
    throw new ConfigurationError({
      code: 'SETUP_SHELL',
      message: `Unknown shell '${String(shell)}'`,
      remedy: 'Use --shell az (Azure CLI, bash) or --shell pwsh (Microsoft Graph PowerShell).',
    });
  }
  const cloud = options.cloud ?? 'global';
  if (!CLOUD_NAMES.includes(cloud)) {
    throw new ConfigurationError({
      code: 'SETUP_CLOUD_INVALID',
      message: `Unknown cloud '${String(cloud)}'`,
      remedy: `Use one of ${CLOUD_NAMES.join(', ')}.`,
    });
  }
  const appName = checkAppName(options.appName ?? DEFAULT_APP_NAME, shell);
  const certificate =
    options.certificate === undefined
      ? undefined
      : describeCertificate(options.certificate, options.now ?? new Date());
  const scopedSmtp = options.scopedSmtp === true;
  const permissions = ALL_PERMISSIONS.filter(
    (p) =>
      (options.permissions ?? (EXCHANGE_APPLICATION_PERMISSIONS as readonly string[])).includes(
        p,
      ) && !(scopedSmtp && p === WITHHELD_PERMISSION),
  );
  const plan: Plan = { appName, cloud, certificate, permissions, scopedSmtp };
  return shell === 'az' ? renderAz(plan) : renderPwsh(plan);
}

/** What the user should know before running the script, e.g. Azure CLI and DoD. */
export function entraScriptWarnings(
  options: Pick<EntraScriptOptions, 'shell' | 'cloud'>,
): string[] {
  if (options.shell === 'az' && options.cloud === 'usgov-dod') {
    return [
      'Azure CLI has no DoD cloud: its AzureUSGovernment cloud talks to Microsoft Graph at graph.microsoft.us, while DoD tenants use dod-graph.microsoft.us. If the az ad commands fail, use --shell pwsh (Connect-MgGraph -Environment USGovDoD).',
    ];
  }
  return [];
}

/**
 * An app registration name: 1 to 120 characters, no control or format
 * characters, no leading or trailing space; for PowerShell, printable ASCII
 * only (see powershell.ts).
 *
 * @throws ConfigurationError `SETUP_APP_NAME`
 */
export function checkAppName(value: string, shell: EntraScriptShell = 'az'): string {
  const unsafe = findUnsafeCharacter(value);
  const problem =
    value.trim() === ''
      ? 'is empty'
      : unsafe
        ? `holds the control character ${unsafe}`
        : [...value].length > MAX_APP_NAME_LENGTH
          ? `is longer than ${MAX_APP_NAME_LENGTH} characters`
          : value !== value.trim()
            ? 'starts or ends with a space'
            : shell === 'pwsh'
              ? displayNameProblem(value)?.replace(/^the display name /, '')
              : undefined;
  if (problem) {
    throw new ConfigurationError({
      code: 'SETUP_APP_NAME',
      message: `The app name ${problem}`,
      remedy: `Give a plain name with --app-name, such as --app-name 'mailbridge archive' (at most ${MAX_APP_NAME_LENGTH} characters).`,
    });
  }
  return value;
}

interface CertificateFacts {
  /** Base64 of the DER bytes. */
  base64: string;
  sha1Hex: string;
  sha1Base64: string;
  sha256Hex: string;
  notAfter: string;
}

interface Plan {
  appName: string;
  cloud: CloudName;
  certificate: CertificateFacts | undefined;
  permissions: readonly ExchangeApplicationPermission[];
  scopedSmtp: boolean;
}

/** The permission --scoped-smtp keeps out of the app's grants. */
const WITHHELD_PERMISSION: ExchangeApplicationPermission = 'SMTP.SendAsApp';

function describeCertificate(
  input: string | Buffer | X509Certificate,
  now: Date,
): CertificateFacts {
  let x509: X509Certificate;
  try {
    x509 = input instanceof X509Certificate ? input : new X509Certificate(input);
  } catch {
    throw new ConfigurationError({
      code: 'SETUP_CERT_INVALID',
      message: 'The certificate to upload cannot be parsed',
      remedy: 'Give the certificate file (PEM or DER) that `mailbridge setup cert` wrote.',
    });
  }
  const notAfter = new Date(x509.validTo);
  if (notAfter.getTime() <= now.getTime()) {
    throw new ConfigurationError({
      code: 'SETUP_CERT_EXPIRED',
      message: `The certificate expired on ${notAfter.toISOString()}`,
      remedy: 'Make a new one with `mailbridge setup cert --out-dir DIR` and give that.',
    });
  }
  const sha1 = Buffer.from(x509.fingerprint.replaceAll(':', ''), 'hex');
  return {
    base64: x509.raw.toString('base64'),
    sha1Hex: sha1.toString('hex').toUpperCase(),
    sha1Base64: sha1.toString('base64'),
    sha256Hex: x509.fingerprint256.replaceAll(':', '').toUpperCase(),
    notAfter: notAfter.toISOString().replace(/\.\d{3}Z$/, 'Z'),
  };
}

/** OData string literal: single quotes, a quote written twice. */
function odataString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

function pemLines(base64: string): string[] {
  const lines = ['-----BEGIN CERTIFICATE-----'];
  for (let i = 0; i < base64.length; i += 64) lines.push(base64.slice(i, i + 64));
  lines.push('-----END CERTIFICATE-----');
  return lines;
}

const HEADER_LINES = [
  'Entra ID side of app-only IMAP, POP and SMTP for Exchange Online (mailbridge).',
  'Review it, then run it as an administrator who may grant tenant-wide admin',
  'consent (Global Administrator or Privileged Role Administrator). Running it',
  'again is safe: it reuses the app registration, service principal, permissions',
  'and certificate it finds.',
];

function renderAz(plan: Plan): string {
  const q = shQuote;
  const cert = plan.certificate;
  const lines = [
    '#!/usr/bin/env bash',
    ...HEADER_LINES.map((line) => `# ${line}`),
    '# Printed by `mailbridge setup entra --shell az`; needs Azure CLI 2.37 or later.',
    '# To choose the tenant, sign in first: az login --tenant <tenant> --allow-no-subscriptions',
    ...(plan.cloud === 'usgov-dod'
      ? [
          '# DoD: Azure CLI has no DoD cloud; AzureUSGovernment uses graph.microsoft.us.',
          '# If the az ad commands fail, use `mailbridge setup entra --shell pwsh` instead.',
        ]
      : []),
    'set -euo pipefail',
    '',
    `APP_NAME=${q(plan.appName, 'The app name')}`,
    `APP_FILTER=${q(`displayName eq ${odataString(plan.appName)}`, 'The app name')}`,
    `AZ_CLOUD=${q(AZ_CLOUD_NAMES[plan.cloud])}`,
    '# "Office 365 Exchange Online"; its app-role ids are looked up below, by name.',
    `EXCHANGE_APP_ID=${q(EXCHANGE_ONLINE_APP_ID)}`,
    `EXCHANGE_ROLES=(${plan.permissions.map((role) => q(role)).join(' ')})`,
    ...(plan.scopedSmtp
      ? [
          '# --scoped-smtp: Exchange grants SMTP through a role assignment over a scope;',
          '# this tenant-wide permission would make that scope moot, so it is kept out.',
          `WITHHELD_ROLE=${q(WITHHELD_PERMISSION)}`,
        ]
      : []),
    ...(cert
      ? [
          `CERT_SHA1_HEX=${q(cert.sha1Hex)}`,
          `CERT_SHA1_BASE64=${q(cert.sha1Base64)}`,
          `# SHA-256 thumbprint ${cert.sha256Hex}, valid until ${cert.notAfter}`,
        ]
      : []),
    '',
    'say() { printf \'%s\\n\' "$*" >&2; }',
    'fail() { say "error: $*"; exit 1; }',
    '# A new object takes a while to replicate inside Entra ID: the next call may not find it yet.',
    'retry() {',
    '  local attempt=1',
    '  until "$@"; do',
    '    [ "$attempt" -lt 6 ] || return 1',
    '    say "   not ready yet, retrying in 10 s ($attempt/5)"',
    '    sleep 10',
    '    attempt=$((attempt + 1))',
    '  done',
    '}',
    'command -v az >/dev/null || fail "Azure CLI (az) is not installed"',
    '',
    "say '== 0. Cloud and sign-in'",
    'az cloud set --name "$AZ_CLOUD"',
    'az account show --output none 2>/dev/null || az login --allow-no-subscriptions --output none',
    'TENANT_ID="$(az account show --query tenantId --output tsv)"',
    'say "   tenant $TENANT_ID"',
    '',
    "say '== 1. Exchange Online application permissions (app-role ids looked up by name)'",
    'ROLE_IDS=()',
    '# ${a[@]+"${a[@]}"}: an empty list under set -u, in every bash.',
    'for role in ${EXCHANGE_ROLES[@]+"${EXCHANGE_ROLES[@]}"}; do',
    '  role_id="$(az ad sp show --id "$EXCHANGE_APP_ID" \\',
    "    --query \"appRoles[?value=='$role' && contains(allowedMemberTypes, 'Application')].id | [0]\" \\",
    '    --output tsv)" ||',
    '    fail \'cannot read the "Office 365 Exchange Online" service principal: does the tenant have Exchange Online?\'',
    '  [ -n "$role_id" ] || fail "Office 365 Exchange Online offers no application permission $role"',
    '  ROLE_IDS+=("$role_id")',
    '  say "   $role = $role_id"',
    'done',
    ...(plan.scopedSmtp
      ? [
          'WITHHELD_ID="$(az ad sp show --id "$EXCHANGE_APP_ID" \\',
          "  --query \"appRoles[?value=='$WITHHELD_ROLE' && contains(allowedMemberTypes, 'Application')].id | [0]\" \\",
          '  --output tsv)"',
          'say "   $WITHHELD_ROLE: not requested (--scoped-smtp)"',
        ]
      : []),
    '',
    "say '== 2. App registration'",
    'APP_IDS="$(az ad app list --filter "$APP_FILTER" --query \'[].appId\' --output tsv)"',
    'APP_COUNT="$(grep -c . <<<"$APP_IDS" || true)"',
    'if [ "$APP_COUNT" -gt 1 ]; then',
    '  fail "$APP_COUNT app registrations are named $APP_NAME: rename the extra ones or choose another --app-name"',
    'elif [ "$APP_COUNT" -eq 1 ]; then',
    '  APP_ID="$APP_IDS"',
    '  say "   reusing $APP_NAME ($APP_ID)"',
    'else',
    '  APP_ID="$(az ad app create --display-name "$APP_NAME" --sign-in-audience AzureADMyOrg \\',
    '    --query appId --output tsv)"',
    '  say "   created $APP_NAME ($APP_ID)"',
    'fi',
    '',
    "say '== 3. Requested permissions'",
    'PRESENT="$(az ad app show --id "$APP_ID" \\',
    '  --query "requiredResourceAccess[?resourceAppId==\'$EXCHANGE_APP_ID\'].resourceAccess[].id" --output tsv)"',
    'MISSING=()',
    'for role_id in ${ROLE_IDS[@]+"${ROLE_IDS[@]}"}; do',
    '  grep -qxF -e "$role_id" <<<"$PRESENT" || MISSING+=("$role_id=Role")',
    'done',
    'if [ "${#MISSING[@]}" -gt 0 ]; then',
    '  az ad app permission add --id "$APP_ID" --api "$EXCHANGE_APP_ID" --api-permissions "${MISSING[@]}" \\',
    '    --output none',
    '  say "   added ${#MISSING[@]} application permission(s)"',
    'else',
    "  say '   already requested'",
    'fi',
    ...(plan.scopedSmtp
      ? [
          'if [ -n "$WITHHELD_ID" ] && grep -qxF -e "$WITHHELD_ID" <<<"$PRESENT"; then',
          '  az ad app permission delete --id "$APP_ID" --api "$EXCHANGE_APP_ID" --api-permissions "$WITHHELD_ID" \\',
          '    --output none',
          '  say "   removed $WITHHELD_ROLE from the requested permissions (--scoped-smtp)"',
          'fi',
        ]
      : []),
    '',
    "say '== 4. Service principal (Enterprise Application)'",
    'SP_ID="$(az ad sp list --filter "appId eq \'$APP_ID\'" --query \'[0].id\' --output tsv)"',
    'if [ -z "$SP_ID" ]; then',
    '  SP_ID="$(retry az ad sp create --id "$APP_ID" --query id --output tsv)"',
    '  say "   created $SP_ID"',
    'else',
    '  say "   reusing $SP_ID"',
    'fi',
    '',
    "say '== 5. Admin consent'",
    ...(plan.permissions.length > 0
      ? ['retry az ad app permission admin-consent --id "$APP_ID"', "say '   granted'"]
      : ["say '   nothing to consent to: no Exchange Online permission is requested'"]),
    ...(plan.scopedSmtp
      ? [
          'say "   note: a $WITHHELD_ROLE grant from an earlier consent stays until revoked (Entra admin center >"',
          'say "   Enterprise applications > $APP_NAME > Permissions); while the app holds it, the Exchange scope"',
          'say "   limits nothing; mailbridge doctor --scoped-smtp shows it among the roles of the token."',
        ]
      : []),
    '',
    ...(cert
      ? [
          "say '== 6. Certificate'",
          'CERT_FILE="$(mktemp)"',
          'trap \'rm -f "$CERT_FILE"\' EXIT',
          "printf '%s\\n' \\",
          ...pemLines(cert.base64).map((line) => `  ${q(line)} \\`),
          '  >"$CERT_FILE"',
          'KEY_IDS="$(az ad app credential list --id "$APP_ID" --cert --query \'[].customKeyIdentifier\' --output tsv)"',
          'if grep -qxF -e "$CERT_SHA1_HEX" -e "$CERT_SHA1_BASE64" <<<"$KEY_IDS"; then',
          '  say "   already uploaded ($CERT_SHA1_HEX)"',
          'else',
          '  az ad app credential reset --id "$APP_ID" --cert "@$CERT_FILE" --append --output none',
          '  say "   uploaded ($CERT_SHA1_HEX)"',
          'fi',
        ]
      : [
          "say '== 6. Certificate: none given'",
          "say '   Make one with: mailbridge setup cert --out-dir DIR'",
          "say '   then run: mailbridge setup entra --cert DIR/mailbridge.crt (or upload DIR/mailbridge.cer under Certificates & secrets)'",
        ]),
    '',
    "say '== 7. Result'",
    'SP_OBJECT_ID="$(az ad sp show --id "$APP_ID" --query id --output tsv)"',
    'printf \'Tenant (directory) id:            %s\\n\' "$TENANT_ID"',
    'printf \'Application (client) id:          %s\\n\' "$APP_ID"',
    'printf \'Enterprise Application object id: %s\\n\' "$SP_OBJECT_ID"',
    "printf 'Next, in Exchange Online PowerShell (Connect-ExchangeOnline):\\n'",
    'printf \'  New-ServicePrincipal -AppId %s -ObjectId %s\\n\' "$APP_ID" "$SP_OBJECT_ID"',
  ];
  return `${lines.join('\n')}\n`;
}

function renderPwsh(plan: Plan): string {
  const p = psString;
  const cert = plan.certificate;
  const lines = [
    ...HEADER_LINES.map((line) => `# ${line}`),
    '# Printed by `mailbridge setup entra --shell pwsh`; needs the Microsoft Graph',
    '# PowerShell SDK: Install-Module Microsoft.Graph -Scope CurrentUser',
    '#Requires -Modules Microsoft.Graph.Authentication, Microsoft.Graph.Applications',
    "$ErrorActionPreference = 'Stop'",
    '',
    `$AppName = ${p(plan.appName)}`,
    `$AppFilter = ${p(`displayName eq ${odataString(plan.appName)}`)}`,
    `$GraphEnvironment = ${p(GRAPH_POWERSHELL_ENVIRONMENTS[plan.cloud])}`,
    '# "Office 365 Exchange Online"; its app-role ids are looked up below, by name.',
    `$ExchangeAppId = ${p(EXCHANGE_ONLINE_APP_ID)}`,
    `$ExchangeRoles = @(${plan.permissions.map((role) => p(role)).join(', ')})`,
    ...(plan.scopedSmtp
      ? [
          '# --scoped-smtp: Exchange grants SMTP through a role assignment over a scope;',
          '# this tenant-wide permission would make that scope moot, so it is kept out.',
          `$WithheldRoleName = ${p(WITHHELD_PERMISSION)}`,
        ]
      : []),
    ...(cert
      ? [
          `# SHA-1 thumbprint ${cert.sha1Hex}, SHA-256 ${cert.sha256Hex}, valid until ${cert.notAfter}`,
          `$CertificateBase64 = ${p(cert.base64)}`,
        ]
      : []),
    '',
    '# A new object takes a while to replicate inside Entra ID: the next call may not find it yet.',
    'function Invoke-WithRetry([scriptblock] $Action) {',
    '  for ($attempt = 1; ; $attempt++) {',
    '    try { return & $Action }',
    '    catch {',
    '      if ($attempt -ge 6) { throw }',
    '      Write-Host "   not ready yet, retrying in 10 s ($attempt/5): $($_.Exception.Message)"',
    '      Start-Sleep -Seconds 10',
    '    }',
    '  }',
    '}',
    '',
    "Write-Host '== 0. Sign-in'",
    "Connect-MgGraph -Environment $GraphEnvironment -Scopes 'Application.ReadWrite.All', 'AppRoleAssignment.ReadWrite.All' -NoWelcome",
    '$TenantId = (Get-MgContext).TenantId',
    'Write-Host "   tenant $TenantId"',
    '',
    "Write-Host '== 1. Exchange Online application permissions (app-role ids looked up by name)'",
    '$Exchange = Get-MgServicePrincipal -Filter "appId eq \'$ExchangeAppId\'"',
    'if (-not $Exchange) {',
    '  throw \'The tenant has no "Office 365 Exchange Online" service principal: does it have Exchange Online?\'',
    '}',
    '$Roles = @(foreach ($name in $ExchangeRoles) {',
    '  $role = $Exchange.AppRoles |',
    "    Where-Object { $_.Value -eq $name -and $_.AllowedMemberTypes -contains 'Application' } |",
    '    Select-Object -First 1',
    '  if (-not $role) { throw "Office 365 Exchange Online offers no application permission $name." }',
    '  Write-Host "   $name = $($role.Id)"',
    '  $role',
    '})',
    ...(plan.scopedSmtp
      ? [
          '$Withheld = $Exchange.AppRoles |',
          "  Where-Object { $_.Value -eq $WithheldRoleName -and $_.AllowedMemberTypes -contains 'Application' } |",
          '  Select-Object -First 1',
          'Write-Host "   $WithheldRoleName not requested (--scoped-smtp)"',
        ]
      : []),
    '',
    "Write-Host '== 2. App registration'",
    '$apps = @(Get-MgApplication -Filter $AppFilter -All)',
    'if ($apps.Count -gt 1) {',
    '  throw "$($apps.Count) app registrations are named ${AppName}: rename the extra ones or choose another --app-name."',
    '}',
    'if ($apps.Count -eq 1) {',
    '  $App = $apps[0]',
    '  Write-Host "   reusing $AppName ($($App.AppId))"',
    '} else {',
    "  $App = New-MgApplication -DisplayName $AppName -SignInAudience 'AzureADMyOrg'",
    '  Write-Host "   created $AppName ($($App.AppId))"',
    '}',
    '',
    "Write-Host '== 3. Requested permissions'",
    '# requiredResourceAccess is replaced as a whole: what the app already asks for is sent back with it.',
    '$required = @()',
    '$exchangeAccess = @()',
    'foreach ($resource in $App.RequiredResourceAccess) {',
    '  $access = @(foreach ($item in $resource.ResourceAccess) { @{ Id = $item.Id; Type = $item.Type } })',
    '  if ($resource.ResourceAppId -eq $ExchangeAppId) { $exchangeAccess += $access }',
    '  else { $required += @{ ResourceAppId = $resource.ResourceAppId; ResourceAccess = $access } }',
    '}',
    '$missing = @(foreach ($role in $Roles) {',
    "  if (-not @($exchangeAccess | Where-Object { $_.Id -eq $role.Id -and $_.Type -eq 'Role' }).Count) { $role }",
    '})',
    ...(plan.scopedSmtp
      ? [
          '$dropped = @($exchangeAccess | Where-Object { $Withheld -and $_.Id -eq $Withheld.Id })',
          '$exchangeAccess = @($exchangeAccess | Where-Object { -not ($Withheld -and $_.Id -eq $Withheld.Id) })',
        ]
      : ['$dropped = @()']),
    'if ($missing.Count -gt 0 -or $dropped.Count -gt 0) {',
    "  $exchangeAccess += @(foreach ($role in $missing) { @{ Id = $role.Id; Type = 'Role' } })",
    '  if ($exchangeAccess.Count -gt 0) {',
    '    $required += @{ ResourceAppId = $ExchangeAppId; ResourceAccess = $exchangeAccess }',
    '  }',
    '  Update-MgApplication -ApplicationId $App.Id -RequiredResourceAccess $required',
    '  if ($missing.Count -gt 0) { Write-Host "   added $(($missing | ForEach-Object { $_.Value }) -join \', \')" }',
    '  if ($dropped.Count -gt 0) { Write-Host "   removed $WithheldRoleName from the requested permissions (--scoped-smtp)" }',
    '} else {',
    "  Write-Host '   already requested'",
    '}',
    '',
    "Write-Host '== 4. Service principal (Enterprise Application)'",
    '$Sp = Get-MgServicePrincipal -Filter "appId eq \'$($App.AppId)\'"',
    'if (-not $Sp) {',
    '  $Sp = Invoke-WithRetry { New-MgServicePrincipal -AppId $App.AppId }',
    '  Write-Host "   created $($Sp.Id)"',
    '} else {',
    '  Write-Host "   reusing $($Sp.Id)"',
    '}',
    '',
    "Write-Host '== 5. Admin consent (an app role assignment per permission)'",
    '$assigned = @(Get-MgServicePrincipalAppRoleAssignment -ServicePrincipalId $Sp.Id -All)',
    'foreach ($role in $Roles) {',
    '  if (@($assigned | Where-Object { $_.ResourceId -eq $Exchange.Id -and $_.AppRoleId -eq $role.Id }).Count) {',
    '    Write-Host "   $($role.Value): already granted"',
    '    continue',
    '  }',
    '  Invoke-WithRetry {',
    '    New-MgServicePrincipalAppRoleAssignment -ServicePrincipalId $Sp.Id -PrincipalId $Sp.Id `',
    '      -ResourceId $Exchange.Id -AppRoleId $role.Id',
    '  } | Out-Null',
    '  Write-Host "   $($role.Value): granted"',
    '}',
    ...(plan.scopedSmtp
      ? [
          '# A grant from an earlier consent would let the app send as every mailbox: revoke it.',
          'foreach ($grant in @($assigned | Where-Object { $Withheld -and $_.ResourceId -eq $Exchange.Id -and $_.AppRoleId -eq $Withheld.Id })) {',
          '  Remove-MgServicePrincipalAppRoleAssignment -ServicePrincipalId $Sp.Id -AppRoleAssignmentId $grant.Id',
          '  Write-Host "   revoked the tenant-wide $WithheldRoleName grant (--scoped-smtp)"',
          '}',
        ]
      : []),
    '',
    ...(cert
      ? [
          "Write-Host '== 6. Certificate'",
          '$Certificate = [System.Security.Cryptography.X509Certificates.X509Certificate2]::new(',
          '  [Convert]::FromBase64String($CertificateBase64))',
          '$thumbprint = [Convert]::ToBase64String($Certificate.GetCertHash())',
          '# keyCredentials is replaced as a whole: the certificates already there are sent back with it',
          '# (a single-object GET with $select returns their key).',
          "$current = (Get-MgApplication -ApplicationId $App.Id -Property 'keyCredentials').KeyCredentials",
          '$keys = @()',
          '$present = $false',
          'foreach ($key in $current) {',
          '  if ($key.CustomKeyIdentifier -and [Convert]::ToBase64String($key.CustomKeyIdentifier) -eq $thumbprint) {',
          '    $present = $true',
          '  }',
          '  $keys += @{',
          '    CustomKeyIdentifier = $key.CustomKeyIdentifier; DisplayName = $key.DisplayName',
          '    StartDateTime = $key.StartDateTime; EndDateTime = $key.EndDateTime',
          '    Key = $key.Key; KeyId = $key.KeyId; Type = $key.Type; Usage = $key.Usage',
          '  }',
          '}',
          'if ($present) {',
          '  Write-Host "   already uploaded ($($Certificate.Thumbprint))"',
          '} else {',
          '  $keys += @{',
          '    CustomKeyIdentifier = $Certificate.GetCertHash()',
          '    DisplayName = $Certificate.Subject',
          '    StartDateTime = $Certificate.NotBefore.ToUniversalTime()',
          '    EndDateTime = $Certificate.NotAfter.ToUniversalTime()',
          '    Key = $Certificate.RawData',
          "    Type = 'AsymmetricX509Cert'",
          "    Usage = 'Verify'",
          '  }',
          '  Update-MgApplication -ApplicationId $App.Id -KeyCredentials $keys',
          '  Write-Host "   uploaded ($($Certificate.Thumbprint))"',
          '}',
        ]
      : [
          "Write-Host '== 6. Certificate: none given'",
          "Write-Host '   Make one with: mailbridge setup cert --out-dir DIR'",
          "Write-Host '   then run: mailbridge setup entra --shell pwsh --cert DIR/mailbridge.crt (or upload DIR/mailbridge.cer under Certificates & secrets)'",
        ]),
    '',
    "Write-Host '== 7. Result'",
    '$SpObjectId = (Get-MgServicePrincipal -Filter "appId eq \'$($App.AppId)\'").Id',
    'Write-Host "Tenant (directory) id:            $TenantId"',
    'Write-Host "Application (client) id:          $($App.AppId)"',
    'Write-Host "Enterprise Application object id: $SpObjectId"',
    "Write-Host 'Next, in Exchange Online PowerShell (Connect-ExchangeOnline):'",
    'Write-Host "  New-ServicePrincipal -AppId $($App.AppId) -ObjectId $SpObjectId"',
  ];
  return `${lines.join('\n')}\n`;
}
