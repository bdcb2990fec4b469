import { ConfigurationError, ExitCode, MailbridgeError } from '../errors.js';
import type { Logger } from '../log/logger.js';

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

/** Logs to stderr: warnings always, details only with --debug. */
export function stderrLogger(stderr: NodeJS.WritableStream, debug: boolean): Logger {
  return {
    log(level, message, fields) {
      if (level === 'debug' && !debug) return;
      if (level === 'info' && !debug) return;
      const rendered = fields
        ? Object.entries(fields)
            .filter(([, v]) => v !== undefined)
            .map(
              ([k, v]) => `${k}=${typeof v === 'string' && /\s/.test(v) ? JSON.stringify(v) : v}`,
            )
            .join(' ')
        : '';
      writeLine(stderr, `mailbridge: ${level}: ${message}${rendered ? ` ${rendered}` : ''}`);
    },
  };
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
      writeJson(io.stdout, { ok: false, error: error.toJSON() });
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
    writeJson(io.stdout, { ok: false, error: { code: 'INTERNAL', message } });
  } else {
    writeLine(io.stderr, `mailbridge: internal error: ${message}`);
    writeLine(io.stderr, '  This is a bug; please report it with the output of --debug.');
  }
  if (options.debug && error instanceof Error && error.stack) writeLine(io.stderr, error.stack);
  return ExitCode.failure;
}
