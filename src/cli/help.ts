import { ENVIRONMENT_VARIABLES } from '../config/env.js';
import { COMMON_FLAGS, type FlagSpec, SETTING_FLAGS } from './args.js';
import type { Command } from './command.js';

export function mainHelp(commands: Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'mailbridge: app-only OAuth2 (XOAUTH2) for IMAP and SMTP on Microsoft 365',
    '',
    'Usage: mailbridge <command> [flags]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `mailbridge <command> --help` (or `mailbridge help <command>`) for its flags and environment;',
    '`mailbridge --version` prints the version.',
    '',
    'Exit codes: 0 ok, 1 failure, 2 usage or configuration error,',
    '            3 authentication or permission refused, 4 service unreachable.',
  ].join('\n');
}

export function commandHelp(command: Command): string {
  const sections = [
    `Usage: mailbridge ${command.usage}`,
    '',
    command.summary,
    ...(command.details ? ['', command.details] : []),
    '',
    'Flags:',
    ...flagLines([...command.flags, ...COMMON_FLAGS]),
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
