import { type ParseArgsConfig, parseArgs } from 'node:util';
import type { Settings } from '../config/types.js';
import { ConfigurationError } from '../errors.js';
import { closestName } from '../util/did-you-mean.js';
import { displayText } from '../util/display-text.js';

type OptionSpec = NonNullable<ParseArgsConfig['options']>[string];

/** One flag: its parseArgs spec and a line of help. */
export interface FlagSpec {
  name: string;
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
  value?: string;
  /** Each value must be one bare mail address: refused (exit 2) before the command runs. */
  address?: boolean;
  /** The command cannot run without it; every missing one is named in one message. */
  required?: boolean;
  help: string;
}

/** Flags every command accepts. */
export const COMMON_FLAGS: FlagSpec[] = [
  { name: 'config', type: 'string', value: 'FILE', help: 'JSON or YAML config file' },
  { name: 'debug', type: 'boolean', help: 'log details and stack traces to stderr' },
  { name: 'help', short: 'h', type: 'boolean', help: 'show this help' },
];

/**
 * Flags that set connection settings; they win over the environment and the
 * config file. There is deliberately no flag for the client secret or the
 * certificate password: argv is visible to every user in `ps` and lands in
 * shell history.
 */
export const SETTING_FLAGS: FlagSpec[] = [
  {
    name: 'tenant-id',
    type: 'string',
    value: 'ID',
    help: 'directory (tenant) id or verified domain',
  },
  { name: 'client-id', type: 'string', value: 'ID', help: 'application (client) id' },
  {
    name: 'certificate-path',
    type: 'string',
    value: 'FILE',
    help: 'PEM (key + certificate) or PFX',
  },
  {
    name: 'send-certificate-chain',
    type: 'boolean',
    help: 'send the x5c chain (subject name/issuer auth)',
  },
  {
    name: 'federated-token-file',
    type: 'string',
    value: 'FILE',
    help: 'workload identity JWT file',
  },
  { name: 'authority-host', type: 'string', value: 'URL', help: 'Entra authority host (https)' },
  { name: 'cloud', type: 'string', value: 'NAME', help: 'global | usgov-high | usgov-dod | china' },
  { name: 'scope', type: 'string', value: 'SCOPE', help: "token scope (a resource's /.default)" },
  { name: 'imap-host', type: 'string', value: 'HOST', help: 'IMAP host' },
  { name: 'imap-port', type: 'string', value: 'PORT', help: 'IMAP port (implicit TLS)' },
  { name: 'smtp-host', type: 'string', value: 'HOST', help: 'SMTP submission host' },
  { name: 'smtp-port', type: 'string', value: 'PORT', help: 'SMTP port (STARTTLS)' },
  { name: 'ca-file', type: 'string', value: 'FILE', help: "PEM CAs to trust besides Node's" },
];

/** Flags refused with an explanation rather than as unknown. */
const SECRET_FLAGS: Record<string, string> = {
  'client-secret': 'AZURE_CLIENT_SECRET or the config file key clientSecret',
  'certificate-password':
    'AZURE_CLIENT_CERTIFICATE_PASSWORD or the config file key certificatePassword',
};

export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/**
 * Parses a command's flags. Node's parser is run without its strict checks so
 * that every mistake is reported here, in our words and with a "did you mean",
 * rather than in its own text (which talks about positionals after `--`).
 */
export function parseCommandArgs(argv: string[], flags: FlagSpec[], command?: string): ParsedArgs {
  const remedy = `Run \`mailbridge ${command ?? '<command>'} --help\` to see its flags.`;
  const byName = new Map<string, FlagSpec>();
  const options: Record<string, OptionSpec> = {};
  for (const flag of flags) {
    byName.set(flag.name, flag);
    options[flag.name] = {
      type: flag.type,
      ...(flag.multiple ? { multiple: true } : {}),
      ...(flag.short ? { short: flag.short } : {}),
    };
  }
  for (const arg of argv) {
    if (arg === '--') break;
    const name = arg.startsWith('--') ? arg.slice(2).split('=')[0] : undefined;
    if (name && name in SECRET_FLAGS) {
      throw usageError(
        `--${name} is not accepted: command lines are visible to other users and kept in shell history`,
        `Use ${SECRET_FLAGS[name]}.`,
      );
    }
  }
  const { values, positionals, tokens } = parseArgs({
    args: argv,
    options,
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  const seen = new Set<string>();
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    const flag = byName.get(token.name);
    const shown = `'${displayText(token.rawName, 60)}'`;
    if (!flag) {
      const near = token.rawName.startsWith('--')
        ? closestName(token.name, [...byName.keys()])
        : undefined;
      throw usageError(
        `unknown flag ${shown}`,
        near ? `Did you mean --${near}? ${remedy}` : remedy,
      );
    }
    const label = `--${flag.name}${flag.value ? ` ${flag.value}` : ''}`;
    if (flag.type === 'boolean') {
      if (token.value !== undefined) throw usageError(`--${flag.name} takes no value`, remedy);
      continue;
    }
    if (token.value === undefined) {
      throw usageError(`${label}: the value is missing`, remedy);
    }
    if (!token.inlineValue && token.value.length > 1 && token.value.startsWith('-')) {
      throw usageError(
        `${label}: the value is missing ('${displayText(token.value, 60)}' follows it)`,
        `Give the value after the flag, or as --${flag.name}=VALUE if it starts with '-'.`,
      );
    }
    if (!flag.multiple && seen.has(flag.name)) {
      throw usageError(
        `--${flag.name} was given more than once; it takes one value`,
        'Give it once.',
      );
    }
    seen.add(flag.name);
  }
  return { values: values as ParsedArgs['values'], positionals };
}

/** The `Settings` named by setting flags that were given. */
export function settingsFromFlags(values: ParsedArgs['values']): Settings {
  const str = (name: string): string | undefined => {
    const v = values[name];
    return typeof v === 'string' ? v : undefined;
  };
  const port = (name: string): number | undefined => {
    const v = str(name);
    // Only digits, as in the environment; the range is checked with the other settings.
    return v === undefined ? undefined : /^\d+$/.test(v) ? Number(v) : Number.NaN;
  };
  const settings: Settings = {};
  const set = (key: string, value: unknown) => {
    if (value !== undefined) settings[key] = value;
  };
  set('tenantId', str('tenant-id'));
  set('clientId', str('client-id'));
  set('certificatePath', str('certificate-path'));
  if (values['send-certificate-chain'] === true) settings.sendCertificateChain = true;
  set('federatedTokenFile', str('federated-token-file'));
  set('authorityHost', str('authority-host'));
  set('cloud', str('cloud'));
  set('scope', str('scope'));
  set('caFile', str('ca-file'));
  const imap = { host: str('imap-host'), port: port('imap-port') };
  const smtp = { host: str('smtp-host'), port: port('smtp-port') };
  if (imap.host !== undefined || imap.port !== undefined) settings.imap = dropUndefined(imap);
  if (smtp.host !== undefined || smtp.port !== undefined) settings.smtp = dropUndefined(smtp);
  return settings;
}

export function usageError(message: string, remedy: string): ConfigurationError {
  return new ConfigurationError({ code: 'USAGE', message, remedy });
}

function dropUndefined<T extends Record<string, unknown>>(obj: T): Partial<T> {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as Partial<T>;
}
