/**
 * The outline must never change the manifest: for every message, the
 * metadata parsed from its outline equals what mailparser reads from the
 * whole message, and a structure the outline cannot be sure of is parsed
 * whole.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { libmime, MimeNode } from '../../../src/jobs/archive/mailparser-parsers.js';
import {
  createMetadataParser,
  type MessageMetadata,
  parseMessageMetadata,
} from '../../../src/jobs/archive/metadata.js';
import { outlineMessage } from '../../../src/jobs/archive/mime-outline.js';
import { metadataFromOutline } from '../../../src/jobs/archive/outline-metadata.js';

async function parsedWhole(message: Buffer): Promise<MessageMetadata> {
  const parser = createMetadataParser();
  await parser.write(message);
  return parser.end();
}

const HEAD = [
  'From: "Ann Example" <ann@fabrikam.example>',
  'To: archive@contoso.example, =?utf-8?q?J=C3=BCrgen?= <juergen@contoso.example>',
  'Subject: =?utf-8?B?UXVhcnRhbHNiZXJpY2h0IMOcYmVyc2ljaHQ=?=',
  'Message-ID: <outline@fabrikam.example>',
  'Date: Mon, 01 Apr 2024 09:30:00 +0200',
  'MIME-Version: 1.0',
];

function crlf(lines: string[]): Buffer {
  return Buffer.from(lines.join('\r\n'), 'latin1');
}

function base64Body(bytes: number, seed = 1): string {
  const data = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (i * 31 + seed) & 0xff;
  return data.toString('base64').replace(/.{76}/g, '$&\r\n').replace(/\r\n$/, '');
}

/** Well-formed messages of many shapes: each is outlined and must parse the same. */
const OUTLINED: Record<string, Buffer> = {
  'mixed: alternative text and a base64 PDF': crlf([
    ...HEAD,
    'Content-Type: multipart/mixed; boundary="mixed"',
    '',
    'This is a multi-part message in MIME format.',
    '--mixed',
    'Content-Type: multipart/alternative; boundary="alt"',
    '',
    '--alt',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    'Gr=C3=BC=C3=9Fe',
    '--alt',
    'Content-Type: text/html; charset=utf-8',
    '',
    '<p>Hello</p>',
    '--alt--',
    '',
    '--mixed',
    'Content-Type: application/pdf; name="report.pdf"',
    'Content-Disposition: attachment; filename="report.pdf"',
    'Content-Transfer-Encoding: base64',
    '',
    base64Body(10_001),
    '--mixed--',
    'epilogue',
    '',
  ]),
  'related: an inline image, an RFC 2231 file name and a quoted-printable attachment': crlf([
    ...HEAD,
    'Content-Type: multipart/mixed;',
    ' boundary="=_outer part; (x)"',
    '',
    '--=_outer part; (x)',
    'Content-Type: multipart/related; boundary=rel',
    '',
    '--rel',
    'Content-Type: text/html; charset=us-ascii',
    '',
    '<img src="cid:logo">',
    '--rel',
    'Content-Type: image/png',
    'Content-ID: <logo>',
    'Content-Disposition: inline',
    'Content-Transfer-Encoding: base64',
    '',
    base64Body(2, 7),
    '--rel--',
    '--=_outer part; (x)',
    'Content-Type: application/octet-stream',
    "Content-Disposition: attachment; filename*=utf-8''%C3%9Cbersicht%202024.bin",
    'Content-Transfer-Encoding: base64',
    '',
    base64Body(3),
    '--=_outer part; (x)',
    'Content-Type: text/calendar; charset=utf-8; method=REQUEST; name="=?utf-8?q?Termin_=C3=BC?=.ics"',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    'BEGIN:VCALENDAR=0D=0ASUMMARY:Gr=C3=BC=C3=9Fe, a soft=',
    ' break',
    'END:VCALENDAR',
    '--=_outer part; (x)',
    'Content-Type: text/plain; name="notes.txt"',
    'Content-Disposition: attachment; filename="notes.txt"',
    '',
    '--=_outer part; (x) is not a delimiter here (text after it)',
    'notes',
    '',
    '--=_outer part; (x)--',
    '',
  ]),
  'LF line ends, a part without headers and an empty part': Buffer.from(
    [
      ...HEAD,
      'Content-Type: multipart/mixed; boundary=lf',
      '',
      '--lf',
      '',
      'a part with no headers at all',
      '--lf',
      'Content-Type: application/zip; name=empty.zip',
      'Content-Transfer-Encoding: base64',
      '',
      '--lf',
      'Content-Type: application/zip; name=data.zip',
      'Content-Transfer-Encoding: base64',
      '',
      base64Body(4096).replace(/\r\n/g, '\n'),
      '--lf--',
    ].join('\n'),
  ),
  'a single part base64 message': crlf([
    ...HEAD,
    'Content-Type: application/pdf; name=scan.pdf',
    'Content-Transfer-Encoding: BASE64',
    '',
    base64Body(5000),
  ]),
  'a plain text message': crlf([...HEAD, 'Content-Type: text/plain', '', 'Hello', '']),
  'headers and no body': crlf([...HEAD, 'X-Empty: yes']),
};

/** Messages the outline must leave to the whole parse, each for its own reason. */
const NOT_OUTLINED: Record<string, Buffer> = {
  'no closing delimiter': crlf([
    ...HEAD,
    'Content-Type: multipart/mixed; boundary=b',
    '',
    '--b',
    'Content-Type: application/pdf; name=a.pdf',
    'Content-Transfer-Encoding: base64',
    '',
    base64Body(300),
    '',
  ]),
  'a delimiter with trailing spaces, which mailparser does not take either': crlf([
    ...HEAD,
    'Content-Type: multipart/mixed; boundary=b',
    '',
    '--b  ',
    'Content-Type: text/plain',
    '',
    'x',
    '--b--  ',
    '',
  ]),
  'an attached message': crlf([
    ...HEAD,
    'Content-Type: multipart/mixed; boundary=b',
    '',
    '--b',
    'Content-Type: message/rfc822',
    'Content-Disposition: inline',
    '',
    'Subject: inner',
    'Content-Type: application/pdf; name=inner.pdf',
    'Content-Transfer-Encoding: base64',
    '',
    base64Body(100),
    '--b--',
    '',
  ]),
  'nested boundaries where one starts with the other': crlf([
    ...HEAD,
    'Content-Type: multipart/mixed; boundary=b',
    '',
    '--b',
    'Content-Type: multipart/alternative; boundary=b2',
    '',
    '--b2',
    'Content-Type: text/plain',
    '',
    'x',
    '--b2--',
    '--b--',
    '',
  ]),
  'base64 with spaces in it': crlf([
    ...HEAD,
    'Content-Type: application/octet-stream; name=a.bin',
    'Content-Transfer-Encoding: base64',
    '',
    'AAEC AwQF',
  ]),
  'base64 with padding before its end': crlf([
    ...HEAD,
    'Content-Type: application/octet-stream; name=a.bin',
    'Content-Transfer-Encoding: base64',
    '',
    'AA==',
    'AAEC',
  ]),
  'two Content-Type fields': crlf([
    ...HEAD,
    'Content-Type: multipart/mixed; boundary=b',
    'Content-Type: text/plain',
    '',
    '--b',
    '',
    'x',
    '--b--',
  ]),
  'a boundary in RFC 2231 form': crlf([
    ...HEAD,
    "Content-Type: multipart/mixed; boundary*=us-ascii''b",
    '',
    '--b',
    '',
    'x',
    '--b--',
  ]),
  'more parts than the parser accepts': crlf([
    ...HEAD,
    'Content-Type: multipart/mixed; boundary=b0',
    '',
    ...Array.from({ length: 1100 }, (_, i) => `--b0\r\nContent-Type: text/plain\r\n\r\npart ${i}`),
    '--b0--',
  ]),
};

describe('outlineMessage', () => {
  for (const [name, message] of Object.entries(OUTLINED)) {
    it(`gives the same metadata as the whole message: ${name}`, async () => {
      const outline = outlineMessage(message);
      expect(outline).toBeDefined();
      const whole = await parsedWhole(message);
      expect(whole.parseError).toBeUndefined();
      expect(await parseMessageMetadata(message)).toEqual(whole);
    });
  }

  for (const [name, message] of Object.entries(NOT_OUTLINED)) {
    it(`leaves it to the whole parse: ${name}`, async () => {
      expect(outlineMessage(message)).toBeUndefined();
      expect(await parseMessageMetadata(message)).toEqual(await parsedWhole(message));
    });
  }

  it('leaves the base64 bodies out and counts what they decode to', async () => {
    const message = OUTLINED['mixed: alternative text and a base64 PDF'] as Buffer;
    const outline = outlineMessage(message);
    // The text bodies are left out altogether; the PDF is counted.
    expect(outline?.leafSizes).toEqual([10_001]);
    expect(outline?.skeleton.length).toBeLessThan(1000);
    expect((await parseMessageMetadata(message)).attachments).toEqual([
      { filename: 'report.pdf', contentType: 'application/pdf', size: 10_001 },
    ]);
  });

  it('reads names and sizes as the whole parse does, for every shape above', async () => {
    const related = await parseMessageMetadata(
      OUTLINED[
        'related: an inline image, an RFC 2231 file name and a quoted-printable attachment'
      ] as Buffer,
    );
    expect(related.attachments.map((a) => [a.filename, a.size])).toEqual([
      [null, 2],
      ['Übersicht 2024.bin', 3],
      ['Termin ü.ics', expect.any(Number)],
      ['notes.txt', expect.any(Number)],
    ]);
    expect(related.subject).toBe('Quartalsbericht Übersicht');
  });
});

/** Around one base64 attachment, headers that each take a branch of MailParser's reading. */
function withHeaders(head: string[], part: string[] = []): Buffer {
  return crlf([
    ...head,
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="m"',
    '',
    '--m',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Hello',
    '--m',
    ...(part.length > 0
      ? part
      : ['Content-Type: application/pdf; name="a.pdf"', 'Content-Disposition: attachment']),
    'Content-Transfer-Encoding: base64',
    '',
    base64Body(300),
    '--m--',
    '',
  ]);
}

const LATIN1_SUBJECT = Buffer.concat([
  Buffer.from('Subject: caf'),
  Buffer.from([0xe9]),
  Buffer.from(' raw latin-1'),
]).toString('latin1');

/** Read by outline-metadata.ts without MailParser: must equal MailParser's reading of the whole. */
const DESCRIBED: Record<string, Buffer> = {
  'the shapes above, headers as usual': withHeaders(HEAD),
  'raw UTF-8 in a subject and a display name': withHeaders([
    'From: Jürgen Müller <juergen@contoso.example>',
    'Subject: Grüße aus Köln',
  ]),
  'raw Latin-1 in a subject': withHeaders([LATIN1_SUBJECT]),
  'a folded subject with encoded words in two charsets': withHeaders([
    'Subject: =?iso-8859-1?q?caf=E9?=',
    '  =?utf-8?B?8J+Ygg==?= and text',
  ]),
  'an unknown charset in an encoded word': withHeaders(['Subject: =?x-unknown?q?abc?= tail']),
  'an empty Subject before a real one, two Message-IDs, one without brackets': withHeaders([
    'Subject:',
    'Subject: second',
    'Message-ID: bare@fabrikam.example',
    'Message-ID: <later@fabrikam.example>',
  ]),
  'an empty Message-ID': withHeaders(['Message-ID:', 'Subject: x']),
  'two From, two To and two Cc fields, groups, and a punycode domain': withHeaders([
    'From: first@fabrikam.example',
    'From: second@fabrikam.example',
    'To: Team: a@contoso.example, "B, Person" <b@contoso.example>;',
    'To: c@xn--bcher-kva.example',
    'Cc: undisclosed-recipients:;',
    'Cc: =?utf-8?q?D=C3=B6?= <d@contoso.example>',
  ]),
  'an encoded word hiding in an address': withHeaders([
    'From: =?utf-8?q?ceo=40bank=2Eexample?= <x@fabrikam.example>',
    'To: =?utf-8?q?evil=40x=2Eexample?=@contoso.example',
  ]),
  'no Date, no From, no Subject': withHeaders(['X-Nothing: here']),
  'a Date that is no date': withHeaders(['Date: someday soon', 'Subject: x']),
  'a generic type with a file name (MailParser guesses from the name)': withHeaders(HEAD, [
    'Content-Type: application/octet-stream',
    'Content-Disposition: attachment; filename="budget.xlsx"',
  ]),
  'no Content-Type, a file name in the disposition': withHeaders(HEAD, [
    'Content-Disposition: attachment; filename="photo.jpg"',
  ]),
  'a file name in RFC 2231 form, continued': withHeaders(HEAD, [
    'Content-Type: application/pdf',
    "Content-Disposition: attachment; filename*0*=utf-8''%C3%9Cber; filename*1*=sicht.pdf",
  ]),
  'a file name as an encoded word in the type': withHeaders(HEAD, [
    'Content-Type: application/pdf; name="=?utf-8?B?w5xiZXJzaWNodC5wZGY=?="',
  ]),
  'an inline disposition with a comment on an image': withHeaders(HEAD, [
    'Content-Type: image/png',
    'Content-Disposition: inline (shown in the body); filename="logo.png"',
  ]),
  'a text part whose inline disposition carries a comment (still the message text)': withHeaders(
    HEAD,
    ['Content-Type: text/plain', 'Content-Disposition: inline (shown as text)'],
  ),
  'an unknown disposition': withHeaders(HEAD, [
    'Content-Type: application/zip; name=x.zip',
    'Content-Disposition: something-else',
  ]),
  'upper-case type and disposition': withHeaders(HEAD, [
    'Content-Type: APPLICATION/PDF; NAME="UP.PDF"',
    'Content-Disposition: ATTACHMENT',
  ]),
  'a single part base64 message': OUTLINED['a single part base64 message'] as Buffer,
  'a plain text message': OUTLINED['a plain text message'] as Buffer,
  'headers and no body': OUTLINED['headers and no body'] as Buffer,
};

describe('metadataFromOutline', () => {
  for (const [name, message] of Object.entries(DESCRIBED)) {
    it(`reads what MailParser reads: ${name}`, async () => {
      const outline = outlineMessage(message);
      expect(outline).toBeDefined();
      const described = metadataFromOutline(outline as NonNullable<typeof outline>);
      expect(described).toBeDefined();
      const whole = await parsedWhole(message);
      expect(whole.parseError).toBeUndefined();
      expect(described).toEqual(whole);
      expect(await parseMessageMetadata(message)).toEqual(whole);
    });
  }

  it('uses the very header parsers MailParser uses, not other copies of them', () => {
    // A different libmime or mailsplit than mailparser's could read a header differently.
    const mailparsers = createRequire(createRequire(import.meta.url).resolve('mailparser'));
    expect(libmime).toBe(mailparsers('libmime'));
    expect(MimeNode).toBe(mailparsers('@zone-eu/mailsplit').MimeNode);
  });

  it('is type-checked against the header parsers MailParser uses', () => {
    // libmime and mailsplit are devDependencies for their types only: the same copies.
    const ours = createRequire(import.meta.url);
    const mailparsers = createRequire(ours.resolve('mailparser'));
    for (const name of ['libmime', '@zone-eu/mailsplit']) {
      expect(ours.resolve(name)).toBe(mailparsers.resolve(name));
    }
  });

  it('leaves to MailParser an attachment whose size only decoding tells', () => {
    const message = OUTLINED[
      'related: an inline image, an RFC 2231 file name and a quoted-printable attachment'
    ] as Buffer;
    const outline = outlineMessage(message);
    expect(outline).toBeDefined();
    expect(metadataFromOutline(outline as NonNullable<typeof outline>)).toBeUndefined();
  });

  it('leaves to MailParser a part type it would have to guess', () => {
    const message = withHeaders(HEAD, ['Content-Type: ', 'Content-Disposition: attachment']);
    const outline = outlineMessage(message);
    expect(outline).toBeDefined();
    expect(metadataFromOutline(outline as NonNullable<typeof outline>)).toBeUndefined();
  });
});
