/**
 * One JSON object per line, for operational logs such as the relay's (journald,
 * Docker and log shippers read it as is). Fields are whatever the caller
 * passes: the relay passes ids, sizes, counts, codes and addresses, never
 * message contents, passwords or tokens.
 */
import type { LogFields, Logger, LogLevel } from './logger.js';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function createJsonLogger(
  stream: NodeJS.WritableStream,
  options: { level?: LogLevel; now?: () => Date } = {},
): Logger {
  const threshold = ORDER[options.level ?? 'info'];
  const now = options.now ?? (() => new Date());
  return {
    log(level: LogLevel, message: string, fields?: LogFields) {
      if (ORDER[level] < threshold) return;
      const entry: Record<string, unknown> = { time: now().toISOString(), level, msg: message };
      for (const [key, value] of Object.entries(fields ?? {})) {
        if (value !== undefined && !(key in entry)) entry[key] = value;
      }
      stream.write(`${JSON.stringify(entry)}\n`);
    },
  };
}
