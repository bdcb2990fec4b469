import { describe, expect, it } from 'vitest';
import { isMailAddress } from '../../src/util/mail-address.js';

describe('isMailAddress', () => {
  it('takes one bare address, in any script', () => {
    for (const address of [
      'alice@contoso.com',
      'first.last+tag@mail.contoso.co.uk',
      "o'brien@contoso.com",
      'jörg@müller.example',
      'a@b.cd',
    ]) {
      expect(isMailAddress(address), address).toBe(true);
    }
  });

  it('refuses display names, lists, line breaks, spaces and what is not an address', () => {
    for (const text of [
      'not an address',
      'alice@contoso.com\r\nRCPT TO:<shared@contoso.com>',
      'alice@contoso.com\n',
      'Alice <alice@contoso.com>',
      '<alice@contoso.com>',
      'alice@contoso.com, bob@contoso.com',
      '"alice"@contoso.com',
      'alice@contoso',
      'alice@-contoso.com',
      '.alice@contoso.com',
      'al..ice@contoso.com',
      '@contoso.com',
      'alice@',
      `${'a'.repeat(65)}@contoso.com`,
      `a@${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}.${'e'.repeat(60)}.${'f'.repeat(10)}.com`,
      'alice\u202e@contoso.com',
    ]) {
      expect(isMailAddress(text), JSON.stringify(text)).toBe(false);
    }
  });
});
