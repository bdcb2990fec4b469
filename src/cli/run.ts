import { readFileSync } from 'node:fs';
import { loadConfig } from '../config/load.js';
import type { MailbridgeConfig } from '../config/types.js';
import { ExitCode } from '../errors.js';
import {
  COMMON_FLAGS,
  type ParsedArgs,
  parseCommandArgs,
  SETTING_FLAGS,
  settingsFromFlags,
  usageError,
} from './args.js';
import type { Command } from './command.js';
import { archiveCommand, archiveVerifyCommand } from './commands/archive.js';
import { doctorCommand } from './commands/doctor.js';
import { imapFetchCommand, imapFoldersCommand, imapListCommand } from './commands/imap.js';
import { RELAY_COMMANDS } from './commands/relay.js';
import { sendCommand } from './commands/send.js';
import { setupCertCommand } from './commands/setup-cert.js';
import { setupConsentUrlCommand } from './commands/setup-consent-url.js';
import { setupEntraCommand } from './commands/setup-entra.js';
import { setupExchangeCommand } from './commands/setup-exchange.js';
import { tokenCommand } from './commands/token.js';
import { xoauth2Command } from './commands/xoauth2.js';
import { commandHelp, mainHelp } from './help.js';
import { type CliIo, reportError, stderrLogger, writeLine } from './output.js';

export const COMMANDS: Command[] = [
  tokenCommand,
  xoauth2Command,
  doctorCommand,
  imapFoldersCommand,
  imapListCommand,
  imapFetchCommand,
  sendCommand,
  setupExchangeCommand,
  setupEntraCommand,
  setupCertCommand,
  setupConsentUrlCommand,
  archiveCommand,
  archiveVerifyCommand,
  ...RELAY_COMMANDS,
];

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

/** Runs the CLI and returns the exit code; only `main.ts` calls `process.exit`. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const debug = argv.includes('--debug');
  // Decided before parsing, so that a usage error is reported as JSON too when the command has --json.
  const found = argv.length > 0 ? findCommand(argv) : undefined;
  const json =
    argv.includes('--json') && (found?.command.flags.some((f) => f.name === 'json') ?? false);
  try {
    if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
      const topic = argv[0] === 'help' ? findCommand(argv.slice(1)) : undefined;
      writeLine(io.stdout, topic ? commandHelp(topic.command) : mainHelp(COMMANDS));
      return argv.length === 0 ? ExitCode.usage : ExitCode.ok;
    }
    if (argv[0] === '--version' || argv[0] === '-V') {
      writeLine(io.stdout, packageVersion());
      return ExitCode.ok;
    }
    if (!found) {
      throw usageError(
        `unknown command '${argv.filter((a) => !a.startsWith('-')).join(' ')}'`,
        'Run `mailbridge --help` to list the commands.',
      );
    }
    const { command, rest } = found;
    const flags = [
      ...COMMON_FLAGS,
      ...(command.usesSettings ? SETTING_FLAGS : []),
      ...command.flags,
    ];
    const args = parseCommandArgs(rest, flags);
    if (args.values.help === true) {
      writeLine(io.stdout, commandHelp(command));
      return ExitCode.ok;
    }
    const logger = stderrLogger(io.stderr, debug);
    let loaded: Promise<MailbridgeConfig> | undefined;
    const load = (): Promise<MailbridgeConfig> => {
      loaded ??= loadSettings(args, io).then((config) => {
        for (const warning of config.warnings)
          writeLine(io.stderr, `mailbridge: warning: ${warning}`);
        return config;
      });
      return loaded;
    };
    return await command.run({ args, io, logger, loadConfig: load });
  } catch (error) {
    return reportError(error, io, { json, debug });
  }
}

function loadSettings(args: ParsedArgs, io: CliIo): Promise<MailbridgeConfig> {
  const file = typeof args.values.config === 'string' ? args.values.config : undefined;
  return loadConfig({
    env: io.env,
    ...(file ? { file } : {}),
    overrides: settingsFromFlags(args.values),
  });
}

/** Longest match of command words at the start of argv (`setup exchange` before `setup`). */
function findCommand(argv: string[]): { command: Command; rest: string[] } | undefined {
  const sorted = [...COMMANDS].sort((a, b) => b.name.split(' ').length - a.name.split(' ').length);
  for (const command of sorted) {
    const words = command.name.split(' ');
    if (words.every((word, i) => argv[i] === word)) {
      return { command, rest: argv.slice(words.length) };
    }
  }
  return undefined;
}
