/**
 * The one owner of text from outside (servers, devices, files, user input)
 * on its way to a person or a log. Such text can carry terminal escapes
 * (`ESC ] 0;… BEL` retitles the window, `ESC [2J` clears it), newlines that
 * forge log lines, and bidirectional overrides that show a name reversed.
 * Every human-facing rendering of outside text goes through one of these.
 */

/**
 * C0 and C1 controls, DEL, line and paragraph separators, every Unicode
 * format character (they reorder text or hide it, as the invisible tag
 * characters U+E0000-E007F do) and lone surrogates.
 */
const UNSAFE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is this module's job.
  /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u2060-\u206f\p{Cf}\p{Cs}]/gu;

/**
 * Keeps letters of every script, shows each unsafe character as a visible
 * escape (`\x1b`, `\u202e`), and cuts the result to `max` characters with an
 * ellipsis, so that what a person reads is exactly what was received.
 */
export function displayText(text: string, max = 200): string {
  const escaped = text.replace(UNSAFE, (ch) => {
    const code = ch.codePointAt(0) ?? 0;
    if (code <= 0xff) return `\\x${code.toString(16).padStart(2, '0')}`;
    return code <= 0xffff
      ? `\\u${code.toString(16).padStart(4, '0')}`
      : `\\u{${code.toString(16)}}`;
  });
  return truncate(escaped, max);
}

/**
 * Printable ASCII only, each other character as `?`: for protocol replies and
 * log fields that must stay 7-bit (an SMTP reply line, a syslog field).
 */
export function asciiText(text: string, max = 200): string {
  return truncate(text.replace(/[^\x20-\x7e]/g, '?'), max);
}

function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  return `${text.slice(0, Math.max(0, max - 1))}…`;
}
