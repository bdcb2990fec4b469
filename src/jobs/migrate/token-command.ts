/**
 * An OAuth access token from a command the user configures
 * (`migrate.fromTokenCommand` / `toTokenCommand`), for IMAP servers that take
 * XOAUTH2 with a token we cannot get ourselves: Gmail, other providers, a
 * company's own token broker. The command is an argv list run without a
 * shell (no quoting to get wrong, nothing for a folder name or a variable to
 * inject), with our environment; what it prints on stdout is the token. It
 * runs again for every login, so a reconnect after the server ended the
 * session (an expired token, BYE, a dropped connection) gets a fresh token;
 * the tools that print tokens keep their own cache.
 *
 * The token never reaches a log line or an error: only the command's name,
 * its exit status and its stderr (made safe to show) do.
 */
import { spawn } from 'node:child_process';
import { AuthenticationError } from '../../errors.js';
import { displayText } from '../../util/display-text.js';

/** Long enough for a command that asks a token service over the network; a hung one fails the login. */
export const TOKEN_COMMAND_TIMEOUT_MS = 30_000;
/** More than any access token (Entra's are a few KB); anything longer is not a token. */
const MAX_STDOUT_BYTES = 64 * 1024;
const MAX_STDERR_SHOWN = 400;

export interface TokenCommand {
  /** Program and its arguments, run without a shell. */
  argv: readonly string[];
  /** How errors name the setting: `migrate.fromTokenCommand`. */
  name: string;
  timeoutMs?: number;
  env?: Readonly<Record<string, string | undefined>>;
}

/** Runs the command once and returns the first line it printed, trimmed. */
export function runTokenCommand(command: TokenCommand): Promise<string> {
  const [program, ...args] = command.argv;
  const shown = displayText(program ?? '', 80);
  const timeoutMs = command.timeoutMs ?? TOKEN_COMMAND_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const fail = (what: string, remedy: string, cause?: unknown) =>
      reject(
        new AuthenticationError({
          code: 'MIGRATE_TOKEN_COMMAND_FAILED',
          message: `${command.name} (${shown}) ${what}`,
          remedy,
          ...(cause ? { cause } : {}),
        }),
      );
    if (program === undefined || program === '') {
      fail('is empty', `Give the command as a list: ${command.name}: [program, arg, ...].`);
      return;
    }
    const child = spawn(program, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...(command.env ?? process.env) } as NodeJS.ProcessEnv,
    });
    const stdout: Buffer[] = [];
    let stdoutBytes = 0;
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      stdoutBytes += chunk.length;
      if (stdoutBytes <= MAX_STDOUT_BYTES) stdout.push(chunk);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      if (stderr.length < 4 * MAX_STDERR_SHOWN) stderr += chunk;
    });
    const said = () => {
      const text = displayText(stderr.trim(), MAX_STDERR_SHOWN);
      return text === '' ? '' : `: ${text}`;
    };
    child.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      fail(
        `could not be started (${error.code ?? error.message})`,
        'Give the program with its full path, one that this user may run.',
        error,
      );
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const check =
        'Run the command yourself: it must print a valid access token on stdout and exit 0.';
      if (timedOut) {
        fail(
          `printed no token within ${Math.round(timeoutMs / 1000)} s and was stopped${said()}`,
          check,
        );
        return;
      }
      if (code !== 0) {
        fail(`failed (${signal ? `killed by ${signal}` : `exit ${code}`})${said()}`, check);
        return;
      }
      if (stdoutBytes > MAX_STDOUT_BYTES) {
        fail(
          `printed more than ${MAX_STDOUT_BYTES / 1024} KB, which is not an access token`,
          check,
        );
        return;
      }
      const token = Buffer.concat(stdout)
        .toString('utf8')
        .split(/\r?\n/)
        .map((line) => line.trim())
        .find((line) => line !== '');
      if (token === undefined) {
        fail(`exited 0 but printed nothing on stdout${said()}`, check);
        return;
      }
      resolve(token);
    });
  });
}
