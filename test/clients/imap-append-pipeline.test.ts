import { describe, expect, it } from 'vitest';
import { internalDateText, quotedMailbox } from '../../src/clients/imap-append-pipeline.js';

describe('pipelined APPEND arguments', () => {
  it('writes INTERNALDATE as RFC 3501 date-time in UTC', () => {
    expect(internalDateText(new Date(Date.UTC(2019, 2, 4, 5, 6, 7)))).toBe(
      '"04-Mar-2019 05:06:07 +0000"',
    );
  });

  it('quotes mailbox names in modified UTF-7, as servers list them', () => {
    expect(quotedMailbox('INBOX')).toBe('"INBOX"');
    expect(quotedMailbox('Kunden/Müller & Söhne')).toBe('"Kunden/M&APw-ller &- S&APY-hne"');
    expect(quotedMailbox('Ünïcödé ✓')).toBe('"&ANw-n&AO8-c&APY-d&AOk- &JxM-"');
    expect(quotedMailbox('a"b\\c')).toBe('"a\\"b\\\\c"');
  });
});
