/**
 * Runs one CLI command in process, as `src/cli/run.ts` does, with captured
 * output: for commands whose tests need no child process.
 */
import { Writable } from 'node:stream';
import { COMMON_FLAGS, parseCommandArgs } from '../../src/cli/args.js';
import type { Command } from '../../src/cli/command.js';
import { reportError } from '../../src/cli/output.js';
import { silentLogger } from '../../src/log/logger.js';

export interface CommandRun {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCommand(command: Command, argv: string[]): Promise<CommandRun> {
  const out: string[] = [];
  const err: string[] = [];
  const sink = (chunks: string[]) =>
    new Writable({
      write(chunk, _encoding, done) {
        chunks.push(String(chunk));
        done();
      },
    });
  const io = { stdout: sink(out), stderr: sink(err), env: {} };
  let code: number;
  try {
    const args = parseCommandArgs(argv, [...COMMON_FLAGS, ...command.flags]);
    code = await command.run({
      args,
      io,
      logger: silentLogger,
      loadConfig: () => Promise.reject(new Error('this command takes no settings')),
    });
  } catch (error) {
    code = reportError(error, io, { json: argv.includes('--json'), debug: false });
  }
  return { code, stdout: out.join(''), stderr: err.join('') };
}
