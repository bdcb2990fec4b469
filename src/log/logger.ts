/**
 * The library logs through this small interface so that callers can plug in
 * their own logger. Fields must never carry secrets or tokens: callers pass
 * names, ids, sizes and hashes only.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export type LogFields = Record<string, string | number | boolean | undefined>;

export interface Logger {
  log(level: LogLevel, message: string, fields?: LogFields): void;
}

export const silentLogger: Logger = { log() {} };
