import type { ConfigurationError } from '../errors.js';
import { closestName } from '../util/did-you-mean.js';
import { displayText } from '../util/display-text.js';
import { usageError } from './args.js';

/** What the resolver needs of a command: the words that select it and its summary. */
export interface NamedCommand {
  name: string;
  summary: string;
}

export type Resolved<T extends NamedCommand> =
  | { kind: 'command'; command: T; rest: string[] }
  /** A group's words alone (`setup`, `imap`): a group is any prefix of longer command names. */
  | { kind: 'group'; group: string; rest: string[] };

/** The commands under `prefix` (`setup` → `setup cert`, `setup entra`, …). */
export function subcommandsOf<T extends NamedCommand>(prefix: string, commands: readonly T[]): T[] {
  return commands.filter((c) => c.name.startsWith(`${prefix} `));
}

/**
 * Finds the command named by the words at the start of argv, the longest name
 * first (`relay status` before `relay`). Throws a usage error with a "did you
 * mean" for a word that names nothing.
 */
export function resolveCommand<T extends NamedCommand>(
  argv: string[],
  commands: readonly T[],
): Resolved<T> {
  const words: string[] = [];
  for (const arg of argv) {
    if (arg.startsWith('-')) break;
    words.push(arg);
  }
  let found: T | undefined;
  for (const command of commands) {
    const name = command.name.split(' ');
    const matches = name.every((word, i) => words[i] === word);
    if (matches && name.length > (found?.name.split(' ').length ?? 0)) found = command;
  }
  if (found) {
    const depth = found.name.split(' ').length;
    const next = words[depth];
    // A command with subcommands takes no word after its name: `relay staus` is a typo, not an argument.
    if (next !== undefined && subcommandsOf(found.name, commands).length > 0) {
      throw unknownCommand(found.name, next, commands);
    }
    return { kind: 'command', command: found, rest: argv.slice(depth) };
  }
  for (let depth = words.length; depth > 0; depth--) {
    const group = words.slice(0, depth).join(' ');
    if (subcommandsOf(group, commands).length === 0) continue;
    const next = words[depth];
    if (next !== undefined) throw unknownCommand(group, next, commands);
    return { kind: 'group', group, rest: argv.slice(depth) };
  }
  throw unknownCommand(undefined, words[0] ?? '', commands);
}

function unknownCommand(
  parent: string | undefined,
  typed: string,
  commands: readonly NamedCommand[],
): ConfigurationError {
  const prefix = parent ? `${parent} ` : '';
  const choices = parent
    ? subcommandsOf(parent, commands).map((c) => c.name.slice(prefix.length))
    : [...new Set(commands.map((c) => c.name.split(' ')[0] ?? c.name))];
  const near = closestName(typed, choices);
  const list = `Run \`mailbridge ${parent ? `${parent} ` : ''}--help\` to list ${parent ? 'its' : 'the'} commands.`;
  return usageError(
    `unknown command '${displayText(`${prefix}${typed}`, 80)}'`,
    near ? `Did you mean \`mailbridge ${prefix}${near}\`? ${list}` : list,
  );
}
