import { describe, expect, it } from 'vitest';
import {
  IdentityCounts,
  identityFields,
  messageIdentity,
} from '../../../src/jobs/migrate/identity.js';

const message = (headers: string[], body = 'body\r\n') =>
  Buffer.from(`${headers.join('\r\n')}\r\n\r\n${body}`, 'latin1');

describe('message identity', () => {
  const headers = [
    'Message-ID: <a1@example.org>',
    'Date: Mon, 1 Apr 2024 09:00:00 +0200',
    'From: "A" <a@example.org>',
    'Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= and a long subject',
  ];

  it('is the same for the whole message and for its HEADER.FIELDS answer', () => {
    const whole = message(['Received: x', ...headers, 'X-Other: y'], 'Subject: not a header\r\n');
    const fields = Buffer.from(`${[...headers].reverse().join('\r\n')}\r\n\r\n`, 'latin1');
    expect(messageIdentity(whole)).toBe(messageIdentity(fields));
  });

  it('survives re-folding and changed bodies, not a changed Date, From or Subject', () => {
    const folded = message([
      headers[0] as string,
      headers[1] as string,
      headers[2] as string,
      'Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= and a\r\n long   subject',
    ]);
    expect(messageIdentity(folded)).toBe(messageIdentity(message(headers, 'other body')));
    const other = message([...headers.slice(0, 3), 'Subject: another']);
    expect(messageIdentity(other)).not.toBe(messageIdentity(message(headers)));
  });

  it('knows messages without a Message-ID by the hash alone', () => {
    const a = message(headers.slice(1));
    expect(messageIdentity(a).startsWith('\0')).toBe(true);
    expect(messageIdentity(a)).toBe(messageIdentity(message(headers.slice(1), 'x')));
    expect(identityFields(message(['Subject: first', 'Subject: second'])).get('subject')).toBe(
      'first',
    );
  });

  it('counts duplicates: each destination copy stands for one source message', () => {
    const counts = new IdentityCounts();
    counts.add('x', 7);
    counts.add('x', 9);
    expect([counts.take('x'), counts.take('x'), counts.take('x'), counts.take('y')]).toEqual([
      7,
      9,
      undefined,
      undefined,
    ]);
  });
});
