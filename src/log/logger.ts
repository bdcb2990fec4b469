/**
 * The library logs through this small interface so that callers can plug in
 * their own logger. Fields must never carry secrets or tokens: callers pass
 * names, ids, sizes and hashes only.
 *
 * Text from outside (a folder name, a server's reply) goes into fields as
 * received: rendering it safely is the logger's job (the CLI's stderr logger
 * escapes it with displayText, the JSON logger with JSON), so callers do not
 * escape it first.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export type LogFields = Record<string, string | number | boolean | undefined>;

export interface Logger {
  log(level: LogLevel, message: string, fields?: LogFields): void;
}

export const silentLogger: Logger = { log() {} };
