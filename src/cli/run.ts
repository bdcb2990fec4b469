import { readFileSync } from 'node:fs';
import type { MailbridgeConfig } from '../config/types.js';
import { ExitCode } from '../errors.js';
import { closestName } from '../util/did-you-mean.js';
import { displayText } from '../util/display-text.js';
import { isMailAddress } from '../util/mail-address.js';
import {
  COMMON_FLAGS,
  type FlagSpec,
  type ParsedArgs,
  parseCommandArgs,
  SETTING_FLAGS,
  settingsFromFlags,
  usageError,
} from './args.js';
import { COMMAND_INDEX } from './command-index.js';
import { commandHelp, groupHelp, mainHelp } from './help.js';
import { type CliIo, reportError, stderrLogger, writeLine, writeWarning } from './output.js';
import { resolveCommand, subcommandsOf } from './resolve-command.js';

const MAIN_FLAGS = ['help', 'version'];

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

/** Runs the CLI and returns the exit code; only `main.ts` calls `process.exit`. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const debug = argv.includes('--debug');
  // Set once the command is known, so that a usage error is reported as JSON too when the command has --json.
  let json = false;
  try {
    const first = argv[0];
    if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
      const topic = first === 'help' ? argv.slice(1).filter((a) => !a.startsWith('-')) : [];
      writeLine(io.stdout, topic.length > 0 ? await helpFor(topic) : mainHelp(COMMAND_INDEX));
      return first === undefined ? ExitCode.usage : ExitCode.ok;
    }
    if (first === '--version' || first === '-V') {
      writeLine(io.stdout, packageVersion());
      return ExitCode.ok;
    }
    if (first.startsWith('-')) {
      const near = first.startsWith('--') ? closestName(first.slice(2), MAIN_FLAGS) : undefined;
      const list = 'Run `mailbridge --help` to list the commands.';
      throw near
        ? usageError(`unknown flag '${displayText(first, 60)}'`, `Did you mean --${near}? ${list}`)
        : usageError(
            `'${displayText(first, 60)}' before a command: flags come after the command's name`,
            list,
          );
    }
    const resolved = resolveCommand(argv, COMMAND_INDEX);
    if (resolved.kind === 'group') {
      const wantsHelp = resolved.rest.includes('--help') || resolved.rest.includes('-h');
      writeLine(io.stdout, groupHelp(resolved.group, subcommandsOf(resolved.group, COMMAND_INDEX)));
      return wantsHelp ? ExitCode.ok : ExitCode.usage;
    }
    const { rest } = resolved;
    const command = await resolved.command.load();
    json = argv.includes('--json') && command.flags.some((f) => f.name === 'json');
    const flags = [
      ...COMMON_FLAGS,
      ...(command.usesSettings ? SETTING_FLAGS : []),
      ...command.flags,
    ];
    const args = parseCommandArgs(rest, flags, command.name);
    if (args.values.help === true) {
      writeLine(io.stdout, commandHelp(command, subcommandsOf(command.name, COMMAND_INDEX)));
      return ExitCode.ok;
    }
    const missing = flags.filter((flag) => flag.required && !args.values[flag.name]);
    if (missing.length > 0) {
      const named = missing.map((flag) => `--${flag.name}${flag.value ? ` ${flag.value}` : ''}`);
      const list =
        named.length === 1 ? named[0] : `${named.slice(0, -1).join(', ')} and ${named.at(-1)}`;
      throw usageError(
        `${list} ${named.length === 1 ? 'is' : 'are'} required`,
        `Usage: mailbridge ${command.usage}`,
      );
    }
    checkAddresses(flags, args);
    if (!command.operands && args.positionals.length > 0) {
      throw usageError(
        `unexpected argument '${displayText(args.positionals[0] as string, 60)}' for ${command.name}`,
        `Quote a value that holds spaces (--subject "two words") and repeat a flag to give it several values (--to a@x --to b@x). Usage: mailbridge ${command.usage}`,
      );
    }
    const logger = stderrLogger(io.stderr, debug);
    let loaded: Promise<MailbridgeConfig> | undefined;
    const load = (): Promise<MailbridgeConfig> => {
      loaded ??= loadSettings(args, io).then((config) => {
        for (const warning of config.warnings) writeWarning(io.stderr, warning);
        return config;
      });
      return loaded;
    };
    return await command.run({ args, io, logger, loadConfig: load });
  } catch (error) {
    return reportError(error, io, { json, debug });
  }
}

/** `mailbridge help WORDS`: a group's help from the index, or the command's own (which loads it). */
async function helpFor(words: string[]): Promise<string> {
  const resolved = resolveCommand(words, COMMAND_INDEX);
  if (resolved.kind === 'group') {
    return groupHelp(resolved.group, subcommandsOf(resolved.group, COMMAND_INDEX));
  }
  const command = await resolved.command.load();
  return commandHelp(command, subcommandsOf(command.name, COMMAND_INDEX));
}

/** Imported here, not at start-up: `--version`, help and commands without settings never need it. */
async function loadSettings(args: ParsedArgs, io: CliIo): Promise<MailbridgeConfig> {
  const { loadConfig } = await import('../config/load.js');
  const file = typeof args.values.config === 'string' ? args.values.config : undefined;
  return loadConfig({
    env: io.env,
    ...(file ? { file } : {}),
    overrides: settingsFromFlags(args.values),
  });
}

/** Flags declared `address`: each value one bare address (see `isMailAddress` for why), or the command does not run. */
function checkAddresses(flags: readonly FlagSpec[], args: ParsedArgs): void {
  for (const flag of flags) {
    if (!flag.address) continue;
    const given = args.values[flag.name];
    for (const value of Array.isArray(given) ? given : typeof given === 'string' ? [given] : []) {
      if (!isMailAddress(value)) {
        throw usageError(
          `--${flag.name} '${displayText(value, 100)}' is not a mail address`,
          `Give one bare address per --${flag.name}, e.g. --${flag.name} alice@contoso.com${flag.multiple ? '; repeat the flag for more' : ''}.`,
        );
      }
    }
  }
}
