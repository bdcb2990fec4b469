import { chmod, writeFile } from 'node:fs/promises';
import { describeFsError, readConfigFile } from '../../config/file.js';
import { type ConfigProblem, ConfigurationError, ExitCode } from '../../errors.js';
import {
  EXCHANGE_PLAN_KEYS,
  type ExchangePlan,
  type ExchangePlanInput,
  exchangeSectionOf,
  parseExchangePlan,
} from '../../setup/exchange-plan.js';
import { renderExchangeScript } from '../../setup/exchange-script.js';
import { type MailboxEntry, readMailboxList } from '../../setup/mailbox-list.js';
import type { ParsedArgs } from '../args.js';
import type { Command } from '../command.js';
import { writeLine } from '../output.js';

/** Plan keys and the flags that set them. */
const FLAG_OF: Record<string, string> = {
  tenant: '--tenant',
  appId: '--app-id',
  objectId: '--object-id',
  displayName: '--display-name',
  mailboxes: '--mailbox/--mailboxes',
  protocols: '--protocols',
  sendAs: '--send-as',
  enableProtocols: '--enable-protocols',
  cloud: '--cloud',
  remove: '--remove',
  smtpScope: '--smtp-scope',
  hveAccount: '--hve-account',
};

/**
 * Top-level config keys used when `setup.exchange` does not name the value:
 * the connection settings already hold the tenant, the app and the cloud.
 */
const FALLBACK_KEY: Record<string, string> = {
  tenant: 'tenantId',
  appId: 'clientId',
  cloud: 'cloud',
};

export const setupExchangeCommand: Command = {
  name: 'setup exchange',
  summary:
    'write the PowerShell script that gives the app IMAP/POP/SMTP access to Exchange Online mailboxes',
  usage:
    'setup exchange --tenant ID --app-id ID --object-id ID (--mailbox ADDRESS... | --mailboxes FILE) [--protocols imap,pop,smtp] [--send-as] [--enable-protocols] [--smtp-scope group:NAME|mailboxes] [--hve-account ADDRESS] [--cloud NAME] [--remove] [--out FILE [--force]]',
  usesSettings: false,
  flags: [
    {
      name: 'tenant',
      type: 'string',
      value: 'ID',
      help: 'directory (tenant) id or a verified domain of the organization',
    },
    { name: 'app-id', type: 'string', value: 'ID', help: 'application (client) id of the app' },
    {
      name: 'object-id',
      type: 'string',
      value: 'ID',
      help: "object id of the app's Enterprise Application (service principal), NOT the App Registration's",
    },
    {
      name: 'display-name',
      type: 'string',
      value: 'NAME',
      help: 'name of the service principal in Exchange (default mailbridge)',
    },
    {
      name: 'mailbox',
      type: 'string',
      multiple: true,
      value: 'ADDRESS',
      help: 'mailbox the app may use (repeatable)',
    },
    {
      name: 'mailboxes',
      type: 'string',
      value: 'FILE',
      help: 'file of mailboxes: one address per line, or CSV with an address column',
    },
    {
      name: 'protocols',
      type: 'string',
      value: 'LIST',
      help: 'imap, pop, smtp, comma-separated (default imap,smtp)',
    },
    { name: 'send-as', type: 'boolean', help: 'also grant SendAs (Add-RecipientPermission)' },
    {
      name: 'enable-protocols',
      type: 'boolean',
      help: 'also turn the protocols on per mailbox (Set-CASMailbox)',
    },
    {
      name: 'smtp-scope',
      type: 'string',
      value: 'group:NAME|mailboxes',
      help: "grant SMTP sending only as the group's members or the mailboxes given (RBAC for Applications)",
    },
    {
      name: 'hve-account',
      type: 'string',
      value: 'ADDRESS',
      help: 'High Volume Email account: created when missing (New-MailUser -HVEAccount), the app allowed on it (Add-HVEAppAccess)',
    },
    {
      name: 'cloud',
      type: 'string',
      value: 'NAME',
      help: 'global | usgov-high | usgov-dod | china (default global)',
    },
    { name: 'remove', type: 'boolean', help: 'write the script that revokes it all instead' },
    { name: 'out', type: 'string', value: 'FILE', help: 'write the script there (default stdout)' },
    { name: 'force', type: 'boolean', help: 'overwrite the --out file if it exists' },
  ],
  details: [
    'Nothing is changed by this command: it writes one PowerShell script for an Exchange',
    'administrator to read and run (PowerShell 7 or Windows PowerShell 5.1). The script',
    'registers the app in Exchange (New-ServicePrincipal), grants FullAccess on each mailbox',
    'where missing, optionally SendAs and the protocol settings, then reads everything back',
    'and fails on any gap. Run it with -WhatIf first for a dry run; running it twice changes',
    'nothing. Exchange can take up to 30 minutes to apply new permissions.',
    '',
    "--object-id is the object id of the app's service principal: Entra ID > Enterprise",
    'applications > your app > Overview > Object ID. It is NOT the Object ID on the App',
    'Registration page: with that one the logins fail with "AUTHENTICATE failed".',
    '',
    '--smtp-scope grants SMTP sending through RBAC for Applications instead: a management',
    'scope (the members of group NAME, or exactly the mailboxes given) and the role',
    "'Application SMTP.SendAsApp' assigned to the service principal over it. The app must then",
    'NOT hold the tenant-wide SMTP.SendAsApp permission in Entra ID (setup entra --scoped-smtp),',
    'and the assignment takes 30 minutes to 2 hours to apply. IMAP and POP have no scoped form:',
    'they keep FullAccess on each mailbox given.',
    '',
    '--hve-account ADDRESS creates that High Volume Email account unless it exists',
    '(New-MailUser -HVEAccount) and adds the app to its allowed apps (Add-HVEAppAccess, by the',
    "Enterprise Application's object id), for the relay's routes.hve. HVE also needs the",
    'Mail.Send application permission in Entra ID (setup entra --hve). With --remove, the app',
    'is taken off the account, and the account removed when no other app is allowed on it.',
    '',
    '--remove writes the script that revokes what the install script grants (SendAs,',
    'FullAccess, the SMTP scope, then the service principal). It leaves the protocol settings',
    'as they are.',
    '',
    'With --config FILE, values missing from the flags are read from its setup.exchange',
    'section (tenant, appId, objectId, displayName, mailboxes, protocols, sendAs,',
    'enableProtocols, cloud, smtpScope, hveAccount), and then from its tenantId, clientId and cloud settings.',
  ].join('\n'),
  async run({ args, io }) {
    const { input, sources, problems } = await gatherInput(args);
    let plan: ExchangePlan | undefined;
    try {
      plan = parseExchangePlan(input);
    } catch (error) {
      if (!(error instanceof ConfigurationError)) throw error;
      problems.push(...error.problems.map((p) => ({ ...p, field: renameField(p.field, sources) })));
      throw new ConfigurationError({
        code: error.code,
        message: error.message,
        remedy: error.remedy,
        problems,
      });
    }
    if (problems.length > 0) {
      throw new ConfigurationError({
        code: 'SETUP_PLAN_INVALID',
        message: 'The Exchange setup plan has problems; no script was written',
        remedy: 'Fix the setup.exchange section of the config file and run the command again.',
        problems,
      });
    }
    const script = renderExchangeScript(plan);
    const out = args.values.out;
    if (typeof out !== 'string') {
      io.stdout.write(script);
      return ExitCode.ok;
    }
    await writeScript(out, script, args.values.force === true);
    const what = plan.remove ? 'removal script' : 'script';
    writeLine(
      io.stderr,
      `mailbridge: wrote the Exchange ${what} for ${plan.mailboxes.length} mailbox(es) to ${out}`,
    );
    writeLine(
      io.stderr,
      `  Dry run first, as an Exchange administrator: pwsh -File ${out} -WhatIf`,
    );
    return ExitCode.ok;
  },
};

interface GatheredInput {
  input: ExchangePlanInput;
  /** Where each plan key's value came from, for problem fields. */
  sources: Record<string, string>;
  /** Problems found before the plan is parsed (config file shape). */
  problems: ConfigProblem[];
}

async function gatherInput(args: ParsedArgs): Promise<GatheredInput> {
  const v = args.values;
  const problems: ConfigProblem[] = [];
  const sources: Record<string, string> = {};
  const input: Record<string, unknown> = {};

  // Config file first, so that flags win.
  if (typeof v.config === 'string') {
    const settings = await readConfigFile(v.config);
    const { values: section, problems: shape } = exchangeSectionOf(settings);
    problems.push(...shape);
    for (const key of EXCHANGE_PLAN_KEYS) {
      if (section[key] !== undefined) {
        input[key] = section[key];
        sources[key] = `setup.exchange.${key}`;
        continue;
      }
      const fallback = FALLBACK_KEY[key];
      if (fallback && settings[fallback] !== undefined) {
        input[key] = settings[fallback];
        sources[key] = fallback;
      }
    }
  }

  const fromFlag = (key: string, value: unknown) => {
    if (value === undefined) return;
    input[key] = value;
    sources[key] = FLAG_OF[key] ?? key;
  };
  fromFlag('tenant', v.tenant);
  fromFlag('appId', v['app-id']);
  fromFlag('objectId', v['object-id']);
  fromFlag('displayName', v['display-name']);
  fromFlag('protocols', v.protocols);
  fromFlag('cloud', v.cloud);
  fromFlag('smtpScope', v['smtp-scope']);
  fromFlag('hveAccount', v['hve-account']);
  if (v['send-as'] === true) fromFlag('sendAs', true);
  if (v['enable-protocols'] === true) fromFlag('enableProtocols', true);
  if (v.remove === true) fromFlag('remove', true);

  const listed: MailboxEntry[] = (Array.isArray(v.mailbox) ? v.mailbox : []).map((address) => ({
    address,
    source: '--mailbox',
  }));
  if (typeof v.mailboxes === 'string') listed.push(...(await readMailboxList(v.mailboxes)));
  if (Array.isArray(v.mailbox) || typeof v.mailboxes === 'string') {
    fromFlag('mailboxes', listed);
  }
  return { input: input as ExchangePlanInput, sources, problems };
}

/** `appId` → `--app-id`, `mailboxes[2]` → `setup.exchange.mailboxes[2]`, others as they are. */
function renameField(field: string, sources: Record<string, string>): string {
  const match = /^([A-Za-z]+)(\[\d+\])?$/.exec(field);
  const key = match?.[1];
  if (!key) return field;
  const source = sources[key];
  if (!source) return field;
  return `${source}${match?.[2] ?? ''}`;
}

async function writeScript(path: string, script: string, force: boolean): Promise<void> {
  try {
    // 'wx' refuses an existing file, and a symbolic link, without a race.
    await writeFile(path, script, { mode: 0o644, flag: force ? 'w' : 'wx' });
    // The mode above is only used when creating, and the umask applies to it.
    await chmod(path, 0o644);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'EEXIST') {
      throw new ConfigurationError({
        code: 'SETUP_OUT_EXISTS',
        message: `${path} already exists; it was left as it is`,
        remedy: 'Pass --force to overwrite it, or choose another --out file.',
      });
    }
    throw new ConfigurationError({
      code: 'SETUP_OUT_UNWRITABLE',
      message: `Cannot write ${path}: ${describeFsError(error)}`,
      remedy: 'Check the path and that this user may write there.',
      cause: error,
    });
  }
}
