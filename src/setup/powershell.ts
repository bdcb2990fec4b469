/**
 * The one place where a value becomes PowerShell source text, and the checks a
 * value passes before it may. Generators never splice user text into a script
 * any other way: they call `psString` once per value, in a data section.
 *
 * PowerShell facts this module relies on:
 * - In a single-quoted ('verbatim') string nothing is special except the quote
 *   character: no `$` expansion, no backtick escapes. A quote is written by
 *   doubling it.
 * - PowerShell's tokenizer treats four typographic characters exactly like the
 *   ASCII apostrophe: U+2018 ‘, U+2019 ’, U+201A ‚ and U+201B ‛. Any of them
 *   ends a single-quoted string, and any two of them in a row are one escaped
 *   quote (the second one is kept). So each must be doubled by itself, or a
 *   value like `x’; Remove-Mailbox ceo; ’` breaks out in real PowerShell while
 *   looking inert to grammars (tree-sitter-powershell among them) that only
 *   know the ASCII quote.
 * - Windows PowerShell 5.1 reads a script file without a byte order mark as
 *   Windows-1252, where the UTF-8 continuation bytes 0x91, 0x92 and 0x82 are ‘ ’
 *   and ‚: the UTF-8 form of, say, `ё` (D1 91) turns into `Ñ‘` and ends the
 *   string. Generated scripts are therefore pure ASCII, and the validators
 *   below accept only ASCII values.
 */
import { ConfigurationError } from '../errors.js';
import { displayText } from '../util/display-text.js';

/** Characters PowerShell accepts as a single quote. */
export const POWERSHELL_SINGLE_QUOTES: readonly string[] = [
  "'",
  '\u2018', // ‘ LEFT SINGLE QUOTATION MARK
  '\u2019', // ’ RIGHT SINGLE QUOTATION MARK
  '\u201A', // ‚ SINGLE LOW-9 QUOTATION MARK
  '\u201B', // ‛ SINGLE HIGH-REVERSED-9 QUOTATION MARK
];

const QUOTE_RE = /['\u2018\u2019\u201A\u201B]/g;

/**
 * Characters that never belong in a generated script: C0/C1 controls (a line
 * break would end the literal's line and start a new statement in a reader's
 * eye), format characters such as the bidirectional overrides that make a line
 * display differently from what it does ("Trojan Source"), line and paragraph
 * separators, and lone surrogates.
 */
const UNSAFE_RE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;

/**
 * Renders `value` as one single-quoted PowerShell string literal that
 * PowerShell reads back as exactly `value`.
 *
 * @throws ConfigurationError `SETUP_UNSAFE_VALUE` for control, format or
 *   line-separator characters (they are refused, not escaped).
 */
export function psString(value: string): string {
  const unsafe = UNSAFE_RE.exec(value);
  if (unsafe) {
    throw new ConfigurationError({
      code: 'SETUP_UNSAFE_VALUE',
      message: `A value for the PowerShell script holds ${describeChar(unsafe[0])} at position ${unsafe.index + 1}`,
      remedy: 'Remove control, format and line-break characters from the value.',
    });
  }
  return `'${value.replace(QUOTE_RE, (quote) => quote + quote)}'`;
}

// ---------------------------------------------------------------------------
// Validators. Each `…Problem` function returns a sentence saying what is wrong,
// or undefined; the `assert…` forms throw it. Plans collect the sentences so
// that every problem is reported at once.

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function guidProblem(value: string): string | undefined {
  if (value === '') return 'it is empty';
  if (!GUID_RE.test(value)) {
    return `${quoteForMessage(value)} is not a GUID (expected 8-4-4-4-12 hexadecimal digits, e.g. 00000000-1111-2222-3333-444444444444)`;
  }
  if (/^[0-]+$/.test(value)) return 'the all-zero GUID is not an object id';
  return undefined;
}

/** Lower-case GUID. @throws ConfigurationError `SETUP_VALUE_INVALID` */
export function assertGuid(value: string, field = 'guid'): string {
  throwIfProblem(field, guidProblem(value));
  return value.toLowerCase();
}

/**
 * A DNS domain name in ASCII (IDNs in their `xn--` form): labels of letters,
 * digits and inner hyphens, at most 63 characters each, at least two labels,
 * 253 characters in all, and a top-level label that is not all digits.
 */
export function domainNameProblem(value: string): string | undefined {
  if (value === '') return 'the domain is empty';
  if (value.length > 253) return `the domain is ${value.length} characters long (at most 253)`;
  if (/[^\p{ASCII}]/u.test(value)) {
    return `${quoteForMessage(value)} holds non-ASCII characters: write an internationalised domain in its xn-- form`;
  }
  const labels = value.split('.');
  if (labels.length < 2) return `${quoteForMessage(value)} is not a domain name (it has no dot)`;
  for (const label of labels) {
    if (label === '')
      return `${quoteForMessage(value)} has an empty label (two dots in a row, or a dot at an end)`;
    if (label.length > 63)
      return `a label of ${quoteForMessage(value)} is longer than 63 characters`;
    if (!/^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/.test(label)) {
      return `${quoteForMessage(value)} is not a domain name (labels hold only letters, digits and inner hyphens)`;
    }
  }
  if (/^\d+$/.test(labels[labels.length - 1] ?? '')) {
    return `${quoteForMessage(value)} ends in a numeric label: an IP address is not a mail domain`;
  }
  return undefined;
}

/**
 * The characters accepted in the local part: RFC 5322 `atext` and dots, minus
 * the backtick and `$`, which RFC 5322 allows but no real Exchange address
 * needs. They are PowerShell's escape and variable characters: inert inside the
 * single-quoted literal this module writes, but live again the moment an
 * administrator copies the address into a double-quoted string or a command
 * line, so an address holding one is refused rather than carried along.
 * The apostrophe stays allowed: `o'brien@contoso.com` is a real and common
 * Exchange address, and `psString` doubles it (the tests parse the result).
 * Quoted local parts ("john doe"@…) and non-ASCII addresses are refused.
 */
const LOCAL_PART_RE = /^[A-Za-z0-9!#%&'*+/=?^_{|}~.-]+$/;

export function smtpAddressProblem(value: string): string | undefined {
  if (value === '') return 'the address is empty';
  if (UNSAFE_RE.test(value) || /\s/.test(value)) {
    return `${quoteForMessage(value)} holds whitespace or control characters`;
  }
  if (value.length > 254) return `the address is ${value.length} characters long (at most 254)`;
  const at = value.lastIndexOf('@');
  if (at < 0) return `${quoteForMessage(value)} is not an email address (no @)`;
  const local = value.slice(0, at);
  const domain = value.slice(at + 1);
  if (local === '') return `${quoteForMessage(value)} has nothing before the @`;
  if (local.length > 64)
    return `the part before the @ is ${local.length} characters long (at most 64)`;
  if (!LOCAL_PART_RE.test(local)) {
    const bad = [...local].find((c) => !LOCAL_PART_RE.test(c)) ?? '';
    return `${quoteForMessage(value)} is refused: the part before the @ holds ${describeChar(bad)} (allowed: letters, digits, . and !#%&'*+/=?^_{|}~-)`;
  }
  if (local.startsWith('.') || local.endsWith('.') || local.includes('..')) {
    return `${quoteForMessage(value)} is not an email address (a dot at the start or end of the part before the @, or two in a row)`;
  }
  const domainProblem = domainNameProblem(domain);
  if (domainProblem) return `${quoteForMessage(value)}: ${domainProblem}`;
  return undefined;
}

/** @throws ConfigurationError `SETUP_VALUE_INVALID` */
export function assertSmtpAddress(value: string, field = 'mailbox'): string {
  throwIfProblem(field, smtpAddressProblem(value));
  return value;
}

export const MAX_DISPLAY_NAME_LENGTH = 256;

/**
 * Display names are printable ASCII (space to `~`), 1 to 256 characters, no
 * leading or trailing space. Quotes, `$(`, backticks and `;` are allowed:
 * inside a single-quoted literal they are text. Non-ASCII is refused because
 * of how Windows PowerShell 5.1 reads BOM-less files (see the top of this file),
 * which also refuses the typographic quotes.
 */
export function displayNameProblem(value: string): string | undefined {
  return printableNameProblem(value, 'the display name');
}

/**
 * A name written into a script as one literal (a display name, a group name):
 * the rules above, with `what` naming it in the sentence.
 */
export function printableNameProblem(value: string, what: string): string | undefined {
  if (value.trim() === '') return `${what} is empty`;
  if (value.length > MAX_DISPLAY_NAME_LENGTH) {
    return `${what} is ${value.length} characters long (at most ${MAX_DISPLAY_NAME_LENGTH})`;
  }
  const bad = [...value].find((c) => c < ' ' || c > '~');
  if (bad !== undefined) {
    const quote = POWERSHELL_SINGLE_QUOTES.includes(bad) ? ' (PowerShell reads it as a quote)' : '';
    return `${what} holds ${describeChar(bad)}${quote}: only printable ASCII is accepted, because Windows PowerShell 5.1 reads a script without a byte order mark as Windows-1252, where parts of other characters become quotes`;
  }
  if (value !== value.trim()) return `${what} starts or ends with a space`;
  return undefined;
}

/** @throws ConfigurationError `SETUP_VALUE_INVALID` */
export function assertDisplayName(value: string, field = 'displayName'): string {
  throwIfProblem(field, displayNameProblem(value));
  return value;
}

/** A tenant is named by its directory id (a GUID) or one of its verified domains. */
export function tenantProblem(value: string): string | undefined {
  if (value === '') return 'the tenant is empty';
  if (/^[0-9a-f-]{36}$/i.test(value)) return guidProblem(value);
  const lower = value.toLowerCase();
  if (['common', 'organizations', 'consumers'].includes(lower)) {
    return `'${lower}' is not a tenant: name the directory (tenant) id or a verified domain`;
  }
  const domain = domainNameProblem(value);
  return domain ? `${domain} (a tenant is a directory id GUID or a verified domain)` : undefined;
}

export function isGuid(value: string): boolean {
  return GUID_RE.test(value);
}

function throwIfProblem(field: string, problem: string | undefined): void {
  if (problem === undefined) return;
  throw new ConfigurationError({
    code: 'SETUP_VALUE_INVALID',
    message: `${field}: ${problem}`,
    remedy: 'Correct the value and run the command again.',
    problems: [{ field, message: problem }],
  });
}

/**
 * A value shown in a message: escaped so that control or bidirectional
 * characters cannot act on the terminal, and cut to a readable length.
 */
export function quoteForMessage(value: string): string {
  return `"${displayText(value, 80)}"`;
}

function describeChar(char: string): string {
  const code = char.codePointAt(0) ?? 0;
  const hex = `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
  const named: Record<string, string> = {
    '\n': 'a line break',
    '\r': 'a carriage return',
    '\t': 'a tab',
    '\0': 'a NUL character',
    '`': 'a backtick (`)',
    $: 'a dollar sign ($)',
    ';': 'a semicolon (;)',
    '"': 'a double quote (")',
    '(': 'a parenthesis',
    ')': 'a parenthesis',
  };
  const name = named[char];
  if (name) return `${name} (${hex})`;
  if (code >= 0x20 && code < 0x7f) return `'${char}' (${hex})`;
  return UNSAFE_RE.test(char) ? `an invisible character ${hex}` : `the character ${char} (${hex})`;
}
