import { describe, expect, it } from 'vitest';
import { asciiText, displayText } from '../../src/util/display-text.js';

describe('displayText', () => {
  it('shows terminal escapes, newlines and bidi overrides as visible escapes', () => {
    expect(displayText('<\x1b]0;pwned\x07\x1b[2J@x>')).toBe('<\\x1b]0;pwned\\x07\\x1b[2J@x>');
    expect(displayText('a\r\nforged: line')).toBe('a\\x0d\\x0aforged: line');
    expect(displayText('invoice\u202Efdp.exe')).toBe('invoice\\u202efdp.exe');
    expect(displayText('\u009b31m')).toBe('\\x9b31m');
  });

  it('shows every format character, invisible tags and lone surrogates too', () => {
    expect(displayText('ok\u{E0001}\u{E0068}\u{E0069}\u{E007F}')).toBe(
      'ok\\u{e0001}\\u{e0068}\\u{e0069}\\u{e007f}',
    );
    expect(displayText('\u0600 1 \ud800x')).toBe('\\u0600 1 \\ud800x');
    expect(displayText('tick \u{1F600}')).toBe('tick \u{1F600}');
  });

  it('keeps letters of every script as they are', () => {
    expect(displayText('Entwürfe/日本語/Ελληνικά')).toBe('Entwürfe/日本語/Ελληνικά');
  });

  it('cuts long text with an ellipsis at the given length', () => {
    const shown = displayText('x'.repeat(500), 20);
    expect(shown).toHaveLength(20);
    expect(shown.endsWith('…')).toBe(true);
  });
});

describe('asciiText', () => {
  it('replaces everything but printable ASCII', () => {
    expect(asciiText('árchive\x1b[2J', 40)).toBe('?rchive?[2J');
  });
});
