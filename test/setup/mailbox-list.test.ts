import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigurationError } from '../../src/errors.js';
import {
  dedupeMailboxes,
  parseMailboxList,
  readMailboxList,
} from '../../src/setup/mailbox-list.js';

const addresses = (text: string) => parseMailboxList(text, 'list').entries.map((e) => e.address);

describe('parseMailboxList: one address per line', () => {
  it('skips blank lines and # comments, and names each entry by its line', () => {
    const parsed = parseMailboxList(
      '# mailboxes for the archive job\n\narchive@contoso.com\n  reports@contoso.com   # nightly\r\n',
      'list.txt',
    );
    expect(parsed.format).toBe('lines');
    expect(parsed.problems).toEqual([]);
    expect(parsed.entries).toEqual([
      { address: 'archive@contoso.com', source: 'list.txt line 3' },
      { address: 'reports@contoso.com', source: 'list.txt line 4' },
    ]);
  });

  it('keeps a # inside an address (it is a valid character there)', () => {
    expect(addresses('a#b@contoso.com\n')).toEqual(['a#b@contoso.com']);
  });

  it('deduplicates case-insensitively, keeping the first spelling', () => {
    expect(addresses('Archive@Contoso.com\narchive@contoso.com\nARCHIVE@CONTOSO.COM\n')).toEqual([
      'Archive@Contoso.com',
    ]);
  });

  it('reports a line holding two words', () => {
    expect(parseMailboxList('a@contoso.com b@contoso.com\n', 'list.txt').problems).toEqual([
      { field: 'list.txt line 1', message: 'a line holds more than one word' },
    ]);
  });

  it('strips a byte order mark', () => {
    expect(addresses('\uFEFFa@contoso.com\n')).toEqual(['a@contoso.com']);
  });

  it('returns nothing for an empty file', () => {
    expect(parseMailboxList('# nothing\n\n', 'list').entries).toEqual([]);
  });
});

describe('parseMailboxList: CSV', () => {
  it('reads the address column, whatever its position and case', () => {
    const parsed = parseMailboxList(
      'Name,Address,Team\nArchive,archive@contoso.com,ops\nReports,reports@contoso.com,bi\n',
      'boxes.csv',
    );
    expect(parsed.format).toBe('csv');
    expect(parsed.problems).toEqual([]);
    expect(parsed.entries).toEqual([
      { address: 'archive@contoso.com', source: 'boxes.csv line 2' },
      { address: 'reports@contoso.com', source: 'boxes.csv line 3' },
    ]);
  });

  it('handles quoted fields holding commas, quotes and line breaks', () => {
    const parsed = parseMailboxList(
      'name,address\n"Doe, John ""JD""","john@contoso.com"\n"two\nlines", "jane@contoso.com"\n',
      'boxes.csv',
    );
    expect(parsed.problems).toEqual([]);
    expect(parsed.entries).toEqual([
      { address: 'john@contoso.com', source: 'boxes.csv line 2' },
      { address: 'jane@contoso.com', source: 'boxes.csv line 3' },
    ]);
  });

  it('reads an Export-Csv file: #TYPE line, quoted PrimarySmtpAddress header, CRLF', () => {
    const text =
      '#TYPE Selected.Microsoft.Exchange.Data.Directory.Management.Mailbox\r\n"DisplayName","PrimarySmtpAddress"\r\n"Archive","archive@contoso.com"\r\n';
    expect(addresses(text)).toEqual(['archive@contoso.com']);
  });

  it('reads semicolon- and tab-separated files', () => {
    expect(addresses('name;address\nA;a@contoso.com\n')).toEqual(['a@contoso.com']);
    expect(addresses('name\taddress\nA\ta@contoso.com\n')).toEqual(['a@contoso.com']);
  });

  it('reports empty address cells and unclosed quotes by line', () => {
    const parsed = parseMailboxList('name,address\nA,\nB,"b@contoso.com\n', 'boxes.csv');
    expect(parsed.problems).toEqual([
      { field: 'boxes.csv line 2', message: 'the address column is empty' },
      { field: 'boxes.csv line 3', message: 'a quoted field is not closed' },
    ]);
  });

  it('refuses a CSV without an address column', () => {
    expect(parseMailboxList('name,mailbox\nA,a@contoso.com\n', 'boxes.csv').problems).toEqual([
      {
        field: 'boxes.csv line 1',
        message:
          'this looks like a CSV header without an address column (expected one of: address, primarysmtpaddress, emailaddress, email, mail)',
      },
    ]);
  });

  it('passes hostile cells through as text for the plan to refuse', () => {
    expect(addresses('address\n"x@y.com\'; Remove-Mailbox -Identity ceo; \'"\n')).toEqual([
      "x@y.com'; Remove-Mailbox -Identity ceo; '",
    ]);
  });
});

describe('dedupeMailboxes', () => {
  it('keeps order and the first of each case-insensitive address', () => {
    expect(
      dedupeMailboxes([{ address: 'B@x.com' }, { address: 'a@x.com' }, { address: 'b@X.COM' }]),
    ).toEqual([{ address: 'B@x.com' }, { address: 'a@x.com' }]);
  });
});

describe('readMailboxList', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mailbridge-mailboxes-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a file', async () => {
    const path = join(dir, 'list.txt');
    writeFileSync(path, 'a@contoso.com\n');
    expect(await readMailboxList(path)).toEqual([
      { address: 'a@contoso.com', source: 'list.txt line 1' },
    ]);
  });

  it('throws SETUP_MAILBOX_LIST_UNREADABLE for a missing file', async () => {
    await expect(readMailboxList(join(dir, 'missing.txt'))).rejects.toMatchObject({
      code: 'SETUP_MAILBOX_LIST_UNREADABLE',
      message: expect.stringContaining('no such file (ENOENT)'),
    });
  });

  it('throws SETUP_MAILBOX_LIST_INVALID with every bad line', async () => {
    const path = join(dir, 'bad.csv');
    writeFileSync(path, 'name,address\nA,\nB,\n');
    const error = await readMailboxList(path).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as ConfigurationError).code).toBe('SETUP_MAILBOX_LIST_INVALID');
    expect((error as ConfigurationError).problems.map((p) => p.field)).toEqual([
      'bad.csv line 2',
      'bad.csv line 3',
    ]);
  });
});
