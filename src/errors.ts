/**
 * One error hierarchy for the whole library. Subclasses are split by what the
 * user has to do next, and each carries the CLI exit code for that remedy.
 * `code` strings are stable: scripts and the diagnostics table match on them.
 */

import { ERROR_CODES, type ErrorCode } from './error-codes.js';

/** CLI exit codes, shared by every command. */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  auth: 3,
  unreachable: 4,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** What Entra ID said about a refused request, kept for support cases. */
export interface EntraErrorDetails {
  /** OAuth2 `error`, e.g. `invalid_client`. */
  error?: string;
  /** AADSTS numbers from `error_codes`. */
  errorCodes: number[];
  traceId?: string;
  correlationId?: string;
  timestamp?: string;
  /** HTTP status of the token endpoint's answer. */
  status?: number;
}

export interface MailbridgeErrorOptions {
  /** A registered code (src/error-codes.ts): README lists it with its exit code and remedy. */
  code: ErrorCode;
  /** What happened, in one or two sentences. */
  message: string;
  /** What the user should do about it. */
  remedy: string;
  cause?: unknown;
  entra?: EntraErrorDetails;
}

export class MailbridgeError extends Error {
  override name = 'MailbridgeError';
  readonly code: ErrorCode;
  readonly remedy: string;
  /** The exit code of codes whose registry entry leaves it to the class (TOKEN_REQUEST_FAILED). */
  protected readonly classExitCode: ExitCode = ExitCode.failure;
  readonly entra: EntraErrorDetails | undefined;

  constructor(options: MailbridgeErrorOptions) {
    super(joinSentences(options.message, options.remedy), { cause: options.cause });
    this.code = options.code;
    this.remedy = options.remedy;
    this.entra = options.entra;
  }

  /** The CLI's exit code for this error: the code's, from the registry (README lists it). */
  get exitCode(): ExitCode {
    const { exit } = ERROR_CODES[this.code];
    return typeof exit === 'number' ? exit : this.classExitCode;
  }

  /** A log-safe, JSON-ready view: no cause chain, which may hold request bodies. */
  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      remedy: this.remedy,
      exitCode: this.exitCode,
      ...(this.entra ? { entra: this.entra } : {}),
    };
  }
}

/** One wrong or missing setting, named by its config-file key. */
export interface ConfigProblem {
  field: string;
  message: string;
}

/** A setting is missing, wrong or unsafe. Exit code 2. */
export class ConfigurationError extends MailbridgeError {
  override name = 'ConfigurationError';
  protected override readonly classExitCode: ExitCode = ExitCode.usage;
  readonly problems: ConfigProblem[];

  constructor(options: MailbridgeErrorOptions & { problems?: ConfigProblem[] }) {
    super(options);
    this.problems = options.problems ?? [];
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), problems: this.problems };
  }
}

/** The credential, the app or a permission was refused. Exit code 3. */
export class AuthenticationError extends MailbridgeError {
  override name = 'AuthenticationError';
  protected override readonly classExitCode: ExitCode = ExitCode.auth;
}

/** A server answered, but not as a working setup would. Exit code 1. */
export class ProtocolError extends MailbridgeError {
  override name = 'ProtocolError';
}

/** A service could not be reached or kept failing. Exit code 4. */
export class NetworkError extends MailbridgeError {
  override name = 'NetworkError';
  protected override readonly classExitCode: ExitCode = ExitCode.unreachable;
}

export function isMailbridgeError(value: unknown): value is MailbridgeError {
  return value instanceof MailbridgeError;
}

function joinSentences(message: string, remedy: string): string {
  const head = message.trim();
  if (!remedy) return head;
  return /[.!?:]$/.test(head) ? `${head} ${remedy.trim()}` : `${head}. ${remedy.trim()}`;
}
