/**
 * README against the commands themselves: every command has its own section,
 * and the list of commands that take --json is the real one.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { COMMAND_INDEX } from '../../src/cli/command-index.js';

const README = await readFile(new URL('../../README.md', import.meta.url), 'utf8');

async function commandsWithJson(): Promise<string[]> {
  const names: string[] = [];
  for (const entry of COMMAND_INDEX) {
    const command = await entry.load();
    if (command.flags.some((flag) => flag.name === 'json')) names.push(command.name);
  }
  return names.sort();
}

describe('README', () => {
  it('names every command that takes --json where it explains JSON errors', async () => {
    const sentence = /With `--json` \(accepted by ([^)]*)\)/.exec(README)?.[1] ?? '';
    const listed = [...sentence.matchAll(/`([a-z0-9 -]+)`/g)].map((m) => m[1] as string).sort();
    expect(listed).toEqual(await commandsWithJson());
  });

  it('has a usage line for every command', () => {
    const missing = COMMAND_INDEX.map((entry) => entry.name).filter(
      (name) => !README.includes(`mailbridge ${name}`),
    );
    expect(missing).toEqual([]);
  });
});
