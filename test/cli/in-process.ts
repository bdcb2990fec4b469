/**
 * The CLI's `runCli` in the test's own process, for argument handling and
 * refusals that end before any connection: no child (0.4–1 s of CPU each to
 * start). Exit codes, signals and pipes of a real process stay with the tests
 * that spawn the built CLI.
 */
import { Readable, Writable } from 'node:stream';
import { runCli } from '../../src/cli/run.js';

export interface InProcessResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A stream that keeps what is written to it in `chunks`. */
export function sink(chunks: string[]): Writable {
  return new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
}

export async function runInProcess(
  argv: string[],
  options: { env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<InProcessResult> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, {
    stdout: sink(out),
    stderr: sink(err),
    env: options.env ?? {},
    stdin: Readable.from([options.input ?? '']),
  });
  return { code, stdout: out.join(''), stderr: err.join('') };
}
