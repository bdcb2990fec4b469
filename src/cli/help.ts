import { ENVIRONMENT_VARIABLES } from '../config/env.js';
import { COMMON_FLAGS, type FlagSpec, SETTING_FLAGS } from './args.js';
import type { Command } from './command.js';

/** What the help needs of a command to list it; the command index has it without loading the command. */
export interface Listed {
  name: string;
  summary: string;
}

export function mainHelp(commands: readonly Listed[]): string {
  return [
    'mailbridge: app-only OAuth2 (XOAUTH2) for IMAP and SMTP on Microsoft 365',
    '',
    'Usage: mailbridge <command> [flags]',
    '',
    'Commands:',
    ...commandLines(commands),
    '',
    'Run `mailbridge <command> --help` (or `mailbridge help <command>`) for its flags and environment;',
    '`mailbridge --version` prints the version.',
    '',
    'Exit codes: 0 ok, 1 failure, 2 usage or configuration error,',
    '            3 authentication or permission refused, 4 service unreachable;',
    '            141 when the reader of the output went away (`| head`).',
  ].join('\n');
}

/** Help for a group of commands (`setup`, `imap`): its commands, without loading them. */
export function groupHelp(group: string, commands: readonly Listed[]): string {
  return [
    `Usage: mailbridge ${group} <command> [flags]`,
    '',
    'Commands:',
    ...commandLines(commands),
    '',
    `Run \`mailbridge ${group} <command> --help\` for its flags and environment.`,
  ].join('\n');
}

function commandLines(commands: readonly Listed[]): string[] {
  const width = Math.max(...commands.map((c) => c.name.length));
  return commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
}

/** A command's help; `subcommands` are listed after its flags (`relay` → `relay status`, …). */
export function commandHelp(command: Command, subcommands: readonly Listed[] = []): string {
  const sections = [
    `Usage: mailbridge ${command.usage}`,
    '',
    command.summary,
    ...(command.details ? ['', command.details] : []),
    '',
    'Flags:',
    ...flagLines([...command.flags, ...COMMON_FLAGS]),
    ...(subcommands.length > 0 ? ['', 'Commands:', ...commandLines(subcommands)] : []),
  ];
  if (command.usesSettings) {
    sections.push(
      '',
      'Settings (flags win over the environment, which wins over --config):',
      ...flagLines(SETTING_FLAGS),
      '',
      'Environment:',
      ...ENVIRONMENT_VARIABLES.map((v) => `  ${v.name.padEnd(36)} ${v.description}`),
    );
  }
  return sections.join('\n');
}

function flagLines(flags: FlagSpec[]): string[] {
  const label = (f: FlagSpec) =>
    `${f.short ? `-${f.short}, ` : ''}--${f.name}${f.value ? ` ${f.value}` : ''}${f.multiple ? '...' : ''}`;
  const width = Math.max(...flags.map((f) => label(f).length));
  return flags.map((f) => `  ${label(f).padEnd(width)}  ${f.help}`);
}
