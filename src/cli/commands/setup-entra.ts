import { CERTIFICATE_EXPIRY_WARNING_DAYS } from '../../config/certificate.js';
import type { CloudName } from '../../config/clouds.js';
import { ExitCode } from '../../errors.js';
import { readPublicCertificate } from '../../setup/certificate.js';
import {
  DEFAULT_APP_NAME,
  type EntraScriptShell,
  entraPermissions,
  entraScriptWarnings,
  renderEntraScript,
} from '../../setup/entra-script.js';
import {
  DEFAULT_PROTOCOLS,
  EXCHANGE_PROTOCOLS,
  type ExchangeProtocol,
} from '../../setup/exchange-plan.js';
import { closestName } from '../../util/did-you-mean.js';
import { displayText } from '../../util/display-text.js';
import { usageError } from '../args.js';
import type { Command } from '../command.js';
import { writeWarning } from '../output.js';

const DAY_MS = 86_400_000;

export const setupEntraCommand: Command = {
  name: 'setup entra',
  summary: 'print the Entra ID setup (app, permissions, consent, certificate) as a script',
  usage:
    'setup entra [--shell az|pwsh] [--app-name NAME] [--cert FILE] [--protocols imap,pop,smtp] [--scoped-smtp] [--hve] [--cloud NAME]',
  usesSettings: false,
  flags: [
    {
      name: 'shell',
      type: 'string',
      value: 'az|pwsh',
      help: 'az: Azure CLI in bash (default); pwsh: Microsoft Graph PowerShell',
    },
    {
      name: 'app-name',
      type: 'string',
      value: 'NAME',
      help: `app registration display name, reused when it exists (default ${DEFAULT_APP_NAME})`,
    },
    {
      name: 'cert',
      type: 'string',
      value: 'FILE',
      help: 'certificate to upload, PEM or DER, without its key (e.g. mailbridge.crt)',
    },
    {
      name: 'protocols',
      type: 'string',
      value: 'LIST',
      help: 'imap, pop, smtp, comma-separated: the permissions to request (default imap,smtp)',
    },
    {
      name: 'scoped-smtp',
      type: 'boolean',
      help: 'leave SMTP.SendAsApp out: SMTP is granted in Exchange over a scope (setup exchange --smtp-scope)',
    },
    {
      name: 'hve',
      type: 'boolean',
      help: 'also request Mail.Send (Exchange Online, application), which High Volume Email requires (relay.routes.hve)',
    },
    {
      name: 'cloud',
      type: 'string',
      value: 'NAME',
      help: 'global (default) | usgov-high | usgov-dod | china',
    },
  ],
  details: [
    'The script, run by an administrator who may grant tenant-wide admin consent:',
    '  1. looks up the app-role ids of the permissions the protocols need (IMAP.AccessAsApp,',
    '     POP.AccessAsApp, SMTP.SendAsApp; --protocols, default imap,smtp) on',
    '     "Office 365 Exchange Online" (appId 00000002-0000-0ff1-ce00-000000000000), by name;',
    '  2. finds the app registration by name or creates it (single tenant);',
    '  3. adds those application permissions; 4. finds or creates its service principal;',
    '  5. grants admin consent; 6. uploads the certificate (embedded in the script, public part only);',
    "  7. prints the tenant id, the application (client) id and the Enterprise Application's",
    '     object id, for New-ServicePrincipal in Exchange Online.',
    'With --scoped-smtp, SMTP.SendAsApp is not requested, and an earlier request of it is removed',
    '(the PowerShell flavour also revokes its grant): SMTP is then granted in Exchange, over a',
    'management scope (setup exchange --smtp-scope), which a tenant-wide grant would make moot.',
    'With --hve, Mail.Send (Exchange Online, application) is requested too: High Volume Email',
    "takes the app only with it, and with the app in the HVE account's allowed apps",
    '(setup exchange --hve-account).',
    'Each step reuses what exists, so the script can run again. Nothing is changed by this',
    'command itself: review the script, then run it, e.g.',
    '  mailbridge setup entra --cert certs/mailbridge.crt > entra.sh && bash entra.sh',
    '  mailbridge setup entra --shell pwsh --cert certs/mailbridge.crt > entra.ps1; ./entra.ps1',
  ].join('\n'),
  async run({ args, io }) {
    const shell = stringFlag(args.values.shell) ?? 'az';
    if (shell !== 'az' && shell !== 'pwsh') {
      throw usageError(
        `--shell must be az or pwsh, not '${shell}'`,
        'Use --shell az (Azure CLI, bash) or --shell pwsh (Microsoft Graph PowerShell).',
      );
    }
    const cloud = (stringFlag(args.values.cloud) ?? 'global') as CloudName;
    const certPath = stringFlag(args.values.cert);
    const certificate = certPath === undefined ? undefined : await readPublicCertificate(certPath);
    const scopedSmtp = args.values['scoped-smtp'] === true;
    const protocols = parseProtocolList(stringFlag(args.values.protocols));
    const script = renderEntraScript({
      shell: shell as EntraScriptShell,
      permissions: entraPermissions(protocols, scopedSmtp, args.values.hve === true),
      scopedSmtp,
      appName: stringFlag(args.values['app-name']) ?? DEFAULT_APP_NAME,
      cloud,
      ...(certificate ? { certificate } : {}),
    });
    const warnings = entraScriptWarnings({ shell, cloud });
    if (certificate) {
      const days = Math.ceil((new Date(certificate.validTo).getTime() - Date.now()) / DAY_MS);
      if (days <= CERTIFICATE_EXPIRY_WARNING_DAYS) {
        warnings.push(
          `The certificate expires in ${days} day${days === 1 ? '' : 's'}: make a new one with \`mailbridge setup cert\` soon.`,
        );
      }
    }
    for (const warning of warnings) writeWarning(io.stderr, warning);
    io.stdout.write(script);
    return ExitCode.ok;
  },
};

/** `imap,smtp` → ['imap', 'smtp']; an unknown name is a usage error. */
function parseProtocolList(value: string | undefined): ExchangeProtocol[] {
  if (value === undefined) return [...DEFAULT_PROTOCOLS];
  const names = value
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter(Boolean);
  for (const name of names) {
    if (!(EXCHANGE_PROTOCOLS as readonly string[]).includes(name)) {
      const guess = closestName(name, EXCHANGE_PROTOCOLS);
      throw usageError(
        `--protocols: '${displayText(name, 40)}' is not a protocol${guess ? ` (did you mean ${guess}?)` : ''}`,
        `Name one or more of ${EXCHANGE_PROTOCOLS.join(', ')}, comma-separated, e.g. --protocols imap,smtp.`,
      );
    }
  }
  if (names.length === 0) {
    throw usageError(
      '--protocols names no protocol',
      `Name one or more of ${EXCHANGE_PROTOCOLS.join(', ')}, comma-separated.`,
    );
  }
  return EXCHANGE_PROTOCOLS.filter((p) => names.includes(p));
}

function stringFlag(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}
