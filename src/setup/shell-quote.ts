/**
 * Quoting for the POSIX sh / bash scripts that `mailbridge setup` prints for
 * the Azure CLI. Inside single quotes sh expands nothing: `$`, backquotes,
 * `\`, `"`, `!` and globs are all literal, and the quotes end only at the
 * next `'`. That one character is written as `'\''` (close the quotes, an
 * escaped quote, reopen), which POSIX sh, bash, dash and zsh all read the
 * same way.
 *
 * Control and format characters are refused rather than quoted. A newline
 * is legal between single quotes but makes the printed script read
 * differently from what it runs (a reviewer sees two lines), NUL cannot be
 * passed in argv at all, and bidirectional overrides can reorder what an
 * editor shows ("Trojan Source").
 */
import { ConfigurationError } from '../errors.js';

/**
 * Control characters (C0, DEL, C1: tab, newline and carriage return
 * included), format characters (the bidirectional overrides and isolates,
 * zero-width characters, the byte order mark), the Unicode line and paragraph
 * separators, and lone surrogates. The same set as `psString` refuses.
 */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;

/** The first character a script must not carry, as `U+000A`, or undefined. */
export function findUnsafeCharacter(value: string): string | undefined {
  const match = UNSAFE.exec(value);
  if (!match) return undefined;
  const code = match[0].codePointAt(0) ?? 0;
  return `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * @throws ConfigurationError `SETUP_UNSAFE_VALUE` when `value` holds a control character
 */
export function refuseUnsafeCharacter(
  value: string,
  what: string,
  container = 'a shell script',
): void {
  const unsafe = findUnsafeCharacter(value);
  if (unsafe) {
    throw new ConfigurationError({
      code: 'SETUP_UNSAFE_VALUE',
      message: `${what} holds the control character ${unsafe}, which ${container} must not carry`,
      remedy: 'Remove line breaks, tabs and other control characters from it.',
    });
  }
}

/**
 * One sh word holding exactly `value`, always single-quoted.
 *
 * @throws ConfigurationError `SETUP_UNSAFE_VALUE` for a control character
 */
export function shQuote(value: string, what = 'a value'): string {
  refuseUnsafeCharacter(value, what);
  return `'${value.replaceAll("'", "'\\''")}'`;
}
