/**
 * One JSON object per line, for operational logs such as the relay's (journald,
 * Docker and log shippers read it as is). Fields are whatever the caller
 * passes: the relay passes ids, sizes, counts, codes and addresses, never
 * message contents, passwords or tokens.
 *
 * Info and debug lines written in the same turn of the event loop leave in one
 * write (a warning or error goes at once, with what is before it): under
 * load the relay logs two lines per message, and a write call per line (stdout
 * to a pipe or file is synchronous in Node) was a tenth of its CPU per message
 * (bench/README.md, relay profile). What is still buffered when the process
 * exits is written then, so only a SIGKILL can cost the lines of one turn.
 */
import type { LogFields, Logger, LogLevel } from './logger.js';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Loggers holding lines not yet written, for the exit hook. */
const unflushed = new Set<() => void>();
let exitHooked = false;

function flushAllOnExit(): void {
  for (const flush of [...unflushed]) flush();
}

export function createJsonLogger(
  stream: NodeJS.WritableStream,
  options: { level?: LogLevel; now?: () => Date } = {},
): Logger {
  const threshold = ORDER[options.level ?? 'info'];
  const now = options.now ?? (() => new Date());
  let pending = '';
  const flush = (): void => {
    unflushed.delete(flush);
    if (pending === '') return;
    const text = pending;
    pending = '';
    stream.write(text);
  };
  if (!exitHooked) {
    exitHooked = true;
    process.on('exit', flushAllOnExit);
  }
  return {
    log(level: LogLevel, message: string, fields?: LogFields) {
      if (ORDER[level] < threshold) return;
      const entry: Record<string, unknown> = { time: now().toISOString(), level, msg: message };
      for (const [key, value] of Object.entries(fields ?? {})) {
        if (value !== undefined && !(key in entry)) entry[key] = value;
      }
      if (pending === '') {
        unflushed.add(flush);
        setImmediate(flush);
      }
      pending += `${JSON.stringify(entry)}\n`;
      // Warnings and errors are rare and someone may be waiting for them.
      if (ORDER[level] >= ORDER.warn) flush();
    },
  };
}
