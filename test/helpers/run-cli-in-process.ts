import { Writable } from 'node:stream';
import { runCli as runCliEntry } from '../../src/cli/run.js';
import type { CliResult } from './run-cli.js';

/**
 * `mailbridge ARGS` run by the CLI's own entry (src/cli/run.ts) in this
 * process: the same exit code, stdout and stderr as a child's, without a Node
 * start and the storage SDK's loading on every run (about 1.4 s of CPU each).
 * For runs about what a command does, not about the process; each file keeps
 * child runs. Some code reads the process's environment (the blob store's
 * AZURE_STORAGE_CONNECTION_STRING, @azure/identity), so `env` is also set
 * there for the run: runs must not overlap.
 */
export async function runCliInProcess(
  args: string[],
  env: Record<string, string>,
): Promise<CliResult> {
  const saved = new Map(Object.keys(env).map((name) => [name, process.env[name]]));
  Object.assign(process.env, env);
  const out: string[] = [];
  const err: string[] = [];
  const sink = (into: string[]) =>
    new Writable({
      write(chunk: Buffer | string, _encoding, done) {
        into.push(chunk.toString());
        done();
      },
    });
  try {
    const code = await runCliEntry(args, { stdout: sink(out), stderr: sink(err), env });
    return { code, stdout: out.join(''), stderr: err.join('') };
  } finally {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}
