/**
 * The command index lets the CLI list and find commands without loading
 * them; it repeats each command's name and summary, so it must agree with
 * the commands' own modules and miss none of them.
 */
import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Command } from '../../src/cli/command.js';
import { COMMAND_INDEX } from '../../src/cli/command-index.js';

const COMMANDS_DIR = fileURLToPath(new URL('../../src/cli/commands/', import.meta.url));

function isCommand(value: unknown): value is Command {
  const c = value as Partial<Command> | undefined;
  return typeof c?.name === 'string' && typeof c.run === 'function' && Array.isArray(c.flags);
}

/** Every command any module under src/cli/commands/ exports, alone or in an array. */
async function exportedCommands(): Promise<Command[]> {
  const found = new Set<Command>();
  for (const file of await readdir(COMMANDS_DIR)) {
    if (!file.endsWith('.ts')) continue;
    const module = (await import(`${COMMANDS_DIR}${file}`)) as Record<string, unknown>;
    for (const value of Object.values(module)) {
      for (const item of Array.isArray(value) ? value : [value]) {
        if (isCommand(item)) found.add(item);
      }
    }
  }
  return [...found];
}

describe('the command index', () => {
  it.each(COMMAND_INDEX.map((entry) => [entry.name, entry] as const))(
    '%s: loads the command of that name, with the same summary',
    async (_, entry) => {
      const command = await entry.load();
      expect({ name: command.name, summary: command.summary }).toEqual({
        name: entry.name,
        summary: entry.summary,
      });
    },
  );

  it('names every command the command modules export, once', async () => {
    const names = COMMAND_INDEX.map((e) => e.name);
    expect(new Set(names).size).toBe(names.length);
    const exported = (await exportedCommands()).map((c) => c.name).sort();
    expect([...names].sort()).toEqual(exported);
  });
});
