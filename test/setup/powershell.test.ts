import { describe, expect, it } from 'vitest';
import { ConfigurationError } from '../../src/errors.js';
import {
  assertDisplayName,
  assertGuid,
  assertSmtpAddress,
  displayNameProblem,
  domainNameProblem,
  guidProblem,
  POWERSHELL_SINGLE_QUOTES,
  psString,
  quoteForMessage,
  smtpAddressProblem,
  tenantProblem,
} from '../../src/setup/powershell.js';
import { PS_QUOTES, parsePowerShell, scanPowerShellVerbatim } from './powershell-grammar.js';

const HOSTILE = [
  "x'; Remove-Mailbox -Identity ceo; '",
  "'",
  "''",
  "'''",
  '$(Invoke-Evil)',
  '`$(Invoke-Evil)`',
  '"; Invoke-Evil; "',
  'a;b',
  'x\u2019; Remove-Mailbox -Identity ceo; \u2019',
  'x\u2018; Remove-Mailbox -Identity ceo; \u2018',
  'x\u201A; Remove-Mailbox -Identity ceo; \u201A',
  'x\u201B; Remove-Mailbox -Identity ceo; \u201B',
  "\u2019'\u2018\u201A\u201B",
  '@" x "@',
  '#> <# ',
];

describe('psString', () => {
  it('wraps plain text in single quotes', () => {
    expect(psString('archive@contoso.com')).toBe("'archive@contoso.com'");
    expect(psString('')).toBe("''");
  });

  it('doubles the ASCII quote and each typographic single quote by itself', () => {
    expect(psString("o'brien")).toBe("'o''brien'");
    expect(psString('a\u2018b')).toBe("'a\u2018\u2018b'");
    expect(psString('a\u2019b')).toBe("'a\u2019\u2019b'");
    expect(psString('a\u201Ab')).toBe("'a\u201A\u201Ab'");
    expect(psString('a\u201Bb')).toBe("'a\u201B\u201Bb'");
    expect(psString("'\u2019")).toBe("'''\u2019\u2019'");
  });

  it('leaves $, backticks, double quotes and semicolons alone: they are text in single quotes', () => {
    expect(psString('$(x) `n "y"; z')).toBe('\'$(x) `n "y"; z\'');
  });

  it.each(HOSTILE)('PowerShell reads %j back exactly and ends at the closing quote', (value) => {
    const literal = psString(value);
    expect(scanPowerShellVerbatim(literal)).toEqual({ value, end: literal.length });
  });

  it('round-trips random strings of quotes and punctuation under PowerShell rules', () => {
    const alphabet = [
      "'",
      '\u2018',
      '\u2019',
      '\u201A',
      '\u201B',
      'a',
      '$',
      '`',
      ';',
      '(',
      ')',
      ' ',
    ];
    let seed = 12345;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let n = 0; n < 2000; n++) {
      const length = Math.floor(random() * 12);
      let value = '';
      for (let i = 0; i < length; i++) value += alphabet[Math.floor(random() * alphabet.length)];
      const literal = psString(value);
      expect(scanPowerShellVerbatim(literal)).toEqual({ value, end: literal.length });
    }
  });

  it('knows the same quote characters as the PowerShell emulation', () => {
    expect(new Set(POWERSHELL_SINGLE_QUOTES)).toEqual(PS_QUOTES);
  });

  it('is what keeps a typographic quote inert: doubling only the ASCII quote is caught', () => {
    // The grammar sees one literal either way; PowerShell would not.
    const value = 'x\u2019; Remove-Mailbox -Identity ceo; \u2019';
    const naive = `'${value.replace(/'/g, "''")}'`;
    const { end } = scanPowerShellVerbatim(naive);
    expect(end).toBeLessThan(naive.length);
    expect(naive.slice(end)).toContain('Remove-Mailbox');
  });

  it.each([
    ['a line break', 'a\nb', 'U+000A'],
    ['a carriage return', 'a\rb', 'U+000D'],
    ['a NUL character', 'a\0b', 'U+0000'],
    ['a tab', 'a\tb', 'U+0009'],
    ['an escape', 'a\u001bb', 'U+001B'],
    ['a line separator', 'a\u2028b', 'U+2028'],
    ['a right-to-left override', 'a\u202Eb', 'U+202E'],
    ['a zero-width space', 'a\u200Bb', 'U+200B'],
    ['a lone surrogate', 'a\uD800b', 'U+D800'],
  ])('refuses %s instead of escaping it', (_name, value, hex) => {
    let caught: unknown;
    try {
      psString(value);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigurationError);
    expect((caught as ConfigurationError).code).toBe('SETUP_UNSAFE_VALUE');
    expect((caught as ConfigurationError).message).toContain(hex);
    expect((caught as ConfigurationError).message).toContain('at position 2');
  });

  it.each(HOSTILE)('%j is one inert string literal to the PowerShell grammar', async (value) => {
    const script = await parsePowerShell(`$Value = ${psString(value)}\n`);
    expect(script.errors).toEqual([]);
    expect(script.verbatimStrings).toHaveLength(1);
    expect(script.commands).toEqual([]);
    const literal = script.verbatimStrings[0]?.text ?? '';
    expect(scanPowerShellVerbatim(literal)).toEqual({ value, end: literal.length });
  });
});

describe('guidProblem / assertGuid', () => {
  it('accepts GUIDs in either case and returns them lower-case', () => {
    expect(guidProblem('3F2504E0-4F89-11D3-9A0C-0305E82C3301')).toBeUndefined();
    expect(assertGuid('3F2504E0-4F89-11D3-9A0C-0305E82C3301')).toBe(
      '3f2504e0-4f89-11d3-9a0c-0305e82c3301',
    );
  });

  it.each([
    '',
    '{3f2504e0-4f89-11d3-9a0c-0305e82c3301}',
    '3f2504e04f8911d39a0c0305e82c3301',
    "3f2504e0-4f89-11d3-9a0c-0305e82c3301'; Remove-Mailbox ceo; '",
    '3f2504e0-4f89-11d3-9a0c-0305e82c3301\n',
    '00000000-0000-0000-0000-000000000000',
    'g0000000-0000-0000-0000-000000000001',
  ])('refuses %j', (value) => {
    expect(guidProblem(value)).toBeDefined();
  });

  it('throws a ConfigurationError naming the field', () => {
    expect(() => assertGuid('nope', 'appId')).toThrow(
      'appId: "nope" is not a GUID (expected 8-4-4-4-12 hexadecimal digits, e.g. 00000000-1111-2222-3333-444444444444)',
    );
  });
});

describe('smtpAddressProblem', () => {
  it.each([
    'archive@contoso.com',
    'first.last+tag@mail.contoso.co.uk',
    "o'brien@contoso.com",
    'a!#%&*+/=?^_{|}~-z@contoso.com',
    'x@xn--mnchen-3ya.de',
    'svc@contoso.onmicrosoft.com',
  ])('accepts %j', (value) => {
    expect(smtpAddressProblem(value)).toBeUndefined();
    expect(assertSmtpAddress(value)).toBe(value);
  });

  it.each([
    ["x@y.com'; Remove-Mailbox -Identity ceo; '", 'whitespace'],
    ['$(Invoke-Evil)@x.com', 'a dollar sign ($) (U+0024)'],
    ['a`b@x.com', 'a backtick (`) (U+0060)'],
    ['a;b@x.com', 'a semicolon (;) (U+003B)'],
    ['a\nb@x.com', 'whitespace or control characters'],
    ['a@x.com\n', 'whitespace or control characters'],
    ['o\u2019brien@contoso.com', 'U+2019'],
    ['o\u2018brien@contoso.com', 'U+2018'],
    ['o\u201Abrien@contoso.com', 'U+201A'],
    ['o\u201Bbrien@contoso.com', 'U+201B'],
    ['"john.doe"@contoso.com', 'a double quote'],
    ['m\u00FCller@contoso.com', 'U+00FC'],
    ['a@m\u00FCnchen.de', 'xn--'],
    ['plain', 'no @'],
    ['@contoso.com', 'nothing before the @'],
    ['.a@contoso.com', 'a dot at the start'],
    ['a..b@contoso.com', 'two in a row'],
    ['a@localhost', 'no dot'],
    ['a@-x.com', 'inner hyphens'],
    ['a@x..com', 'empty label'],
    ['a@10.0.0.1', 'numeric label'],
    [`${'a'.repeat(65)}@contoso.com`, 'at most 64'],
    [`a@${'b'.repeat(64)}.com`, 'longer than 63'],
    ['', 'empty'],
  ])('refuses %j (%s)', (value, why) => {
    expect(smtpAddressProblem(value)).toContain(why);
    expect(() => assertSmtpAddress(value)).toThrow(ConfigurationError);
  });

  it('says exactly what is wrong with a hostile address', () => {
    expect(smtpAddressProblem('$(Invoke-Evil)@x.com')).toBe(
      '"$(Invoke-Evil)@x.com" is refused: the part before the @ holds a dollar sign ($) (U+0024) (allowed: letters, digits, . and !#%&\'*+/=?^_{|}~-)',
    );
  });
});

describe('displayNameProblem', () => {
  it.each([
    'mailbridge',
    "O'Brien's archive robot",
    'Reports $(Get-Date) `n; "quoted"',
    '#> <# comment markers',
    'x'.repeat(256),
  ])('accepts %j', (value) => {
    expect(displayNameProblem(value)).toBeUndefined();
    expect(assertDisplayName(value)).toBe(value);
  });

  it.each([
    ['', 'empty'],
    ['   ', 'empty'],
    [' padded', 'starts or ends with a space'],
    ['a\nb', 'a line break (U+000A)'],
    ['a\0b', 'a NUL character (U+0000)'],
    ['O\u2019Brien', 'U+2019) (PowerShell reads it as a quote)'],
    ['O\u2018Brien', 'U+2018) (PowerShell reads it as a quote)'],
    ['O\u201ABrien', 'U+201A) (PowerShell reads it as a quote)'],
    ['O\u201BBrien', 'U+201B) (PowerShell reads it as a quote)'],
    ['\u0451', 'Windows-1252'],
    ['a\u202Eb', 'invisible character U+202E'],
    ['x'.repeat(257), 'at most 256'],
  ])('refuses %j', (value, why) => {
    expect(displayNameProblem(value)).toContain(why);
  });
});

describe('tenantProblem / domainNameProblem', () => {
  it.each(['contoso.onmicrosoft.com', 'contoso.com', '3f2504e0-4f89-11d3-9a0c-0305e82c3301'])(
    'accepts %j',
    (value) => {
      expect(tenantProblem(value)).toBeUndefined();
    },
  );

  it.each(['common', 'organizations', 'consumers', 'contoso', "contoso.com'; x", ''])(
    'refuses %j',
    (value) => {
      expect(tenantProblem(value)).toBeDefined();
    },
  );

  it('refuses labels longer than 63 characters and domains longer than 253', () => {
    expect(domainNameProblem(`${'a'.repeat(64)}.com`)).toContain('longer than 63');
    expect(domainNameProblem(`${'a.'.repeat(127)}com`)).toContain('at most 253');
  });
});

describe('quoteForMessage', () => {
  it('escapes control and bidirectional characters and cuts long values', () => {
    expect(quoteForMessage('a\u001b[31mb\u202E')).toBe('"a\\x1b[31mb\\u202e"');
    expect(quoteForMessage('x'.repeat(100))).toBe(`"${'x'.repeat(79)}…"`);
  });
});
