import { Readable, Writable } from 'node:stream';
import { runCli } from '../../src/cli/run.js';
import type { CliResult } from './run-cli.js';

/** A stream that keeps what is written to it in `chunks`. */
export function sink(chunks: string[]): Writable {
  return new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
}

/**
 * `mailbridge ARGS` run by the CLI's own entry (src/cli/run.ts) in this
 * process: the same exit code, stdout and stderr as a child's, without a Node
 * start and module loading on every run (0.4–1.4 s of CPU each). For runs
 * about what a command does or refuses, not about the process: exit codes,
 * signals and pipes of a real process stay with the tests that spawn the
 * built CLI, and each file keeps such runs. Some code reads the process's
 * environment (the blob store's AZURE_STORAGE_CONNECTION_STRING,
 * @azure/identity), so `env` is also set there for the run: runs must not
 * overlap.
 */
export async function runCliInProcess(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  input = '',
): Promise<CliResult> {
  const saved = new Map(Object.keys(env).map((name) => [name, process.env[name]]));
  for (const [name, value] of Object.entries(env))
    if (value !== undefined) process.env[name] = value;
  const out: string[] = [];
  const err: string[] = [];
  try {
    const code = await runCli(args, {
      stdout: sink(out),
      stderr: sink(err),
      env,
      stdin: Readable.from([input]),
    });
    return { code, stdout: out.join(''), stderr: err.join('') };
  } finally {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}
