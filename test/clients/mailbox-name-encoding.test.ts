import { describe, expect, it } from 'vitest';
import { encodeLeftRaw } from '../../src/clients/mailbox-name-encoding.js';

describe('encodeLeftRaw', () => {
  it('encodes TAB, LF, CR and DEL as modified BASE64 (RFC 3501 5.1.3), the rest as it is', () => {
    expect(encodeLeftRaw('del\x7fx')).toBe('del&AH8-x');
    expect(encodeLeftRaw('a\tb')).toBe('a&AAk-b');
    expect(encodeLeftRaw('\r\n\x7f')).toBe('&AA0ACgB,-');
    expect(encodeLeftRaw('INBOX/Archive 2024')).toBe('INBOX/Archive 2024');
  });
});
