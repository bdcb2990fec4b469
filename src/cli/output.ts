import { ConfigurationError, ExitCode, MailbridgeError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { displayText } from '../util/display-text.js';

/** Where a command writes. Tests and embedding callers pass their own streams. */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  /** What `-` reads; the process's stdin when absent. */
  stdin?: NodeJS.ReadableStream;
}

export function writeLine(stream: NodeJS.WritableStream, text = ''): void {
  stream.write(`${text}\n`);
}

export function writeJson(stream: NodeJS.WritableStream, value: unknown): void {
  stream.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** The one form of a warning for a person (README: `mailbridge: warning: …`). */
export function writeWarning(stream: NodeJS.WritableStream, text: string): void {
  writeLine(stream, `mailbridge: warning: ${text}`);
}

/**
 * Exit status when the reader of our output went away (`mailbridge … | head -1`):
 * 128 + SIGPIPE, what other Unix tools report when SIGPIPE ends them.
 */
export const READER_GONE_EXIT = 141;

/**
 * Calls `gone` when a write to one of `streams` fails because its reader
 * closed the pipe (EPIPE), in place of the unhandled 'error' event and stack
 * Node would print. Any other stream error is thrown as before.
 */
export function onReaderGone(streams: NodeJS.WritableStream[], gone: () => void): void {
  for (const stream of streams) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      gone();
    });
  }
}

/** Logs to stderr: warnings always, details only with --debug. Field values come from outside, so they are shown escaped. */
export function stderrLogger(stderr: NodeJS.WritableStream, debug: boolean): Logger {
  return {
    log(level, message, fields) {
      if (level === 'debug' && !debug) return;
      if (level === 'info' && !debug) return;
      const rendered = fields
        ? Object.entries(fields)
            .filter(([, v]) => v !== undefined)
            .map(([k, v]) => `${k}=${typeof v === 'string' ? fieldText(v) : v}`)
            .join(' ')
        : '';
      const text = `${message}${rendered ? ` ${rendered}` : ''}`;
      if (level === 'warn') writeWarning(stderr, text);
      else writeLine(stderr, `mailbridge: ${level}: ${text}`);
    },
  };
}

function fieldText(value: string): string {
  const shown = displayText(value, 500);
  return /\s/.test(shown) ? `"${shown.replace(/"/g, '\\"')}"` : shown;
}

/**
 * Prints an error for a person (code, what happened, what to do) or, with
 * --json, as one JSON object on stdout for scripts. Returns the exit code.
 */
export function reportError(
  error: unknown,
  io: CliIo,
  options: { json: boolean; debug: boolean },
): number {
  if (error instanceof MailbridgeError) {
    if (options.json) {
      // One line: commands that stream JSON lines (archive, migrate) end with it.
      writeLine(io.stdout, JSON.stringify({ ok: false, error: error.toJSON() }));
    } else if (error instanceof ConfigurationError && error.problems.length > 0) {
      writeLine(io.stderr, `mailbridge: error ${error.code}: the configuration has problems:`);
      for (const problem of error.problems) {
        writeLine(io.stderr, `  - ${problem.field}: ${problem.message}`);
      }
      if (error.remedy) writeLine(io.stderr, `  ${error.remedy}`);
    } else {
      writeLine(io.stderr, `mailbridge: error ${error.code}: ${error.message}`);
      if (error.entra?.traceId || error.entra?.correlationId) {
        writeLine(
          io.stderr,
          `  Entra trace id: ${error.entra.traceId ?? '-'}, correlation id: ${error.entra.correlationId ?? '-'}`,
        );
      }
    }
    if (options.debug && error.stack) writeLine(io.stderr, error.stack);
    return error.exitCode;
  }
  const message = error instanceof Error ? error.message : String(error);
  if (options.json) {
    writeLine(io.stdout, JSON.stringify({ ok: false, error: { code: 'INTERNAL', message } }));
  } else {
    writeLine(io.stderr, `mailbridge: internal error: ${message}`);
    writeLine(io.stderr, '  This is a bug; please report it with the output of --debug.');
  }
  if (options.debug && error instanceof Error && error.stack) writeLine(io.stderr, error.stack);
  return ExitCode.failure;
}
